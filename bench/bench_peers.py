"""tf-transpile beside its peers, in one run: the same models, the same machine, the same minute.

    python bench/bench_peers.py [--repeat 3] [--models resnet50,bert] [--scale 10000,100000[,1000000]]
                                [--tf2onnx-path DIR] [--save bench/peers_results.md]

For Keras ResNet50 (keras.applications, weights=None) and a BERT-base-sized
Keras encoder (12 layers of 12-head attention, hidden 768, feed-forward 3072,
vocabulary 30522, sequence 128; random weights), both exported with
`model.export` by the host TF into bench/out/, it runs in fresh processes:

* `tf-transpile IN OUT --to 1.8` and `tf-transpile check IN --to 1.8`;
* `cp -r IN OUT`, the floor for anything that writes the model again;
* TF's own load + save: `tf.saved_model.save(tf.saved_model.load(IN), OUT)` in the host TF;
* tf2onnx (`python -m tf2onnx.convert --saved-model IN`), when it imports (`--tf2onnx-path` is put on
  PYTHONPATH for it alone, so it can live outside the host's site-packages).

Then the scale probe of bench/bench_scale.py (synthetic chains, a quarter LeakyRelu, `--to 1.4`).
Each figure is the median of `--repeat` runs: CPU seconds (user + sys of the child, steadier than wall
time on a shared machine), wall seconds, and the largest peak RSS. Ratios are TF load+save over
tf-transpile, by CPU and by wall. `--save` writes the tables as markdown.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from bench_pipeline import child_env, warm_up  # noqa: E402
from bench_scale import convert_cmd, synthetic_graph  # noqa: E402

BUILD_RESNET = """
import keras, sys
keras.applications.ResNet50(weights=None).export(sys.argv[1])
"""

BUILD_BERT = """
import keras, sys
from keras import layers
vocab, hidden, depth, heads, ff, seq = 30522, 768, 12, 12, 3072, 128
ids = keras.Input((seq,), dtype="int32", name="input_ids")
x = layers.Embedding(vocab, hidden)(ids)
x = layers.LayerNormalization(epsilon=1e-12)(x + layers.Embedding(512, hidden)(keras.ops.arange(seq)[None, :]))
for _ in range(depth):
    x = layers.LayerNormalization(epsilon=1e-12)(x + layers.MultiHeadAttention(heads, hidden // heads)(x, x))
    x = layers.LayerNormalization(epsilon=1e-12)(x + layers.Dense(hidden)(layers.Dense(ff, activation="gelu")(x)))
keras.Model(ids, x).export(sys.argv[1])
"""

TF_LOAD_SAVE = """
import sys, tensorflow as tf
tf.saved_model.save(tf.saved_model.load(sys.argv[1]), sys.argv[2])
"""

BUILDERS = {"resnet50": BUILD_RESNET, "bert": BUILD_BERT}


def build(name: str) -> Path:
    """The exported model, built once in a child process (this one stays small: a forked child's
    peak RSS counts the parent's pages until exec)."""
    path = OUT / name
    if not (path / "saved_model.pb").is_file():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, "-c", BUILDERS[name], str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def measure(cmd, env=None) -> tuple:
    """(wall seconds, peak RSS MiB, CPU seconds user+sys, exit status) of one child process.

    The child runs without PYTHONDONTWRITEBYTECODE (bench_pipeline.child_env): with it, every run
    would compile tf-transpile's modules again, a cost an installed package does not have."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env(env))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def median_run(cmd, repeat: int, clean, env=None, warm: bool = False) -> dict:
    """Medians of `repeat` timed runs; with `warm`, after one untimed run that writes tf-transpile's .pyc
    files (see measure; the peers are installed packages, which have theirs)."""
    if warm:
        clean()
        warm_up(cmd, env)
    runs = []
    for _ in range(repeat):
        clean()
        runs.append(measure(cmd, env))
    clean()
    return {"wall": statistics.median(r[0] for r in runs), "rss": max(r[1] for r in runs),
            "cpu": statistics.median(r[2] for r in runs), "status": max(r[3] for r in runs)}


def tf2onnx_env(extra_path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def has_tf2onnx(env: dict) -> bool:
    return subprocess.run([sys.executable, "-c", "import tf2onnx"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def model_rows(name: str, repeat: int, onnx_env, peer_repeat: int) -> list:
    model = build(name)
    target = OUT / (name + ".out")
    size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file()) / 2 ** 20

    def clean():
        shutil.rmtree(target, ignore_errors=True)
        Path(str(target) + ".onnx").unlink(missing_ok=True)

    tool = [sys.executable, "-m", "transpiler"]
    quiet = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    commands = [("tf-transpile --to 1.8", tool + [str(model), str(target), "--to", "1.8"], None, repeat),
                ("tf-transpile check --to 1.8", tool + ["check", str(model), "--to", "1.8"], None, repeat),
                ("cp -r", ["cp", "-r", str(model), str(target)], None, repeat),
                ("TF 2.21 load+save", [sys.executable, "-c", TF_LOAD_SAVE, str(model), str(target)], quiet,
                 peer_repeat)]
    if onnx_env is not None:
        commands.append(("tf2onnx", [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(model),
                                     "--output", str(target) + ".onnx"], onnx_env, peer_repeat))
    rows = []
    for label, cmd, env, runs in commands:
        result = median_run(cmd, runs, clean, env, warm=cmd[:3] == tool)
        rows.append(dict(result, model="%s (%.0f MiB)" % (name, size), command=label, runs=runs))
        print("%-22s %-28s CPU %7.2f s  wall %7.2f s  peak %6.0f MiB  exit %d" % (
            rows[-1]["model"], label, result["cpu"], result["wall"], result["rss"], result["status"]), flush=True)
    return rows


def scale_rows(sizes, repeat: int) -> list:
    folder = OUT / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, nodes in enumerate(sizes):
        src, out = folder / ("in_%d.pb" % nodes), folder / ("out_%d.pb" % nodes)
        if not src.is_file():
            src.write_bytes(synthetic_graph(nodes).SerializeToString())
        result = median_run(convert_cmd(src, out), repeat, lambda: out.unlink(missing_ok=True), warm=i == 0)
        rows.append(dict(result, nodes=nodes))
        print("scale %8d nodes: CPU %7.2f s (%.1f us/node)  wall %7.2f s  peak %6.0f MiB  exit %d" % (
            nodes, result["cpu"], result["cpu"] / nodes * 1e6, result["wall"], result["rss"], result["status"]),
            flush=True)
    return rows


def markdown(models: list, scale: list, repeat: int) -> str:
    lines = ["| model | command | runs | CPU s | wall s | peak RSS MiB | exit |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += ["| %s | %s | %d | %.2f | %.2f | %.0f | %d |" % (r["model"], r["command"], r["runs"], r["cpu"], r["wall"],
                                                             r["rss"], r["status"]) for r in models]
    lines += ["", "| model | TF load+save / tf-transpile (CPU) | (wall) |", "|---|---:|---:|"]
    for model in sorted({r["model"] for r in models}, key=[r["model"] for r in models].index):
        ours = next(r for r in models if r["model"] == model and r["command"].endswith("--to 1.8"))
        tf = next(r for r in models if r["model"] == model and r["command"].startswith("TF"))
        lines.append("| %s | %.1fx | %.1fx |" % (model, tf["cpu"] / ours["cpu"], tf["wall"] / ours["wall"]))
    if scale:
        lines += ["", "| nodes | CPU s | CPU us/node | wall s | peak RSS MiB |", "|---:|---:|---:|---:|---:|"]
        lines += ["| %d | %.2f | %.1f | %.2f | %.0f |" % (r["nodes"], r["cpu"], r["cpu"] / r["nodes"] * 1e6,
                                                          r["wall"], r["rss"]) for r in scale]
    return "\n".join(["Medians of the runs (peak RSS: the largest); scale probe: %d runs." % repeat, ""]
                     + lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-repeat", type=int, help="runs of TF load+save and tf2onnx (default: --repeat)")
    parser.add_argument("--models", default="resnet50,bert")
    parser.add_argument("--scale", default="10000,100000", help="node counts of the scale probe ('' for none)")
    parser.add_argument("--tf2onnx-path", help="a folder holding tf2onnx (pip install --target DIR tf2onnx onnx)")
    parser.add_argument("--save", type=Path, help="write the tables to this markdown file")
    args = parser.parse_args()
    onnx_env = tf2onnx_env(args.tf2onnx_path)
    if not has_tf2onnx(onnx_env):
        print("tf2onnx does not import: skipped (pip install tf2onnx, or --tf2onnx-path)")
        onnx_env = None
    peer_repeat = args.peer_repeat or args.repeat
    models = [row for name in args.models.split(",") if name
              for row in model_rows(name, args.repeat, onnx_env, peer_repeat)]
    scale = scale_rows([int(s) for s in args.scale.split(",") if s], args.repeat)
    table = markdown(models, scale, args.repeat)
    print(table)
    if args.save:
        args.save.write_text(table)


if __name__ == "__main__":
    main()
