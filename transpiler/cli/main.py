"""Command line: `tf-transpile IN OUT --to V`, `check`, `releases`.

User errors print one line and exit 2; a model that cannot be made to load
prints the report and exits 1. Tracebacks only with TF_TRANSPILE_DEBUG=1.
With --format json or markdown, every outcome (refusals and bad input too)
is one document on stdout. -q/-v (anywhere) set how much is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from transpiler.cli import output
from transpiler.cli import verify as verify_cli
from transpiler.version import __version__
from transpiler.errors import IncompatibleModel, TranspileError
from transpiler.options import DEFAULT_UNFREEZE_MIN_SIZE, ConvertOptions, UnfreezeOptions
from transpiler.pipeline.markdown import md_table

PROG = "tf-transpile"

USAGE = """\
tf-transpile [-q|-v] IN OUT --to VERSION [--format text|json|markdown] [--force] [--rules FILE]
                    [--checkpoint PREFIX] [--inline-functions] [--variables resource|ref] [--freeze]
                    [--clear-devices] [--link] [--verify [--python PATH] ...]
                    [--tags TAGS] [--inputs [KEY=]TENSOR,...] [--outputs [KEY=]TENSOR,...] [--unfreeze ...]
       tf-transpile batch IN_DIR OUT_DIR --to VERSION [--jobs N] [--shard K/N] [--timeout S] [any conversion option]
       tf-transpile checkpoint IN_PREFIX OUT_PREFIX [--model M] [--var-map FILE] [--to-object|--to-names]
       tf-transpile verify IN OUT --release VERSION [--python PATH] [--inputs-file F] [--format F]
       tf-transpile runtimes list|install|remove [VERSION...]
       tf-transpile check IN --to VERSION [--format text|json|markdown]
       tf-transpile explain IN --to VERSION [any conversion option]
       tf-transpile rules list|check|test [...]
       tf-transpile releases [--format F]"""

DESCRIPTION = """\
Move a TensorFlow model between TensorFlow releases, so that the target
release loads it and computes the same numbers.

