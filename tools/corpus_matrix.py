#!/usr/bin/env python3
"""Every corpus model (tests/data) through every target release: is tf-transpile
ever worse than its input?

    PYTHONPATH=. python3 tools/corpus_matrix.py [--releases 1.4,1.8,1.12,1.15,2.21]
        [--models NAME,...] [--jobs 1|2] [--json OUT.json] [--markdown OUT.md] [--keep DIR]

For each (model, release): (a) the model as is in the real release, (b)
``python3 -m transpiler IN OUT --to V``, (c) OUT in the real release, compared
with (a) and reference_io.json, plus ``tf-transpile check``; (d) verdicts.
tests/corpus_matrix.py has the details (and tests/test_corpus_matrix.py
asserts the same verdicts).  Real releases come from tests/runtime_fixtures.py
(provisioned under $TF_TRANSPILE_RUNTIMES); "2.21" is the host TensorFlow.

Prints a markdown table model x release, cells "as-is A | C" where
A is ✓ (loads, every signature / sink runs, reference_io matches),
◐ (loads, some step fails) or ✗ (does not load), and C is
"converted ✓", "refused" (exit 1/2), "false-success" (exit 0, but OUT
does not load / run / match) or ✗ (crash or timeout); ⚠NW marks a never-worse
violation.  Then one summary line per release and every failure.
"""
import argparse
import concurrent.futures
import json
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_REPO, "tests"))
sys.path.insert(0, _REPO)

import corpus_matrix as cm  # noqa: E402


def _log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def run(models, releases, jobs, keep=None):
    pairs = [(m, r) for m in models for r in releases]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        # units first, serially (importing TensorFlow from two threads at once
        # deadlocks); then every as-is run, then conversions: a conversion
        # compares with as-is results of other releases
        for m in models:
            cm.units_of(m)
        futs = {ex.submit(cm.as_is, m, r): (m, r) for m, r in pairs}
        for i, f in enumerate(concurrent.futures.as_completed(futs), 1):
            m, r = futs[f]
            a = f.result()
            _log("as-is %d/%d %s %s: %s" % (i, len(pairs), m, r,
                                            "ok" if a["complete"] else a["error"]))
        futs = {ex.submit(cm.evaluate, m, r, keep): (m, r) for m, r in pairs}
        records = {}
        for i, f in enumerate(concurrent.futures.as_completed(futs), 1):
            m, r = futs[f]
            rec = f.result()
            records[(m, r)] = rec
            _log("%d/%d %s %s: %s" % (i, len(pairs), m, r, cm.cell(rec).replace("\\|", "|")))
    return [records[p] for p in pairs]


def summary_lines(records, releases, n_models):
    lines = []
    for r in releases:
        recs = [x for x in records if x["release"] == r]
        asis = sum(1 for x in recs if x["status_as_is"] == "✓")
        partial = sum(1 for x in recs if x["status_as_is"] == "◐")
        conv = sum(1 for x in recs if x["status_converted"] == "✓")
        nw = sum(1 for x in recs if x["never_worse_violations"])
        fs = sum(1 for x in recs if x["false_success"])
        refused = sum(1 for x in recs if x["status_converted"] == "refused")
        chk = sum(1 for x in recs if x["check_disagrees"])
        lines.append("TF %s: loads as-is %d/%d, after tf-transpile %d/%d, never-worse violations %d, "
                     "false successes %d  (as-is loads but some step fails: %d; refused: %d; "
                     "check disagrees: %d)"
                     % (r, asis, n_models, conv, n_models, nw, fs, partial, refused, chk))
    return lines


def markdown(records, models, releases):
    by = {(x["model"], x["release"]): x for x in records}
    out = ["| model | " + " | ".join("TF %s" % r for r in releases) + " |",
           "|---|" + "---|" * len(releases)]
    for m in models:
        out.append("| %s | " % m + " | ".join(cm.cell(by[(m, r)]) if (m, r) in by else ""
                                               for r in releases) + " |")
    out.append("")
    out.append("Cells: `as-is A \\| C`. A: ✓ loads and every signature / sink runs (reference_io "
               "matches), ◐ loads but some step fails, ✗ does not load. C: converted ✓ (OUT loads "
               "and matches), refused (exit 1/2), false-success (exit 0 but OUT does not load, "
               "run or match, or has the wrong form), ✗ (crash or timeout). ⚠NW: never-worse "
               "violation.")
    out.append("")
    out += ["- " + s for s in summary_lines(records, releases, len(models))]
    return "\n".join(out)


