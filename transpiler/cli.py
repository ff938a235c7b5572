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
tf-transpile IN OUT --to VERSION [--force] [--rules FILE] [--inline-functions] [--checkpoint PREFIX]
       tf-transpile check IN --to VERSION [--format text|json]
       tf-transpile explain IN --to VERSION [--rules FILE]
       tf-transpile rules list|check|test [...]
       tf-transpile releases"""

DESCRIPTION = """\
Move a TensorFlow model between TensorFlow releases, so that the target
release loads it and computes the same numbers.

IN is a SavedModel directory, a frozen GraphDef (.pb/.pbtxt) or a meta graph
(.meta) with its checkpoint. OUT is written in the same form, atomically.

commands:
  IN OUT --to V         convert IN for release V (e.g. 1.8, 1.15, 2.21)
  check IN --to V       report what blocks loading IN, unchanged, in release V (exit 1 if anything)
  explain IN --to V     dry run: which rule fires on which node, and what would still block
  rules list [--to V]   every rule, its family, what it matches and when it applies
  rules check FILE...   validate rule files (schema, templates, ops and attrs against the opset data)
  rules test [FILE...]  run rules' own examples: original op vs. rewrite, in the host TF
  releases              list the releases tf-transpile knows
"""

EPILOG = """\
examples:
  tf-transpile model/ model_tf18/ --to 1.8
  tf-transpile check frozen.pb --to 1.12 --format json
  tf-transpile model/ out/ --to 1.8 --rules my_rules.yaml   # add or override rules by id
  tf-transpile rules test my_rules.yaml                     # prove a new rule on its examples
golden files: pytest --update-golden rewrites golden/; a plain run diffs against them.
exit status: 0 done, 1 the model cannot be made to load in the target, 2 bad input or usage."""


def _parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def _convert_parser() -> argparse.ArgumentParser:
    p = _parser(PROG, DESCRIPTION, usage=USAGE, epilog=EPILOG)
    p.add_argument("input", metavar="IN", type=Path, help="model to convert")
    p.add_argument("output", metavar="OUT", type=Path, help="where to write the converted model")
    _add_target(p)
    _add_rules(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--inline-functions", action="store_true",
                   help="inline function calls even when the target has the call ops")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def _add_target(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--to", required=required, metavar="VERSION", help="target TensorFlow release, e.g. 1.8 or 2.21")
    p.add_argument("--checkpoint", type=Path, metavar="PREFIX", help="checkpoint of a .meta input")
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format")


def _add_rules(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                   help="extra rule file (repeatable); a rule with a built-in id replaces it")


def _print_report(report, fmt: str, verbose: bool = False) -> None:
    print(report.to_json() if fmt == "json" else report.to_text(verbose))


def _cmd_check(argv: List[str]) -> int:
    from .pipeline import check

    p = _parser(PROG + " check", "Report what blocks loading IN, unchanged, in a release.")
    p.add_argument("input", metavar="IN", type=Path, help="model to check")
    _add_target(p)
    args = p.parse_args(argv)
    report = check(args.input, args.to, args.checkpoint)
    _print_report(report, args.format)
    return 1 if report.blocking else 0


def _cmd_explain(argv: List[str]) -> int:
    from .pipeline import explain

    p = _parser(PROG + " explain", "Dry run: which rule would fire on which node, and what would still block.")
    p.add_argument("input", metavar="IN", type=Path, help="model to explain")
    _add_target(p)
    _add_rules(p)
    args = p.parse_args(argv)
    report = explain(args.input, args.to, args.checkpoint, args.rules)
    _print_report(report, args.format, verbose=True)
    return 1 if report.blocking else 0


def _cmd_releases(argv: List[str]) -> int:
    from .releases import catalog

    _parser(PROG + " releases", "List the releases in the opset data.").parse_args(argv)
    cat = catalog()
    for release in cat.releases:
        info = cat.info[release]
        print("%-8s GraphDef version %-5d %d ops" % (cat.opset(release).short, info["graph_def_version"],
                                                   info["op_count"]))
    return 0


def _cmd_rules(argv: List[str]) -> int:
    from . import rule_commands

    p = _parser(PROG + " rules", "Inspect, validate and test rewrite rules.")
    sub = p.add_subparsers(dest="action", required=True, metavar="list|check|test")
    listing = sub.add_parser("list", help="every rule, what it matches and when it applies")
    listing.add_argument("--to", metavar="VERSION", help="only rules active for this target")
    listing.add_argument("--verbose", "-v", action="store_true", help="also list the attrs the generic rule strips")
    _add_rules(listing)
    sub.add_parser("check", help="validate rule files").add_argument("files", nargs="+", type=Path, metavar="FILE")
    sub.add_parser("test", help="run rules' examples in the host TF").add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="rule files (default: the built-in rules)")
    args = p.parse_args(argv)
    return getattr(rule_commands, args.action + "_rules")(args)


COMMANDS = {"check": _cmd_check, "explain": _cmd_explain, "releases": _cmd_releases, "rules": _cmd_rules}


def _run(argv: List[str]) -> int:
    from .pipeline import convert

    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    args = _convert_parser().parse_args(argv)
    report = convert(args.input, args.output, args.to, args.force, args.checkpoint, args.rules,
                     inline_functions=args.inline_functions)
    if args.format == "json":
        print(report.to_json())
    else:
        print(report.fired_summary())
        print("wrote %s for TF %s" % (args.output, report.target))
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
    except BrokenPipeError:  # `tf-transpile rules list | head`
        sys.stderr.close()
        return 0
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