IN is a SavedModel directory, a frozen GraphDef (.pb/.pbtxt) or a meta graph
(.meta) with its checkpoint. OUT's form follows its name: *.meta a meta graph
with its checkpoint beside it (OUT's prefix .index/.data-*), *.pb/*.pbtxt a
GraphDef, anything else a SavedModel directory. It is written atomically.

commands:
  IN OUT --to V         convert IN for release V (e.g. 1.8, 1.15, 2.21)
  verify IN OUT --release V  load OUT in real TF V and compare every output with IN's (exit 1 if any differs)
  runtimes list|install|remove  the real TF releases verify runs models in
  batch IN_DIR OUT_DIR --to V  convert every model under IN_DIR in parallel into OUT_DIR (same relative
                        paths); one JSON line per model; resumable; --shard K/N splits it over machines
  check IN --to V       report what blocks loading IN, unchanged, in release V (exit 1 if anything)
  checkpoint IN OUT     convert a name-based TF 1.x checkpoint to an object-based one, or back
  explain IN --to V     dry run of a conversion: which rule fires where, and what would still block
  rules list [--to V]   every rule, its family, what it matches and when it applies (--format json|markdown)
  rules check FILE...   validate rule files (schema, templates, ops and attrs against the opset data):
                        every problem, file:line, with "did you mean" for unknown op names
  rules test [FILE...]  run rules' own examples: original op vs. rewrite, in the host TF
  releases              list the releases tf-transpile knows

global options (anywhere on the command line, for every command):
  -q, --quiet           print only errors (and the report when it is one: check's problems, a failing
                        verify), plus the document --format json|markdown asks for; no progress line
  -v, --verbose         also each pass of the pipeline: its name, its time, how many rules it fired,
                        the nodes after it (a conversion, check, explain; batch: a line per model)
  --format text|json|markdown  on every command that reports (convert, check, explain, verify, batch,
                        rules list, releases): text (default) for a terminal; json one JSON document on
                        stdout for every outcome, refusals and bad input included ({"error", "exit_code"});
                        markdown a report to paste into a ticket (a heading, tables), also on stdout
  progress              on long work (checkpoint bytes copied, graph nodes through the passes) a line on
                        stderr is redrawn, only when stderr is a terminal and without -q
"""

EPILOG = """\
examples:
  tf-transpile model/ model_tf18/ --to 1.8
  tf-transpile model/ model_tf18/ --to 1.8 --verify        # ... and prove it in real TF 1.8
  tf-transpile verify model/ model_tf18/ --release 1.8 --python ~/venvs/tf18/bin/python
  tf-transpile check frozen.pb --to 1.12 --format json
  tf-transpile check frozen.pb --to 1.12 --format markdown > ticket.md   # paste into an issue
  tf-transpile -q model/ model_tf18/ --to 1.8 && echo done  # silent unless something fails
  tf-transpile model/ out/ --to 1.8 --rules my_rules.yaml   # add or override rules by id
  tf-transpile rules test my_rules.yaml                     # prove a new rule on its examples
  tf-transpile tf1_model/ tf2_model/ --to 2.21              # a native TF 2 SavedModel (tf.saved_model.load)
  tf-transpile frozen.pb tf2_model/ --to 2.21 --unfreeze    # ... with the weights trainable again
  tf-transpile checkpoint model.ckpt tf2.ckpt --model tf2_model/   # name-based -> object-based
  tf-transpile batch models/ models_tf18/ --to 1.8 --jobs 4 > results.jsonl  # a whole tree; reruns resume
exit status: 0 done; 1 the model cannot be made to load in the target (every blocking node and op is
named, nothing is written), or --verify found OUT failing in the target (OUT is kept, the failing signature
and output are named); 2 bad input or usage; 3 an internal error (a bug: please report it, with
TF_TRANSPILE_DEBUG=1 for a traceback); 130 interrupted (nothing written)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors go through main's one error path (exit 2), so that
    with --format json or markdown a mistyped option still gives a document on stdout."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise TranspileError(message)


#: The exit status of a command whose help does not spell out its own.
EXIT_STATUS = ("exit status: 0 done; 1 what was asked for fails (nothing written); 2 bad input or usage;\n"
               "3 an internal error (a bug: TF_TRANSPILE_DEBUG=1 for a traceback); 130 interrupted")


def _parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser; its --help ends with the exit status unless the description gives it."""
    if "exit status" not in description:
        kwargs.setdefault("epilog", EXIT_STATUS)
    return _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                   **kwargs)


def _convert_parser() -> argparse.ArgumentParser:
    p = _parser(PROG, DESCRIPTION, usage=USAGE, epilog=EPILOG)
    p.add_argument("input", metavar="IN", type=Path, help="model to convert")
    p.add_argument("output", metavar="OUT", type=Path, help="where to write the converted model")
    add_convert_options(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    p.add_argument("--verify", action="store_true",
                   help="then load OUT in the real target release and compare its outputs with IN's"
                        " (see `tf-transpile verify --help`)")
    verify_cli.add_verify_options(p)
    return p


def add_convert_options(p: argparse.ArgumentParser) -> None:
    """Every option a conversion depends on: shared by convert, explain (a dry run of convert) and batch."""
    _add_target(p)
    _add_rules(p)
    p.add_argument("--variables", choices=("resource", "ref"), default="resource",
                   help="ref: resource variables become VariableV2 + Assign/Identity (for TF 1.x tools)")
    p.add_argument("--freeze", action="store_true",
                   help="fold variables into constants and write a frozen GraphDef (OUT is a .pb file)")
    p.add_argument("--inline-functions", action="store_true",
                   help="inline function calls even when the target has the call ops")
    p.add_argument("--clear-devices", action="store_true",
                   help="clear every node's device (a model pinned to a GPU, for a CPU-only release)")
    p.add_argument("--link", action="store_true",
                   help="hard-link the checkpoint's data shards into OUT instead of copying them (a TF 1.x target:"
                        " their bytes never change, only the index is rewritten); OUT then shares them with IN,"
                        " so do not edit them in place. A copy where a link is impossible (another file system)")
    g = p.add_argument_group("TF 1.x -> TF 2.x (native TF 2 SavedModel)")
    g.add_argument("--tags", type=lambda s: [t for t in s.split(",") if t], metavar="TAGS",
                   help="comma-separated tag set of the meta graph to convert (default: the only one, or serve)")
    g.add_argument("--inputs", action="append", default=[], metavar="[KEY=]TENSOR,...",
                   help="signature inputs of a graph without signatures (default: its placeholders)")
    g.add_argument("--outputs", action="append", default=[], metavar="[KEY=]TENSOR,...",
                   help="signature outputs of a graph without signatures (default: its unconsumed sinks)")
    g.add_argument("--unfreeze", action="store_true",
                   help="turn a frozen graph's weight constants back into trainable variables")
    g.add_argument("--unfreeze-min-size", type=int, default=DEFAULT_UNFREEZE_MIN_SIZE, metavar="N",
                   help="with --unfreeze: also float constants of at least N elements (default %(default)s;"
                        " former variables, read through NAME/read, always)")
    g.add_argument("--unfreeze-pattern", metavar="REGEX", help="with --unfreeze: exactly the constants whose name matches")
    g.add_argument("--unfreeze-names", type=lambda s: [t for t in s.split(",") if t], default=[], metavar="NAME,...",
                   help="with --unfreeze: these constants (with --unfreeze-pattern: these too)")


def convert_options(args: argparse.Namespace) -> ConvertOptions:
    """The one ConvertOptions of parsed arguments (convert, explain and batch)."""
    unfreeze = None
    if args.unfreeze or args.unfreeze_pattern or args.unfreeze_names:
        unfreeze = UnfreezeOptions(args.unfreeze_min_size, args.unfreeze_pattern, tuple(args.unfreeze_names))
    return ConvertOptions(to=args.to, force=getattr(args, "force", False), checkpoint=args.checkpoint,
                          rule_files=tuple(args.rules), inline_functions=args.inline_functions,
                          variables=args.variables, freeze=args.freeze, clear_devices=args.clear_devices,
                          link=args.link,
                          tags=tuple(args.tags) if args.tags else None, inputs=tuple(args.inputs),
                          outputs=tuple(args.outputs), unfreeze=unfreeze, progress=output.progress_callback())


def _add_target(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--to", required=required, metavar="VERSION", help="target TensorFlow release, e.g. 1.8 or 2.21")
    p.add_argument("--checkpoint", type=Path, metavar="PREFIX", help="checkpoint of a .meta input")
    add_format(p)


def add_format(p: argparse.ArgumentParser, what: str = "report") -> None:
    """--format text|json|markdown (see the global options in `tf-transpile --help`)."""
    p.add_argument("--format", choices=output.FORMATS, default="text",
                   help="%s format: text, json (one document on stdout, errors included) or markdown "
                        "(a heading and tables, to paste into a ticket)" % what)


def _add_rules(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                   help="extra rule file (repeatable); a rule with a built-in id replaces it")


def _print_report(report, fmt: str, verbose: bool = False) -> None:
    """The report in `fmt`; -v adds each pass. With -q a text report is printed only if it blocks."""
    verbose = verbose or output.verbose()
    if fmt == "json":
        print(report.to_json())
    elif fmt == "markdown":
        print(report.to_markdown(verbose))
    elif report.blocking or not output.quiet():
        print(report.to_text(verbose))


def _cmd_check(argv: List[str]) -> int:
    from transpiler.pipeline.check import check

    p = _parser(PROG + " check", "Report what blocks loading IN, unchanged, in a release.")
    p.add_argument("input", metavar="IN", type=Path, help="model to check")
    _add_target(p)
    p.epilog = EXIT_STATUS.replace("1 what was asked for fails (nothing written)", "1 something blocks loading in the release")
    args = p.parse_args(argv)
    report = check(args.input, args.to, args.checkpoint)
    _print_report(report, args.format)
    return 1 if report.blocking else 0


def _cmd_explain(argv: List[str]) -> int:
    from transpiler.pipeline.convert import explain

    p = _parser(PROG + " explain", "Dry run of a conversion (same options): which rule would fire on which "
                                   "node, and what would still block. Writes nothing.")
    p.add_argument("input", metavar="IN", type=Path, help="model to explain")
    add_convert_options(p)
    p.epilog = EXIT_STATUS.replace("1 what was asked for fails (nothing written)", "1 something would still block")
    args = p.parse_args(argv)
    report = explain(args.input, convert_options(args))
    _print_report(report, args.format, verbose=True)
    return 1 if report.blocking else 0


def _cmd_releases(argv: List[str]) -> int:
    from transpiler.knowledge.releases import catalog

    p = _parser(PROG + " releases", "List the releases in the opset data.")
    add_format(p, "listing")
    args = p.parse_args(argv)
    cat = catalog()
    rows = [{"release": cat.opset(r).short, "full": r, "graph_def_version": cat.info[r]["graph_def_version"],
             "ops": cat.info[r]["op_count"]} for r in cat.releases]
    if args.format == "json":
        print(json.dumps(rows, indent=2, sort_keys=True))
    elif args.format == "markdown":
        print("\n".join(["## tf-transpile: known releases", ""] + md_table(
            ("Release", "Full version", "GraphDef version", "Ops"),
            [(r["release"], r["full"], r["graph_def_version"], r["ops"]) for r in rows])))
    else:
        for r in rows:
            print("%-8s GraphDef version %-5d %d ops" % (r["release"], r["graph_def_version"], r["ops"]))
    return 0


def _cmd_rules(argv: List[str]) -> int:
    from transpiler.cli import rules as rule_commands

    p = _parser(PROG + " rules", "Inspect, validate and test rewrite rules.")
    sub = p.add_subparsers(dest="action", required=True, metavar="list|check|test")
    listing = sub.add_parser("list", help="every rule, what it matches and when it applies")
    listing.add_argument("--to", metavar="VERSION", help="only rules active for this target")
    listing.add_argument("--verbose", "-v", action="store_true", help="also list the attrs the generic rule strips")
    listing.add_argument("--format", choices=output.FORMATS, default="text",
                         help="text: an aligned table with a header; json: a list of rules (with --to, the attrs"
                              " the generic rule strips); markdown: a table to paste into a ticket")
    _add_rules(listing)
    sub.add_parser("check", help="validate rule files").add_argument("files", nargs="+", type=Path, metavar="FILE")
    sub.add_parser("test", help="run rules' examples in the host TF").add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="rule files (default: the built-in rules)")
    args = p.parse_args(argv)
    if args.action == "list":
        args.verbose = args.verbose or output.verbose()  # the global -v is taken off the command line
    return getattr(rule_commands, args.action + "_rules")(args)


def _cmd_checkpoint(argv: List[str]) -> int:
    from transpiler.backends import checkpoint_convert

    p = _parser(PROG + " checkpoint", checkpoint_convert.__doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IN_PREFIX", type=Path, help="checkpoint to convert (its prefix)")
    p.add_argument("output", metavar="OUT_PREFIX", type=Path, help="prefix of the checkpoint to write")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--to-object", dest="direction", action="store_const", const="object",
                           help="name-based -> object-based (default for a name-based input)")
    direction.add_argument("--to-names", dest="direction", action="store_const", const="names",
                           help="object-based -> name-based (default for an object-based input)")
    p.add_argument("--model", type=Path, metavar="M",
                   help="the TF 2 model the object-based checkpoint is for (a SavedModel dir or an object-based"
                        " checkpoint prefix); default: tf-transpile's layout vars/<TF 1.x name>")
    p.add_argument("--var-map", type=Path, metavar="FILE",
                   help="YAML mapping to use (the format of the mapping file this command writes)")
    p.add_argument("--mapping", type=Path, metavar="FILE",
                   help="where to write the mapping used (default: OUT_PREFIX.mapping.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_PREFIX checkpoint")
    args = p.parse_args(argv)
    result = checkpoint_convert.convert_checkpoint(args.input, args.output, direction=args.direction,
                                                   model=args.model, var_map=args.var_map,
                                                   mapping_file=args.mapping, force=args.force)
    output.say(result.summary())
    return 0


def _batch():
    """transpiler.cli.batch, imported for the batch command alone (multiprocessing and the rest of its
    imports are a measurable part of a single conversion's start-up)."""
    from transpiler.cli import batch

    return batch


COMMANDS = {"check": _cmd_check, "explain": _cmd_explain, "releases": _cmd_releases, "rules": _cmd_rules,
            "checkpoint": _cmd_checkpoint,
            "batch": lambda argv: _batch().cmd_batch(argv, _parser, add_convert_options, convert_options),
            "verify": lambda argv: verify_cli.cmd_verify(argv, _parser),
            "runtimes": lambda argv: verify_cli.cmd_runtimes(argv, _parser)}


def _run(argv: List[str]) -> int:
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    args = _convert_parser().parse_args(argv)  # --help and usage errors end here, before the pipeline's imports
    from transpiler.pipeline.convert import convert  # here: the commands import what they need themselves
    report = convert(args.input, args.output, convert_options(args), keep=_KEPT_TO_EXIT)
    how = "" if args.verify else " (checked against its op registry; --verify runs it there)"
    wrote = "wrote %s for TF %s%s" % (args.output, report.target, how)
    if args.format == "text":
        _print_converted(report, wrote)
    verified = verify_cli.run_verify(args, args.input, args.output, report.target) if args.verify else None
    if args.format == "json" and verified is None:
        print(report.to_json())
    elif args.format == "json":
        document = json.loads(report.to_json())
        document["verify"] = verified.to_dict()
        print(json.dumps(document, indent=2, sort_keys=True))
    elif args.format == "markdown":
        sections = [report.to_markdown(output.verbose()), wrote[0].upper() + wrote[1:] + "."]
        print("\n\n".join(sections + ([verify_cli.verify_markdown(verified)] if verified is not None else [])))
    if verified is not None and not verified.ok:
        print("%s: %s was written, but it fails in TF %s (see above); it is kept for inspection"
              % (PROG, args.output, report.target), file=sys.stderr)
        return 1
    return 0


def _print_converted(report, wrote: str) -> None:
    """A conversion's text: the rules fired and the notes (-v: each pass), then where OUT is."""
    if output.verbose():
        for line in report.pass_lines():
            print(line)
    output.say(report.fired_summary())
    for note in report.notes:
        output.say("note: " + note)
    output.say(wrote)


def _fail(argv: List[str], code: int, message: str, report=None) -> int:
    """One line on stderr; with --format json or markdown also one document on stdout (the error in it)."""
    print("%s: %s" % (PROG, message), file=sys.stderr)
    document = output.error_document(output.requested_format(argv), message, code, report)
    if document is not None:
        print(document)
    return code


def _run_ended(argv: List[str]) -> int:
    """_run, with any progress line ended before what follows (an error's one line, the exit)."""
    try:
        return _run(argv)
    finally:
        output.end_progress()


#: Cyclic garbage collection thresholds while a command runs (Python's default: 700, 10, 10), for the work
#: outside ir.graph.collections_paused (which a conversion, lifting and lowering run under): reading a model,
#: `check`'s validation, reports. The young generation is still collected (every million allocations), so
#: cycles made and dropped soon (tracebacks, template renders) are freed; the older ones, which hold the IR,
#: are next to never re-scanned.
GC_THRESHOLDS = (1_000_000, 100, 100)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command line; the exit status (0 done, 1 refused or failing, 2 usage, 3 bug, 130 Ctrl-C)."""
    # A command allocates millions of small dicts that live to its end (the IR); at the default thresholds the
    # collector re-scans them so often that it took a third of lifting a large graph. The pipeline makes
    # little cyclic garbage, so collecting less often costs no memory to speak of.
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return _main(argv)
    finally:
        gc.set_threshold(*thresholds)


#: Where a conversion run as the whole process (`run`) leaves its plan, which is then never freed.
_KEPT_TO_EXIT: Optional[list] = None


def run() -> None:
    """The process's entry point (the console script, `python -m transpiler`): main(), then exit.

    The process ends with os._exit once its output is flushed: freeing a big graph's IR and lowered GraphDef
    one object at a time, then the interpreter's own teardown (modules, the release data, the rules), cost
    0.3-0.5 s of CPU at 100 000 nodes for memory the system takes back at once. Every file the command writes
    is closed (and, for OUT, renamed into place) before main() returns; nothing here registers atexit work."""
    global _KEPT_TO_EXIT
    _KEPT_TO_EXIT = []
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): what the interpreter's exit would ignore too
            pass
    os._exit(status)


def _main(argv: Optional[List[str]]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level, argv = output.split_global_flags(sys.argv[1:] if argv is None else argv)
    output.set_level(level)
    try:
        return _run_ended(argv)
    except IncompatibleModel as exc:
        if exc.report is not None and output.requested_format(argv) == "text":
            print(exc.report.to_text(output.verbose()), file=sys.stderr)
        return _fail(argv, exc.exit_code, "error: %s; nothing written" % exc, exc.report)
    except TranspileError as exc:
        return _fail(argv, exc.exit_code, "error: %s" % exc)
    except BrokenPipeError:  # `tf-transpile rules list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return _fail(argv, 130, "interrupted; nothing written")
    except Exception as exc:  # a bug: still one line unless debugging
        if os.environ.get("TF_TRANSPILE_DEBUG"):
            raise
        return _fail(argv, 3, "internal error: %s: %s (set TF_TRANSPILE_DEBUG=1 for a traceback)"
                     % (type(exc).__name__, exc))


if __name__ == "__main__":
    run()
