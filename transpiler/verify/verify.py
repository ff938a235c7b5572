"""`verify IN OUT --release V`: OUT in real TF V computes what IN computes in its reference.

Steps, in order:
 1. describe: the loads and signatures of IN and of OUT (plans.py);
 2. pair: each load of IN with OUT's load of the same tag set (or the only one), each of IN's
    signatures with OUT's signature of the same key;
 3. inputs: the user's arrays (--inputs-file) or ones generated from IN's signature (inputs.py),
    the same arrays for both sides;
 4. run: IN in the reference runtime (the host's TF unless told), OUT in the target's, each load
    in one loader process, its signatures in order (a stateful model's sequence reproduces);
 5. compare every output (compare.py) and report per signature and output;
 6. TF 2 on both sides (tf.saved_model.load): compare the trainable variables (variables.py),
    and for a Keras SavedModel (or with keras=True) run each signature again through the model
    as Keras loads it in each release: tf.keras.models.load_model before TF 2.16, else
    keras.layers.TFSMLayer. Where IN does not load that way in the reference, a note says so
    and the Keras check is skipped; where OUT does not in the target, it fails.

``verify`` never raises for what it finds about OUT: a load failure, a missing signature or
output, a crash or a timeout of the target's runtime, wrong numbers are all a failing
``VerifyReport``. It raises TranspileError (exit 2) when it cannot judge: no runtime for a
release, IN that does not run in the reference, unreadable inputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from transpiler.errors import TranspileError
from transpiler.io.readers import read_model
from transpiler.runtimes import provision, runner
from transpiler.verify import inputs as verify_inputs
from transpiler.verify.compare import OutputCheck, compare
from transpiler.verify.plans import Load, Side, Signature, describe
from transpiler.verify.variables import VariablesCheck, compare_variables

#: The step id of signature KEY run the Keras way.
KERAS_STEP = "keras:%s"


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    release: str
    python: Optional[str] = None
    reference_release: Optional[str] = None
    reference_python: Optional[str] = None
    inputs_file: Optional[Path] = None
    #: Only these signature keys (all when empty).
    signatures: Sequence[str] = ()
    rtol: Optional[float] = None
    atol: Optional[float] = None
    #: Seconds each loader run may take.
    timeout: float = 600.0
    #: Also load and run OUT the Keras way: None (auto) for a Keras SavedModel, True any native TF 2
    #: SavedModel (TFSMLayer targets, TF >= 2.16; tf.keras 2 needs Keras metadata), False never.
    keras: Optional[bool] = None


@dataclasses.dataclass
class SignatureCheck:
    key: str
    tags: Optional[List[str]]
    ok: bool
    outputs: List[OutputCheck] = dataclasses.field(default_factory=list)
    #: Why the signature failed as a whole (OUT did not load, the step failed, ...).
    error: Optional[str] = None
    #: The input arrays fed: key -> [dtype, shape].
    inputs: Dict[str, list] = dataclasses.field(default_factory=dict)
    #: How OUT was loaded when not with its release's SavedModel loader (the Keras way).
    via: Optional[str] = None

    @property
    def label(self) -> str:
        return ("[%s] " % ",".join(self.tags) if self.tags is not None else "") + self.key + (
            " via %s" % self.via if self.via else "")


@dataclasses.dataclass
class VerifyReport:
    model: str
    out: str
    release: str
    runtime: str = ""
    target_tf: str = ""
    reference: str = ""
    reference_tf: str = ""
    signatures: List[SignatureCheck] = dataclasses.field(default_factory=list)
    #: The signatures run again through the model as Keras loads it (see VerifyOptions.keras).
    keras: List[SignatureCheck] = dataclasses.field(default_factory=list)
    #: The trainable variables, per load, where both sides load with tf.saved_model.load.
    variables: List[VariablesCheck] = dataclasses.field(default_factory=list)
    #: A failure before any signature ran (OUT unreadable, the target's runtime crashed...).
    error: Optional[str] = None
    #: How verify ran things where there was a choice.
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.error is None and bool(self.signatures) and all(s.ok for s in self.signatures + self.keras)
                and all(v.ok for v in self.variables))

    def summary(self) -> str:
        """One line a CI job can grep: `verify: PASS ...` or `verify: FAIL ...`."""
        outs = [o for s in self.signatures for o in s.outputs]
        matched = sum(o.ok for o in outs)
        where = "TF %s" % (self.target_tf or self.release)
        extra = "".join("; %s%s" % (v.label, v.summary()) for v in self.variables)
        if self.keras:
            extra += "; %d/%d run(s) the Keras way ok" % (sum(k.ok for k in self.keras), len(self.keras))
        if self.ok:
            return "verify: PASS %s: %d/%d outputs of %d signature(s) match %s in %s%s" % (
                self.out, matched, len(outs), len(self.signatures), self.reference_label, where, extra)
        failed = [s.label for s in self.signatures + self.keras if not s.ok]
        why = self.error or ("no signature to run" if not self.signatures else
                             "%d/%d outputs match%s%s" % (matched, len(outs), "; failing: " if failed else "",
                                                          ", ".join(failed)))
        return "verify: FAIL %s in %s: %s%s" % (self.out, where, why, "" if self.error else extra)

    @property
    def reference_label(self) -> str:
        return "%s (TF %s)" % (self.reference, self.reference_tf) if self.reference_tf else self.reference

    def to_text(self) -> str:
        lines = ["model:     %s" % self.model, "out:       %s" % self.out,
                 "target:    TF %s (%s)" % (self.target_tf or self.release, self.runtime),
                 "reference: %s" % self.reference_label]
        lines.extend("note:      %s" % note for note in self.notes)
        if self.error:
            lines.append("error:     %s" % self.error)
        for s in self.signatures + self.keras:
            lines.append("signature %s: %s" % (s.label, "ok" if s.ok else "FAIL"))
            if s.error:
                lines.append("  error: %s" % s.error)
            for o in s.outputs:
                err = "" if o.max_abs_error is None else "  max abs %.3g, max rel %.3g" % (
                    o.max_abs_error, o.max_rel_error or 0.0)
                lines.append("  %-4s %s %s %s%s%s" % ("ok" if o.ok else "FAIL", o.key, o.dtype, o.shape, err,
                                                      "  (%s)" % o.detail if o.detail else ""))
        for v in self.variables:
            lines.append("variables %s%d trainable in OUT, %d in IN: %s" % (
                v.label, v.count, v.reference_count, "ok" if v.ok else "FAIL"))
            lines.extend("  FAIL %s" % problem for problem in v.problems)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        doc = dataclasses.asdict(self)
        doc.update(ok=self.ok, summary=self.summary())
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def verify(model: Path, out: Path, options: VerifyOptions) -> VerifyReport:
    """Run IN in the reference and OUT in real TF `options.release` on the same inputs and compare."""
    in_side = describe(read_model(Path(model), require_variables=False))
    report = VerifyReport(str(model), str(out), options.release)
    target = _runtime(options.release, options.python, "--release")
    reference = _reference_runtime(options)
    report.runtime, report.reference = target.label, reference.label
    try:
        out_side = describe(read_model(Path(out), require_variables=False))
    except TranspileError as exc:
        report.error = "OUT cannot be read: %s" % exc
        return report
    given = verify_inputs.read_inputs_file(options.inputs_file) if options.inputs_file else {}
    for load in in_side.loads:
        report.signatures += _verify_load(in_side, load, out_side, given, target, reference, options, report)
    if not report.signatures and report.error is None:
        report.error = "IN has no signature to run%s" % (
            " among %s" % ", ".join(options.signatures) if options.signatures else "")
    return report


def _runtime(release: str, python: Optional[str], flag: str):
    try:
        return runner.find_runtime(release, python)
    except provision.RuntimeUnavailable as exc:
        raise TranspileError("%s %s: %s" % (flag, release, exc)) from None


def _reference_runtime(options: VerifyOptions):
    if options.reference_python or options.reference_release:
        return _runtime(options.reference_release or "?", options.reference_python, "--reference-release")
    return runner.host_runtime()


def _verify_load(in_side: Side, load: Load, out_side: Side, given, target, reference,
                 options: VerifyOptions, report: VerifyReport) -> List[SignatureCheck]:
    sigs = [s for k, s in sorted(load.signatures.items()) if not options.signatures or k in options.signatures]
    if not sigs:
        return []
    arrays = {}
    for sig in sigs:
        arrays.update(_inputs_for(sig, load, given))
    out_load = _paired_load(load, out_side)
    if out_load is None:
        return [SignatureCheck(s.key, load.tags, False, error="OUT has no meta graph tagged %s (has %s)" % (
            load.tags, [ld.tags for ld in out_side.loads])) for s in sigs]
    if load.tags is not None and out_load.tags is not None and sorted(load.tags) != sorted(out_load.tags):
        report.notes.append("IN's meta graph tagged %s is compared with OUT's only one, tagged %s" % (
            ",".join(load.tags) or "-", ",".join(out_load.tags) or "-"))
    tf2_api = _is_tf2(options.reference_release or runner.host_version() or "2") and load.native_tf2
    both_tf2 = tf2_api and _is_tf2(options.release)
    keras = both_tf2 and _keras_wanted(load, options, report)
    wd = runner.workdir()   # each side's trainable variables, compared once both have run
    try:
        want = _run(reference, in_side, load, sigs, sigs, arrays, options, tf2_api, keras,
                    str(wd / "in.npz") if both_tf2 else None)
        if want.get("error") and tf2_api:
            # tf.saved_model.load is stricter than the TF 1 loader (a Keras model's optimizer slots, say):
            # IN's numbers come from the loader that takes IN, and OUT is held to that loader, not a stricter one
            want = _run(reference, in_side, load, sigs, sigs, arrays, options, tf2_api=False)
            tf2_api = both_tf2 = keras = False
            report.notes.append("%sIN does not load with tf.saved_model.load in the reference; both sides were "
                                "loaded with the TF 1 loader" % load.label)
        if want.get("error"):
            raise TranspileError("IN does not run in the reference (%s): %s; name one that runs it with "
                                 "--reference-release or --reference-python" % (reference.label, want["error"]))
        report.reference_tf = want.get("tf_version") or ""
        out_sigs = [_run_as(s, out_load) for s in sigs]
        present = [(s, o) for s, o in zip(sigs, out_sigs) if o is not None]
        got = _run(target, out_side, out_load, [s for s, _ in present], [o for _, o in present], arrays, options,
                   _is_tf2(options.release) and (tf2_api or not load.native_tf2), keras,
                   str(wd / "out.npz") if both_tf2 else None)
        report.target_tf = got.get("tf_version") or report.target_tf
        _check_target_version(report, options)
        checks = [_check_signature(s, o, load, out_load, arrays, want, got, options) for s, o in zip(sigs, out_sigs)]
        if keras and not got.get("error"):
            report.keras += _keras_checks(sigs, out_sigs, load, out_load, arrays, want, got, options, report)
        if both_tf2:
            _check_variables(load, want, got, wd, report)
        return checks
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


def _check_variables(load: Load, want: dict, got: dict, wd: Path, report: VerifyReport) -> None:
    """OUT's trainable variables (wd/out.npz) against IN's (wd/in.npz) into the report: a failing check
    when OUT's differ or cannot be read, a note when IN's cannot be or OUT was not loaded the TF 2 way."""
    if "variables" in want and "variables" in got:
        report.variables.append(compare_variables(load.tags, want["variables"], str(wd / "in.npz"),
                                                  got["variables"], str(wd / "out.npz")))
    elif "variables" in want and "variables_error" in got:
        report.variables.append(VariablesCheck(load.tags, False, 0, len(want["variables"]), [
            "OUT's trainable variables cannot be read in the target: %s" % got["variables_error"]]))
    elif "variables_error" in want:
        report.notes.append("%sIN's trainable variables cannot be read in the reference (%s): not compared"
                            % (load.label, want["variables_error"]))
    elif not got.get("error"):
        report.notes.append("%sOUT is not a native TF 2 SavedModel: its trainable variables were not compared"
                            % load.label)


def _keras2_target(release: str) -> bool:
    """Before TF 2.16, tf.keras is Keras 2: it loads a SavedModel with tf.keras.models.load_model."""
    parts = release.split(".")
    return len(parts) > 1 and parts[0] == "2" and parts[1].isdigit() and int(parts[1]) < 16


def _keras_wanted(load: Load, options: VerifyOptions, report: VerifyReport) -> bool:
    """Whether to run `load` the Keras way too (see VerifyOptions.keras); a note when asked but
    not possible."""
    if options.keras is False or (options.keras is None and not load.keras):
        return False
    if not load.keras and _keras2_target(options.release):
        report.notes.append("%sIN has no Keras metadata: tf.keras.models.load_model, how TF %s loads a SavedModel "
                            "the Keras way, needs it; the Keras check is skipped" % (load.label, options.release))
        return False
    return True


def _keras_checks(sigs, out_sigs, load: Load, out_load: Load, arrays, want: dict, got: dict,
                  options: VerifyOptions, report: VerifyReport) -> List[SignatureCheck]:
    """Each signature run the Keras way in the target against IN's outputs in the reference; skipped
    (with a note) where IN does not load or run the Keras way in the reference either."""
    checks = []
    for sig, out_sig in zip(sigs, out_sigs):
        ref = want["steps"].get(KERAS_STEP % sig.key, {})
        if not ref.get("ok"):
            report.notes.append("%sIN's signature %s does not run the Keras way in the reference (%s: %s); its "
                                "Keras check is skipped" % (load.label, sig.key, ref.get("stage", "run"),
                                                            _first_line(ref.get("error", "not run"))))
            continue
        check = _check_signature(sig, out_sig, load, out_load, arrays, want, got, options, KERAS_STEP % sig.key)
        check.via = got["steps"].get(KERAS_STEP % sig.key, {}).get("mode") or (
            "tf.keras.models.load_model" if _keras2_target(options.release) else "keras.layers.TFSMLayer")
        checks.append(check)
    return checks


def _check_target_version(report: VerifyReport, options: VerifyOptions) -> None:
    if report.target_tf and not runner.same_release(report.target_tf, options.release):
        raise TranspileError("the target's runtime (%s) runs TF %s, not %s" % (
            report.runtime, report.target_tf, options.release))


def _is_tf2(release: str) -> bool:
    """TF 2.x users load a native TF 2 SavedModel with tf.saved_model.load: verify does too."""
    head = release.split(".")[0]
    return head.isdigit() and int(head) >= 2


def _run_as(sig: Signature, out_load: Load) -> Optional[Signature]:
    """OUT's signature for IN's `sig`: its SignatureDef of the same key; when OUT declares none at all
    (a GraphDef), IN's signature run by tensor names; None when OUT declares others but not this one."""
    declared = {k: s for k, s in out_load.signatures.items() if s.declared}
    if declared:
        return declared.get(sig.key)
    return dataclasses.replace(sig, declared=False)


