"""Time and memory of the IR's lift and lower alone, on a synthetic frozen graph (bench_scale's chains).

    python bench/bench_lift_lower.py [--nodes 1000000]

Prints seconds of GraphDef parse, lift, lower and serialize, and the peak RSS
of this process after each step (the graph proto, the IR and the lowered
proto are alive together at the end, as in a conversion).
"""

import argparse
import resource
import time

from bench_scale import synthetic_graph


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    args = parser.parse_args()
    from transpiler.io.protos import graph_pb2
    from transpiler.ir.graph import lift

    data = synthetic_graph(args.nodes).SerializeToString()
    print("%d nodes, %.0f MiB serialized; peak RSS before: %.0f MiB" % (args.nodes, len(data) / 2**20, peak_mib()))
    start = time.perf_counter()
    graph_def = graph_pb2.GraphDef.FromString(data)
    print("%-10s %7.2f s   peak RSS %6.0f MiB" % ("parse", time.perf_counter() - start, peak_mib()), flush=True)
    start = time.perf_counter()
    ir = lift(graph_def)
    print("%-10s %7.2f s   peak RSS %6.0f MiB" % ("lift", time.perf_counter() - start, peak_mib()), flush=True)
    start = time.perf_counter()
    lowered = ir.lower()
    print("%-10s %7.2f s   peak RSS %6.0f MiB" % ("lower", time.perf_counter() - start, peak_mib()), flush=True)
    start = time.perf_counter()
    out = lowered.SerializeToString()
    print("%-10s %7.2f s   peak RSS %6.0f MiB" % ("serialize", time.perf_counter() - start, peak_mib()), flush=True)
    # deterministic: without it, protobuf may write a map's entries (NodeDef.attr) in any order
    same = lowered.SerializeToString(deterministic=True) == graph_def.SerializeToString(deterministic=True)
    print("round trip identical: %s" % same)


if __name__ == "__main__":
    main()
