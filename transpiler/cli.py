"""Command line: `tf-transpile IN OUT --to V`, `check`, `releases`.

User errors print one line and exit 2; a model that cannot be made to load
prints the report and exits 1. Tracebacks only with TF_TRANSPILE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__
from .errors import IncompatibleModel, TranspileError

PROG = "tf-transpile"

USAGE = """\
tf-transpile IN OUT --to VERSION [--force] [--rules FILE] [--checkpoint PREFIX]
       tf-transpile check IN --to VERSION [--format text|json]
       tf-transpile releases"""

DESCRIPTION = """\
Move a TensorFlow model between TensorFlow releases, so that the target
release loads it and computes the same numbers.

IN is a SavedModel directory, a frozen GraphDef (.pb/.pbtxt) or a meta graph
(.meta) with its checkpoint. OUT is written in the same form, atomically.

commands:
  IN OUT --to V      convert IN for release V (e.g. 1.8, 1.15, 2.21)
  check IN --to V    report what blocks loading IN in release V (exit 1 if anything)
  releases           list the releases tf-transpile knows
"""

EPILOG = """\
examples:
  tf-transpile model/ model_tf18/ --to 1.8
  tf-transpile check frozen.pb --to 1.12 --format json
exit status: 0 done, 1 the model cannot be made to load in the target, 2 bad input or usage."""

COMMANDS = ("check", "releases")


def _convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", type=Path, help="model to convert")
    p.add_argument("output", metavar="OUT", type=Path, help="where to write the converted model")
    _add_common(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                   help="extra rule file (repeatable); a rule with a built-in id replaces it")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def _check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG + " check", description="Report what blocks loading IN in a release.")
    p.add_argument("input", metavar="IN", type=Path, help="model to check")
    _add_common(p)
    return p


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, metavar="VERSION", help="target TensorFlow release, e.g. 1.8 or 2.21")
    p.add_argument("--checkpoint", type=Path, metavar="PREFIX", help="checkpoint of a .meta input")
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format")


def _releases() -> int:
    from .releases import catalog

    cat = catalog()
    for release in cat.releases:
        info = cat.info[release]
        print("%-8s GraphDef version %-5d %d ops" % (cat.opset(release).short, info["graph_def_version"],
                                                   info["op_count"]))
    return 0


def _run(argv: List[str]) -> int:
    from . import pipeline

    if argv and argv[0] == "releases":
        return _releases()
    if argv and argv[0] == "check":
        args = _check_parser().parse_args(argv[1:])
        report = pipeline.check(args.input, args.to, args.checkpoint)
        print(report.to_json() if args.format == "json" else report.to_text())
        return 1 if report.blocking else 0
    args = _convert_parser().parse_args(argv)
    report = pipeline.convert(args.input, args.output, args.to, args.force, args.checkpoint, args.rules)
    print(report.to_json() if args.format == "json" else "wrote %s for TF %s" % (args.output, report.target))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _run(argv)
    except IncompatibleModel as exc:
        if exc.report is not None:
            print(exc.report.to_text(), file=sys.stderr)
        print("%s: error: %s; nothing written" % (PROG, exc), file=sys.stderr)
        return exc.exit_code
    except TranspileError as exc:
        print("%s: error: %s" % (PROG, exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("%s: interrupted; nothing written" % PROG, file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless debugging
        if os.environ.get("TF_TRANSPILE_DEBUG"):
            raise
        print("%s: internal error: %s: %s (set TF_TRANSPILE_DEBUG=1 for a traceback)"
              % (PROG, type(exc).__name__, exc), file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