def _paired_load(load: Load, out_side: Side) -> Optional[Load]:
    for candidate in out_side.loads:
        if sorted(candidate.tags or []) == sorted(load.tags or []):
            return candidate
    return out_side.loads[0] if len(out_side.loads) == 1 else None


def _inputs_for(sig: Signature, load: Load, given: Mapping[str, object]) -> Dict[str, object]:
    features = None
    arrays = {}
    for key, (tensor, dtype, shape) in sorted(sig.inputs.items()):
        value = verify_inputs.user_value(given, sig.key, key, tensor, dtype)
        if value is None:
            if features is None:
                features = verify_inputs.example_features(load.graph_def)
            value = verify_inputs.generated_value("%s/%s" % (sig.key, key), dtype, shape, features)
        arrays["%s/%s" % (sig.key, key)] = value
    return arrays


def _step(sig: Signature, run_as: Signature) -> dict:
    """The loader step that runs `sig`'s inputs through `run_as` (OUT's signature of the same key, or
    IN's derived one when OUT has none declared: the same tensor names)."""
    feeds = {key: "%s/%s" % (sig.key, key) for key in sig.inputs}
    if run_as.declared:
        return {"id": sig.key, "signature": run_as.key, "inputs": feeds}
    return {"id": sig.key, "feeds": {run_as.inputs[k][0]: v for k, v in feeds.items() if k in run_as.inputs},
            "fetches": dict(run_as.outputs)}