def failure_lines(records):
    out = []
    for x in records:
        m, r = x["model"], x["release"]
        a = x["as_is"]
        if not a["complete"]:
            out.append("- %s @ %s, as-is: %s" % (m, r, a["error"]))
        c = x["convert"]
        if c["exit"] != 0:
            out.append("- %s @ %s, convert (exit %s): %s" % (m, r, c["exit"], c["last_line"]))
        for f in x["converted"].get("failures") or []:
            out.append("- %s @ %s, %s%s%s: %s" % (
                m, r, f["stage"], " " + f["step"] if f["step"] else "",
                "" if f["checkable"] else " (not checkable: never ran as-is)", f["error"]))
        for d in x["check_disagrees"]:
            out.append("- %s @ %s, check: %s" % (m, r, d))
    return out


def header(a, argv, elapsed):
    cmd = "PYTHONPATH=. python3 tools/corpus_matrix.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    return ("# Corpus matrix: tf-transpile never worse than its input?\n\n"
            "`%s` (%s, %.0f min; tf-transpile at %s). Every model of tests/data through every "
            "release: as is, converted with `python3 -m transpiler IN OUT --to V`, the output "
            "loaded and compared (tests/corpus_matrix.py). The full records are in the JSON "
            "written with --json; a compact form is at the end.\n\n"
            % (cmd, time.strftime("%Y-%m-%d %H:%M"), elapsed / 60, _git_head()))


def _git_head():
    try:
        import subprocess
        return subprocess.run(["git", "-C", _REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def compact_json(records):
    rows = []
    for x in records:
        conv = x["converted"]
        rows.append({
            "model": x["model"], "release": x["release"],
            "as_is": x["status_as_is"], "as_is_error": x["as_is"]["error"],
            "convert_exit": x["convert"]["exit"], "convert_last_line": x["convert"]["last_line"],
            "converted": x["status_converted"], "converted_error": conv.get("error"),
            "check_in": x["check_in"]["summary"] or ("blocks" if x["check_in"]["blocks"]
                                                      else "nothing blocks"),
            "check_out": (None if not conv.get("check_out") else
                          conv["check_out"]["summary"] or ("blocks" if conv["check_out"]["blocks"]
                                                           else "nothing blocks")),
            "never_worse_violations": x["never_worse_violations"],
            "false_success": x["false_success"], "check_disagrees": x["check_disagrees"]})
    return ("## Records (compact JSON)\n\n```json\n"
            + json.dumps(rows, indent=1, ensure_ascii=False) + "\n```\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", default=",".join(cm.RELEASES),
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--models", default="", help="comma-separated corpus names (default: all)")
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2))
    ap.add_argument("--json", metavar="OUT", help="write every record as JSON")
    ap.add_argument("--markdown", metavar="OUT", help="also write the table and failures here")
    ap.add_argument("--keep", metavar="DIR", help="keep converted models in DIR/<model>__<release>")
    a = ap.parse_args(argv)
    releases = [r.strip() for r in a.releases.split(",") if r.strip()]
    bad = [r for r in releases if r not in cm.RELEASES]
    if bad:
        ap.error("unknown release(s) %s (known: %s)" % (bad, ", ".join(cm.RELEASES)))
    models = [m.strip() for m in a.models.split(",") if m.strip()] or cm.models()
    unknown = [m for m in models if m not in cm.manifest()]
    if unknown:
        ap.error("not in tests/data/manifest.json: %s" % ", ".join(unknown))
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    t0 = time.time()
    records = run(models, releases, a.jobs, a.keep)
    elapsed = time.time() - t0
    table = markdown(records, models, releases)
    fails = failure_lines(records)
    text = table + "\n\nFailures (model @ release, stage: first error line):\n\n" + (
        "\n".join(fails) or "none") + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(header(a, argv, elapsed) + text + "\n" + compact_json(records))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"releases": releases, "models": models, "seconds": round(elapsed),
                       "records": records}, f, indent=1, sort_keys=True, ensure_ascii=False,
                      default=str)
    _log("done in %.0f s" % elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
