"""Scale probe of the rule engine: `tf-transpile IN.pb OUT.pb --to 1.4` on synthetic frozen graphs.

    python bench/bench_scale.py [--sizes 10000,20000,50000,100000] [--repeat 3] [--no-fire]
                                [--profile 20000] [--keep DIR]

Each graph is chains of CHAIN ops behind a Placeholder, cycling through
Relu, LeakyRelu, Tanh and Add (of the previous op and the chain's
Placeholder), so a quarter of the nodes are LeakyRelu, which the
leaky-relu-to-relu rule decomposes for 1.4 (5 new nodes each, a rename of the
original). `--no-fire` writes Relu in their place: the same graph with no rule
firing. The graphs are built with the project's own proto classes; each
conversion runs in a fresh process, as a user would, and reports the median
wall time, the median CPU time (user + sys: steadier than wall time on a busy
machine) and the largest peak RSS of the runs. `--profile N` also writes a
cProfile of one in-process conversion of the N-node graph (top entries printed).
`--keep DIR` leaves the IN/OUT files there (to compare outputs between
branches byte for byte).
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_pipeline import measure

#: Ops per chain (the Placeholder included).
CHAIN = 100
#: What each chain cycles through after its Placeholder.
CYCLE = ("Relu", "LeakyRelu", "Tanh", "Add")


def synthetic_graph(nodes: int, fire: bool = True):
    """A frozen GraphDef of `nodes` nodes in chains (see the module docstring)."""
    from transpiler.io.protos import graph_pb2, types_pb2

    graph = graph_pb2.GraphDef()
    graph.versions.producer = 1882
    float_type = types_pb2.DT_FLOAT
    chain = 0
    while len(graph.node) < nodes:
        head = "c%d/x" % chain
        node = graph.node.add(name=head, op="Placeholder")
        node.attr["dtype"].type = float_type
        node.attr["shape"].shape.dim.add().size = 8
        previous = head
        for i in range(1, min(CHAIN, nodes - len(graph.node) + 1)):
            op = CYCLE[(i - 1) % len(CYCLE)]
            if op == "LeakyRelu" and not fire:
                op = "Relu"
            name = "c%d/n%d" % (chain, i)
            node = graph.node.add(name=name, op=op, input=[previous] + ([head] if op == "Add" else []))
            node.attr["T"].type = float_type
            if op == "LeakyRelu":
                node.attr["alpha"].f = 0.2
            previous = name
        chain += 1
    return graph


def convert_cmd(src: Path, out: Path) -> list:
    return [sys.executable, "-m", "transpiler", str(src), str(out), "--to", "1.4"]


def profile(src: Path, out: Path, top: int = 25) -> str:
    """cProfile of one in-process conversion; the top entries by cumulative and by own time."""
    from transpiler.cli.main import main as cli_main

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        cli_main([str(src), str(out), "--to", "1.4"])
    except SystemExit:
        pass
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,20000,50000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-fire", action="store_true", help="Relu instead of LeakyRelu: no rule fires")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the N-node conversion")
    parser.add_argument("--keep", type=Path, help="keep IN/OUT graphs in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    env_note = "no rule firing" if args.no_fire else "a quarter LeakyRelu"
    print("synthetic frozen graphs, %s, --to 1.4, median of %d runs" % (env_note, args.repeat))
    print("%8s %10s %12s %10s %14s" % ("nodes", "seconds", "us/node", "CPU s", "peak RSS MiB"))
    for nodes in [int(s) for s in args.sizes.split(",") if s]:
        tag = "%d%s" % (nodes, "_nofire" if args.no_fire else "")
        src, out = folder / ("in_%s.pb" % tag), folder / ("out_%s.pb" % tag)
        src.write_bytes(synthetic_graph(nodes, not args.no_fire).SerializeToString())
        runs = []
        for _ in range(args.repeat):
            out.unlink(missing_ok=True)
            runs.append(measure(convert_cmd(src, out)))
        if not out.is_file():
            raise SystemExit("conversion of %s wrote nothing: %s" % (src, " ".join(convert_cmd(src, out))))
        seconds = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        print("%8d %10.2f %12.1f %10.2f %14.0f" % (nodes, seconds, seconds / nodes * 1e6, cpu,
                                                  max(r[1] for r in runs)), flush=True)
        if nodes == args.profile:
            print(profile(src, folder / ("profiled_%s.pb" % tag)))
    if args.keep is None:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
