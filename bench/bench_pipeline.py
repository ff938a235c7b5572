"""Time and peak memory of `tf-transpile check`, an unchanged round trip and a downgrade to 1.8.

    python bench/bench_pipeline.py [--model resnet50|mobilenetv2] [--repeat 3]

Builds the model once with the host TF (Keras `model.export`, weights=None)
into bench/out/, then runs each command in a fresh process, as a user would,
and reports wall time and the child's peak RSS. `cp -r` of the same model is
the floor to compare against.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


BUILD = """
import keras, sys
factory = {"resnet50": keras.applications.ResNet50, "mobilenetv2": keras.applications.MobileNetV2}[sys.argv[1]]
factory(weights=None).export(sys.argv[2])
"""


def build(name: str) -> Path:
    """Export the model in a separate process: this one must stay small, since
    a forked child's peak RSS counts the parent's pages until exec."""
    path = OUT / name
    if not (path / "saved_model.pb").is_file():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, "-c", BUILD, name, str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def child_env(base=None) -> dict:
    """The environment of a timed child: `base` (default: this process's) without PYTHONDONTWRITEBYTECODE.

    With that variable set (as some CI and sandbox shells do), every child compiles the project's
    .py files again, about 0.27 s of CPU per run that an installed package, which ships its .pyc
    files, never pays; without it the first run writes __pycache__ and the others read it. Run a
    command once untimed first (`warm_up`) so that no timed run pays the compile either.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_up(cmd, env=None) -> None:
    """Run `cmd` once, untimed, so that its modules' .pyc files exist before the timed runs."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(env))


def measure(cmd, env=None) -> tuple:
    """(seconds, peak RSS MiB, CPU seconds user+sys) of one child process, in `child_env(env)`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env(env))
    _, _, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    model = build(args.model)
    size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file()) / 2**20
    target = OUT / (args.model + ".out")
    tool = [sys.executable, "-m", "transpiler"]
    commands = {
        "cp -r": ["cp", "-r", str(model), str(target)],
        "check --to 2.21": tool + ["check", str(model), "--to", "2.21"],
        "round trip --to 2.21": tool + [str(model), str(target), "--to", "2.21"],
        "downgrade --to 1.8": tool + [str(model), str(target), "--to", "1.8"],
    }
    print("model %s: %.0f MiB on disk" % (args.model, size))
    for label, cmd in commands.items():
        shutil.rmtree(target, ignore_errors=True)
        warm_up(cmd)
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(target, ignore_errors=True)
            runs.append(measure(cmd))
        best = min(runs)
        print("%-22s best %.2f s of %d, peak RSS %.0f MiB" % (label, best[0], args.repeat, max(r[1] for r in runs)))
    shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
