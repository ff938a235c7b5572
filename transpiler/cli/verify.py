"""`tf-transpile verify`, `--verify` on a conversion, and `tf-transpile runtimes`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from transpiler.cli import output
from transpiler.errors import TranspileError
from transpiler.pipeline.markdown import md_cell, md_table

VERIFY_DESCRIPTION = """\
Load OUT in the real TensorFlow release V, run every signature (a GraphDef's
placeholders -> unconsumed sinks) on the same inputs as IN run in the
reference (the host's TensorFlow unless told), and compare every output:
floats within per-dtype tolerances (float32: rtol 1e-4, atol 1e-5), the rest
exactly. The last line is `verify: PASS ...` or `verify: FAIL ...`.

Where release V runs: --python PATH (any interpreter that imports TF V: your
own old venv, a container's python), else the host's TensorFlow if it is V,
else a runtime provisioned by `tf-transpile runtimes install V`.

A TF 2 target loads a native TF 2 SavedModel with tf.saved_model.load, and
then its trainable variables (object path, dtype, shape, every value) must
equal IN's in the reference. A Keras SavedModel (keras_metadata.pb or
tf.keras objects; --keras: any) is also loaded the Keras way and every
signature run through it: tf.keras.models.load_model before TF 2.16,
keras.layers.TFSMLayer(OUT, call_endpoint=KEY) after; skipped with a note
when IN does not load that way in the reference either.

exit status: 0 every output matches; 1 OUT fails to load or run in V, or an
output or trainable variable differs (named by signature and output), or OUT
does not load the Keras way where IN does; 2 cannot verify (no runtime
for V, IN does not run in the reference, bad inputs file); 3 an internal
error (a bug); 130 interrupted."""

RUNTIMES_DESCRIPTION = """\
Real TensorFlow releases that `verify` runs models in, provisioned by
tf-transpile itself: a Debian root (debootstrap) with Python 2.7 for TF 1.x,
each release in its own directory, cached under $TF_TRANSPILE_RUNTIMES
(default /var/cache/tf-transpile for root, else ~/.cache/tf-transpile).
Installing needs root, debootstrap and network access to PyPI and
deb.debian.org; running needs root (chroot in a private mount namespace)."""


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """Where the target and the reference run, what is fed, and how close is close enough."""
    g = p.add_argument_group("verification")
    g.add_argument("--python", metavar="PATH", help="interpreter that imports the target release's TensorFlow")
    g.add_argument("--reference-release", metavar="R",
                   help="run IN in release R (default: the host's TensorFlow)")
    g.add_argument("--reference-python", metavar="PATH", help="run IN with this interpreter's TensorFlow")
    g.add_argument("--inputs-file", type=Path, metavar="FILE",
                   help="inputs to feed: .npz or JSON {input key or SIGNATURE/KEY: values} (default: generated)")
    g.add_argument("--signature", action="append", default=[], metavar="KEY",
                   help="only this signature (repeatable; default: all)")
    g.add_argument("--rtol", type=float, help="relative tolerance for float outputs (default: per dtype)")
    g.add_argument("--atol", type=float, help="absolute tolerance for float outputs (default: per dtype)")
    g.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="how long one load-and-run may take (default %(default)s)")
    g.add_argument("--keras", dest="keras", action="store_true", default=None,
                   help="also run every signature through OUT loaded the Keras way (tf.keras.models.load_model "
                        "before TF 2.16, keras.layers.TFSMLayer after) even when IN has no Keras metadata "
                        "(default: only for a Keras SavedModel)")
    g.add_argument("--no-keras", dest="keras", action="store_false", default=None,
                   help="never load OUT the Keras way")


def verify_options(args: argparse.Namespace, release: str):
    from transpiler.verify import VerifyOptions

    return VerifyOptions(release=release, python=args.python, reference_release=args.reference_release,
                         reference_python=args.reference_python, inputs_file=args.inputs_file,
                         signatures=tuple(args.signature), rtol=args.rtol, atol=args.atol, timeout=args.timeout,
                         keras=args.keras)


def run_verify(args: argparse.Namespace, model: Path, out: Path, release: str):
    """The VerifyReport of OUT against IN; printed as text (with -q only when it fails) unless
    --format asks for a document, which the caller prints."""
    from transpiler.verify import verify

    report = verify(model, out, verify_options(args, release))
    if args.format == "text" and (not report.ok or not output.quiet()):
        print(report.to_text())
    return report


def verify_markdown(report) -> str:
    """A VerifyReport to paste into a ticket: the verdict line, then one table row per output."""
    lines = ["## tf-transpile verify: %s in TF %s" % (md_cell(report.out), report.target_tf or report.release),
             "", "**%s**" % md_cell(report.summary()), "",
             "- model: %s" % md_cell(report.model), "- reference: %s" % md_cell(report.reference_label)]
    lines += ["- note: %s" % md_cell(note) for note in report.notes]
    if report.error:
        lines.append("- error: %s" % md_cell(report.error))
    for v in report.variables:
        lines.append("- variables %s%d trainable in OUT, %d in IN: %s" % (
            md_cell(v.label), v.count, v.reference_count, "ok" if v.ok else "FAIL"))
        lines.extend("  - FAIL %s" % md_cell(problem) for problem in v.problems)
    rows = []
    for s in report.signatures + report.keras:  # the Keras-way runs label themselves
        if s.error or not s.outputs:
            rows.append((s.label, "", "ok" if s.ok else "FAIL", "", "", "", "", s.error or ""))
        for o in s.outputs:
            rows.append((s.label, o.key, "ok" if o.ok else "FAIL", o.dtype, o.shape,
                         "" if o.max_abs_error is None else "%.3g" % o.max_abs_error,
                         "" if o.max_rel_error is None else "%.3g" % o.max_rel_error, o.detail or ""))
    if rows:
        lines += [""] + md_table(("Signature", "Output", "Result", "Dtype", "Shape", "Max abs", "Max rel",
                                  "Detail"), rows)
    return "\n".join(lines)


def cmd_verify(argv: List[str], parser) -> int:
    p = parser("tf-transpile verify", VERIFY_DESCRIPTION)
    p.add_argument("input", metavar="IN", type=Path, help="the original model")
    p.add_argument("output", metavar="OUT", type=Path, help="the converted model")
    p.add_argument("--release", required=True, metavar="V", help="the release OUT is for, e.g. 1.8")
    p.add_argument("--format", choices=output.FORMATS, default="text",
                   help="report format: text, json (one document, errors included) or markdown (for a ticket)")
    add_verify_options(p)
    args = p.parse_args(argv)
    report = run_verify(args, args.input, args.output, args.release)
    if args.format == "json":
        print(report.to_json())
    elif args.format == "markdown":
        print(verify_markdown(report))
    return 0 if report.ok else 1


def cmd_runtimes(argv: List[str], parser) -> int:
    from transpiler.runtimes import provision

    p = parser("tf-transpile runtimes", RUNTIMES_DESCRIPTION)
    sub = p.add_subparsers(dest="action", required=True, metavar="list|install|remove")
    sub.add_parser("list", help="every release tf-transpile can provision, and which are installed")
    sub.add_parser("install", help="provision releases (downloads about 0.5 GB each)").add_argument(
        "versions", nargs="+", metavar="V")
    sub.add_parser("remove", help="delete provisioned releases").add_argument("versions", nargs="+", metavar="V")
    args = p.parse_args(argv)
    if args.action == "list":
        ready = set(provision.ready_releases())
        output.say("runtimes in %s" % provision.RUNTIMES_DIR)
        for version in provision.RELEASES:
            print("  %-8s %s" % (version, "installed" if version in ready else "-"))
        return 0
    failed = 0
    for version in args.versions:
        try:
            if args.action == "install":
                print("installing TF %s (log: %s/logs/)" % (version, provision.RUNTIMES_DIR), file=sys.stderr)
                rt = provision.ensure_runtime(version)
                print("TF %s installed (%s)" % (rt.version, rt.label))
            elif provision.remove_runtime(version):
                print("TF %s removed" % provision.normalize_version(version))
            else:
                print("TF %s was not installed" % provision.normalize_version(version))
        except provision.RuntimeUnavailable as exc:
            failed += 1
            print("tf-transpile: error: TF %s: %s (or verify with --python PATH: an interpreter that imports "
                  "that release)" % (version, str(exc).splitlines()[0]), file=sys.stderr)
    if failed:
        raise TranspileError("%d of %d release(s) failed" % (failed, len(args.versions)))
    return 0
