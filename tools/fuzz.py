#!/usr/bin/env python3
"""Fuzz the tf-transpile command line: damaged models, hostile rule files, a hostile file system.

    PYTHONPATH=. python3 tools/fuzz.py [--cases N] [--seed S] [--jobs J] [--timeout SECONDS]
        [--memory GIB] [--only I,J,...|FIRST-LAST] [--keep DIR] [--no-upgrade] [--json FILE|-]
    PYTHONPATH=. python3 tools/fuzz.py --merge RUN.json...      # the summary of shards of one run

Each case is built from (seed, index) alone and run as ``python3 -m transpiler ...`` in a
subprocess under a wall timeout and an address-space limit (tests/fuzzing.py has the
mutators and the outcomes). Prints the number of cases by outcome and every bad case with
the command to rerun it; exits 1 when a case is bad. ``--json`` writes every result.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_REPO, "tests"))

import fuzzing  # noqa: E402


def _indexes(text: str) -> list:
    """`3,5,9` or `500-999` (inclusive) -> case indexes."""
    found = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        found += list(range(int(first), int(last) + 1)) if last else [int(first)]
    return found


def _merge(paths) -> int:
    """The summary of saved runs together; exit 1 if any case is bad."""
    documents = [json.loads(Path(path).read_text()) for path in paths]
    results = [fuzzing.Result.from_dict(r) for document in documents for r in document["results"]]
    results.sort(key=lambda r: (r.case.seed, r.case.index))
    print(fuzzing.summary(results))
    print("merged %s" % ", ".join(map(str, paths)))
    return 1 if any(r.bad for r in results) else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=200, help="number of cases (indexes 0..N-1)")
    p.add_argument("--seed", type=int, default=1, help="seed of the whole run")
    p.add_argument("--only", type=_indexes, help="run only these case indexes (I,J,... or FIRST-LAST)")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="run nothing: print the summary of runs saved with --json (e.g. shards of one long run)")
    p.add_argument("--jobs", type=int, default=1, help="cases run in parallel")
    p.add_argument("--timeout", type=float, default=60.0, help="wall seconds a case may take (default 60)")
    p.add_argument("--memory", type=float, default=6.0, help="address-space limit of a case, GiB (default 6)")
    p.add_argument("--keep", type=Path, help="keep every case's directory here (bad cases are always kept)")
    p.add_argument("--no-upgrade", action="store_true", help="leave out --to 2.x (conversions that start TF)")
    p.add_argument("--json", help="write every result as JSON to this file (- for stdout)")
    args = p.parse_args(argv)
    if args.merge:
        return _merge(args.merge)
    base = args.keep or Path(tempfile.mkdtemp(prefix="tf-transpile-fuzz-"))
    indexes = args.only if args.only is not None else list(range(args.cases))
    done = []

    def progress(result):
        done.append(result)
        if result.bad or len(done) % 50 == 0:
            print("[%d/%d] case %d: %s" % (len(done), len(indexes), result.case.index, result.outcome),
                  file=sys.stderr, flush=True)

    start = time.monotonic()
    results = fuzzing.run(args.seed, indexes, base, args.timeout, int(args.memory * fuzzing.GIB), args.jobs,
                          keep=args.keep is not None, allow_upgrade=not args.no_upgrade, progress=progress)
    print(fuzzing.summary(results))
    print("seed %d, %.0f s, timeout %.0f s, memory %.1f GiB; case directories under %s"
          % (args.seed, time.monotonic() - start, args.timeout, args.memory, base))
    if args.json:
        document = {"seed": args.seed, "counts": fuzzing.counts(results), "findings": fuzzing.secondary(results),
                    "results": [r.to_dict() for r in results]}
        text = json.dumps(document, indent=1, sort_keys=True)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 1 if any(r.bad for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
