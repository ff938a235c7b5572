"""Time and peak memory of renaming a checkpoint's keys: TF SaveV2 streaming vs rewriting the index.

    python bench/bench_checkpoint_rename.py [--model resnet50|mobilenetv2] [--repeat 3]

Uses the checkpoint of the model bench_pipeline.py builds (Keras
`model.export`, weights=None, into bench/out/) and renames every key the way a
downgrade does (`layer/kernel/.ATTRIBUTES/VARIABLE_VALUE` -> `layer/kernel`,
the object graph left out). Each way runs in a fresh process; the report is
the median wall time and the median of the child's peak RSS over the runs.
`cp` of the checkpoint files is the floor.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_pipeline import OUT, build  # noqa: E402

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

RENAME = """
import json, sys
from transpiler.io.checkpoints import rename_with_tf
from transpiler.io.tensor_bundle import rename_bundle
how, src, dst, mapping = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
if how == "tf":
    rename_with_tf(src, dst, mapping)
else:
    rename_bundle(src, dst, mapping, link=how == "link")
"""


def mapping_for(prefix: Path, path: Path) -> Path:
    """{object-based key: TF 1.x-style name} of every tensor but the object graph, as JSON at `path`."""
    code = ("import json, sys; from transpiler.io.tensor_bundle import read_index, slice_key_name\n"
            "_, entries = read_index(sys.argv[1] + '.index')\n"
            "keys = [k for k in entries if slice_key_name(k) is None and k != '_CHECKPOINTABLE_OBJECT_GRAPH']\n"
            "json.dump({k: k.replace(%r, '') for k in keys}, open(sys.argv[2], 'w'))" % SUFFIX)
    subprocess.run([sys.executable, "-c", code, str(prefix), str(path)], check=True, env=_env())
    return path


def _env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(HERE.parent))


def measure(cmd) -> tuple:
    """(seconds, peak RSS MiB) of one child process, with this checkout's transpiler on PYTHONPATH."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if status:
        raise SystemExit("%s failed:\n%s" % (cmd[:4], err[-2000:]))
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prefix = build(args.model) / "variables" / "variables"
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    size = sum(p.stat().st_size for p in files) / 2**20
    mapping = mapping_for(prefix, OUT / (args.model + ".mapping.json"))
    work = OUT / (args.model + ".rename")
    target = work / "variables"
    commands = {
        "cp (floor)": ["cp"] + [str(p) for p in files] + [str(work)],
        "TF SaveV2 streaming": [sys.executable, "-c", RENAME, "tf", str(prefix), str(target), str(mapping)],
        "index rewrite": [sys.executable, "-c", RENAME, "copy", str(prefix), str(target), str(mapping)],
        "index rewrite, link": [sys.executable, "-c", RENAME, "link", str(prefix), str(target), str(mapping)],
    }
    print("model %s: checkpoint of %.0f MiB in %d file(s), %d keys renamed"
          % (args.model, size, len(files), len(json.loads(mapping.read_text()))))
    for label, cmd in commands.items():
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            runs.append(measure(cmd))
        print("%-22s median %.2f s of %d (%s), peak RSS %.0f MiB"
              % (label, statistics.median(r[0] for r in runs), args.repeat,
                 ", ".join("%.2f" % r[0] for r in runs), statistics.median(r[1] for r in runs)))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