def _keras_step(sig: Signature, run_as: Signature) -> dict:
    """The loader step that runs `sig`'s inputs through OUT's signature `run_as` the Keras way."""
    return {"id": KERAS_STEP % sig.key, "keras": run_as.key,
            "inputs": {key: "%s/%s" % (sig.key, key) for key in sig.inputs}}


def _run(rt, side: Side, load: Load, sigs: List[Signature], run_as: List[Signature], arrays, options, tf2_api,
         keras: bool = False, variables: Optional[str] = None):
    """{"tf_version", "steps"(, "variables")} or {"error"}: what the loader reported, never raising for the
    model. `keras`: each signature also the Keras way; `variables`: the .npz for the trainable variables."""
    steps = [_step(s, r) for s, r in zip(sigs, run_as)]
    if keras:
        steps += [_keras_step(s, r) for s, r in zip(sigs, run_as) if r.declared]
    try:
        return runner.run_plan(rt, side.plan(load, steps, tf2_api, variables), arrays, timeout=options.timeout)
    except runner.ReleaseLoadError as exc:
        return {"error": "%s failed: %s" % (exc.stage or "load", _first_line(exc.message))}
    except runner.LoaderTimeout as exc:
        return {"error": str(exc) + _tail(exc.tail)}
    except runner.LoaderCrashed as exc:
        return {"error": exc.summary + _tail(exc.tail)}


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:500] if lines else ""


def _tail(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()][-3:]
    return "; last lines: " + " | ".join(ln.strip()[:200] for ln in lines) if lines else ""


def _check_signature(sig: Signature, out_sig: Optional[Signature], load: Load, out_load: Load, arrays,
                     want: dict, got: dict, options: VerifyOptions, got_step: Optional[str] = None) -> SignatureCheck:
    """OUT's step `got_step` (default: signature `sig` run by its loader) against IN's signature `sig`."""
    import numpy as np

    check = SignatureCheck(sig.key, load.tags, False, inputs={
        k: [str(np.asarray(arrays["%s/%s" % (sig.key, k)]).dtype), list(np.shape(arrays["%s/%s" % (sig.key, k)]))]
        for k in sig.inputs})
    if out_sig is None:
        check.error = "OUT has no signature %s (has %s)" % (sig.key, ", ".join(sorted(out_load.signatures)) or "none")
        return check
    if got.get("error"):
        check.error = "OUT: " + got["error"]
        return check
    ref, res = want["steps"].get(sig.key, {}), got["steps"].get(got_step or sig.key, {})
    if not ref.get("ok"):
        raise TranspileError("IN's signature %s does not run in the reference: %s" % (sig.key, ref.get("error")))
    if not res.get("ok"):
        check.error = "OUT: %s failed: %s" % (res.get("stage", "run"), _first_line(res.get("error", "not run")))
        return check
    missing = sorted(set(ref["outputs"]) - set(res["outputs"]))
    check.outputs = [compare(k, res["outputs"][k], ref["outputs"][k], options.rtol, options.atol)
                     for k in sorted(ref["outputs"]) if k in res["outputs"]]
    check.outputs += [OutputCheck(k, str(ref["outputs"][k].dtype), [], list(ref["outputs"][k].shape), False,
                                  detail="missing in OUT") for k in missing]
    check.ok = bool(check.outputs) and all(o.ok for o in check.outputs)
    return check
