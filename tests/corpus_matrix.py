"""The public corpus through every target release: "never worse than the input".

For one (model, release) -- a model of tests/data (manifest.json) and a target
release of RELEASES -- ``evaluate`` does:

 (a) as-is: load the model unchanged in the real release (every tag set of a
     SavedModel; a .meta with the checkpoint beside it; a GraphDef imported)
     and run every signature (GraphDefs / .meta: the manifest's graph_sinks,
     fed graph_inputs), fed reference_io.json where present (its expected
     outputs checked within its tolerances) and generated inputs otherwise;
 (b) convert: ``python -m transpiler IN OUT --to V`` with OUT named like IN
     (a directory for a SavedModel, OUT.pb / OUT.pbtxt / OUT.meta for files);
 (c) if (b) exited 0: check OUT has IN's form, load OUT the same way and compare
     every step with (a) in the same release (or, where (a) failed there, with
     the first release that ran it as-is: host 2.21, 1.15, 1.12, 1.8, 1.4) and
     with reference_io; also ``tf-transpile check OUT --to V`` (and
     ``check IN``), recorded, not judged;
 (d) verdicts: ``never_worse`` is violated when (a) loaded but (b) refused or
     (c) fails to load / to run a step (a) ran / gives different numbers;
     ``false_success`` when (b) exited 0 but (c) fails (wrong form, no load,
     a step that ran somewhere as-is or has reference outputs fails or differs).

Runs go through runtime_fixtures.run_plan_in_release (tests/harness/tf1_run.py
--plan): one process per (model, tag set, release), signatures in order in one
session (the counter model's stateful sequence), unseeded random ops seeded
from their names (so two loads of a GraphDef / .meta agree).

Used by tests/test_corpus_matrix.py and tools/corpus_matrix.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import runtime_fixtures as rf  # noqa: E402
from transpiler.verify import inputs as verify_inputs  # noqa: E402
from transpiler.verify.compare import compare as verify_compare  # noqa: E402
from transpiler.verify.inputs import example_features, make_examples  # noqa: E402,F401  (used below)

REPO = os.path.dirname(_HERE)
DATA_DIR = os.path.join(_HERE, "data")

#: target releases, as given to --to; "2.21" is the host TensorFlow.
RELEASES = ("1.4", "1.8", "1.12", "1.15", "2.21")
_RUNTIME = {"1.4": "1.4.0", "1.8": "1.8.0", "1.12": "1.12.0", "1.15": "1.15.0", "2.21": "host"}
#: where a step's reference numbers come from when it failed as-is in the target
_BASELINE_ORDER = ("2.21", "1.15", "1.12", "1.8", "1.4")

#: Options a model's conversion gets, as the tool's own notes advise for it: the matrix machines
#: have no GPU, and this model pins every node to one (its as-is load fails in every release).
CONVERT_OPTIONS = {"tensorflow__xla_lstm_layer_inference": ["--clear-devices"]}

RUN_TIMEOUT = 900
CLI_TIMEOUT = 900

# Generated inputs that cannot be read off the model: old GraphDefs whose
# Placeholder shape {} means "unknown" (producer < 21). Chosen by hand from
# the consumers' shapes (MNIST.pb: x-input @ weights[784, 10]).
INPUT_SHAPES = {
    "haskell__mnist": {"x-input:0": [2, 784], "y-input:0": [2, 10]},
}


# ---------------------------------------------------------------------------
# the corpus

_MANIFEST = None


def manifest() -> Dict[str, dict]:
    global _MANIFEST
    if _MANIFEST is None:
        with open(os.path.join(DATA_DIR, "manifest.json")) as f:
            _MANIFEST = {m["path"]: m for m in json.load(f)["models"]}
    return _MANIFEST


def models() -> List[str]:
    return sorted(manifest(), key=str.lower)


class ModelInput:
    """Where a corpus model is and how to load it."""

    def __init__(self, name: str):
        self.name = name
        self.entry = entry = manifest()[name]
        self.dir = os.path.join(DATA_DIR, name)
        fmt = entry["format"]
        self.encoding = entry.get("encoding")
        self.checkpoint = None
        if fmt == "saved_model":
            self.kind = "saved_model"
            self.path = self.dir
        elif fmt == "meta_graph":
            self.kind = "meta_graph"
            (meta,) = [f for f in entry["files"] if f.endswith(".meta")] or [
                f for f in entry["files"] if f.endswith((".pb", ".pbtxt"))][:1]
            self.path = os.path.join(self.dir, meta)
            self.checkpoint = checkpoint_beside(self.path)
        else:
            self.kind = "graph_def"
            gf = entry.get("graph_file") or [f for f in entry["files"]
                                             if f.endswith((".pb", ".pbtxt"))][0]
            self.path = os.path.join(self.dir, gf)

    @property
    def form(self) -> str:
        """"dir", or the file suffix OUT must have."""
        if self.kind == "saved_model":
            return "dir"
        return os.path.splitext(self.path)[1]


def checkpoint_beside(meta_path: str) -> Optional[str]:
    """The checkpoint prefix of X.meta: X when X.index or X (a V1 file) exists,
    else the model_checkpoint_path of a "checkpoint" file beside it."""
    prefix = meta_path[:-len(".meta")] if meta_path.endswith(".meta") else None
    if prefix and (os.path.exists(prefix + ".index") or os.path.isfile(prefix)):
        return prefix
    state = os.path.join(os.path.dirname(meta_path), "checkpoint")
    if os.path.isfile(state):
        m = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', open(state).read(), re.M)
        if m:
            p = os.path.join(os.path.dirname(meta_path), m.group(1))
            if os.path.exists(p + ".index") or os.path.isfile(p):
                return p
    return None


# ---------------------------------------------------------------------------
# reading models on the host (protos only)

def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    return tf


def _parse(msg, path, encoding=None):
    from google.protobuf import text_format
    with open(path, "rb") as f:
        data = f.read()
    if encoding == "text" or (encoding is None and path.endswith((".pbtxt", ".txt"))):
        text_format.Parse(data.decode("utf-8"), msg, allow_unknown_field=True)
        return msg
    try:
        msg.ParseFromString(data)
    except Exception:
        msg.Clear()
        text_format.Parse(data.decode("utf-8"), msg, allow_unknown_field=True)
    return msg


def read_saved_model(path: str):
    from tensorflow.core.protobuf import saved_model_pb2
    _tf()
    for fname in ("saved_model.pb", "saved_model.pbtxt"):
        p = os.path.join(path, fname)
        if os.path.exists(p):
            return _parse(saved_model_pb2.SavedModel(), p)
    raise FileNotFoundError("no saved_model.pb(txt) in %s" % path)


def read_graph(kind: str, path: str, encoding=None):
    """(MetaGraphDef or None, GraphDef) of a .meta or GraphDef file."""
    _tf()
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    if kind == "meta_graph":
        mg = _parse(meta_graph_pb2.MetaGraphDef(), path, encoding)
        return mg, mg.graph_def
    return None, _parse(graph_pb2.GraphDef(), path, encoding)


def generated_value(model: str, tensor: str, dtype: str, shape, features=None):
    """transpiler.verify's generated input for a tensor (seeded by model/tensor), except where
    INPUT_SHAPES knows the shape better than the model says."""
    shape = INPUT_SHAPES.get(model, {}).get(tensor, shape)
    return verify_inputs.generated_value("%s/%s" % (model, tensor), dtype, shape, features)


def _shape_of(tensor_info):
    if not tensor_info.HasField("tensor_shape") or tensor_info.tensor_shape.unknown_rank:
        return None
    return [d.size for d in tensor_info.tensor_shape.dim]


def _dtype_name(enum_value) -> str:
    from tensorflow.core.framework import types_pb2
    return types_pb2.DataType.Name(enum_value)


def _reference_cases(name: str) -> List[dict]:
    path = os.path.join(DATA_DIR, name, "reference_io.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["cases"]


def _ref_value(spec):
    if spec.get("kind", "tensor") == "tf_example_batch":
        feats = {spec["feature"]: (spec.get("feature_dtype", "float"), [1])}
        return make_examples(feats, spec["values"])
    return np.asarray(spec["value"], dtype=spec["dtype"])


class Unit:
    """One load of a model (a tag set of a SavedModel, or the whole file) and
    the steps run against it."""

    def __init__(self, tags=None):
        self.tags = tags
        self.steps: List[dict] = []       # tf1_run.py plan steps
        self.arrays: Dict[str, np.ndarray] = {}
        self.expected: Dict[str, dict] = {}   # step id -> {out key: (array, rtol, atol)}
        self.labels: Dict[str, str] = {}      # step id -> human label

    @property
    def label(self):
        if self.tags is None:
            return ""
        return "[%s]" % ",".join(self.tags)

    def add(self, label, step, arrays, expected=None):
        sid = "s%d" % len(self.steps)
        step = dict(step, id=sid)
        for k, v in arrays.items():
            key = "%s_%s" % (sid, k)
            self.arrays[key] = v
            if "inputs" in step:
                step["inputs"][k] = key
            else:
                step["feeds"][k] = key
        self.steps.append(step)
        self.labels[sid] = label
        if expected:
            self.expected[sid] = expected
        return sid


def model_units(name: str) -> List[Unit]:
    """The loads and steps that exercise a corpus model (derived from the input
    model only, so the converted model is run the same way)."""
    mi = ModelInput(name)
    entry = mi.entry
    refs = _reference_cases(name)
    units = []
    if mi.kind == "saved_model":
        sm = read_saved_model(mi.path)
        for mg in sm.meta_graphs:
            unit = Unit(list(mg.meta_info_def.tags))
            sigs = mg.signature_def
            feats = example_features(mg.graph_def)
            covered = set()
            for ci, case in enumerate(refs):
                key = case.get("signature")
                if key not in sigs:
                    continue
                covered.add(key)
                tol = (case.get("rtol", 1e-5), case.get("atol", 1e-6))
                inputs = {k: _ref_value(s) for k, s in case["inputs"].items()}
                outputs = {k: np.asarray(s["value"], dtype=s["dtype"])
                           for k, s in case["expected_outputs"].items()}
                # reference_io feeding 1-D values to scalar inputs (tfjs): one
                # step per element (a session feed checks the declared shape)
                scalar = [k for k in inputs if _shape_of(sigs[key].inputs[k]) == []
                          and inputs[k].ndim == 1 and inputs[k].dtype.kind in "fiub"]
                if scalar and len(scalar) == len(inputs):
                    n = len(inputs[scalar[0]])
                    for i in range(n):
                        unit.add("%s ref#%d[%d]" % (key, ci, i), {"signature": key, "inputs": {}},
                                 {k: v[i] for k, v in inputs.items()},
                                 {k: (v[i], tol[0], tol[1]) for k, v in outputs.items()})
                    continue
                unit.add("%s ref#%d" % (key, ci), {"signature": key, "inputs": {}}, inputs,
                         {k: (v, tol[0], tol[1]) for k, v in outputs.items()})
            for key in sorted(sigs):
                if key in covered or key == "__saved_model_init_op":
                    continue
                sig = sigs[key]
                inputs = {k: generated_value(name, info.name, _dtype_name(info.dtype),
                                             _shape_of(info), feats)
                          for k, info in sig.inputs.items()}
                unit.add(key, {"signature": key, "inputs": {}}, inputs)
            units.append(unit)
        return units
    # meta graph / GraphDef: reference fetches, then every manifest sink
    mg, gd = read_graph(mi.kind, mi.path, mi.encoding)
    feats = example_features(gd)
    unit = Unit()
    for ci, case in enumerate(refs):
        if "feeds" not in case:
            continue
        feeds = {t: _ref_value(s) for t, s in case["feeds"].items()}
        tol = (case.get("rtol", 1e-5), case.get("atol", 1e-6))
        for t, s in case["expected_fetches"].items():
            unit.add("%s ref#%d" % (t, ci), {"feeds": {}, "fetch": t}, feeds,
                     {t: (np.asarray(s["value"], dtype=s["dtype"]), tol[0], tol[1])})
    gen_feeds = {}
    for gi in entry.get("graph_inputs") or []:
        gen_feeds[gi["name"]] = generated_value(name, gi["name"], gi["dtype"], gi.get("shape"),
                                                feats)
    for sink in entry.get("graph_sinks") or []:
        unit.add(sink, {"feeds": {}, "fetch": sink}, gen_feeds)
    units.append(unit)
    return units


# ---------------------------------------------------------------------------
# running

_NOISE = ("Detected at node", "Node:", "File ", "defined at", "Original stack", "[[", "Caused by")


def first_line(text) -> str:
    """The first line of an error; when that line only introduces the cause
    ("... Original error:", TF 2's "Graph execution error:"), the cause's
    first line is appended."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(("Original error:", "Graph execution error:")):
        for ln in lines[1:]:
            if not ln.startswith(_NOISE):
                first = "%s ... %s" % (first, ln)
                break
    return first[:400]


def _plan(kind, path, unit, checkpoint=None, encoding=None):
    plan = {"kind": kind, "path": path, "steps": unit.steps, "seed_random_ops": True,
            "saver_filename": "./matrix_ckpt"}   # TF 1.4 cannot save to a bare "name"
    if kind == "saved_model":
        plan["tags"] = unit.tags or []
    if checkpoint:
        plan["checkpoint"] = checkpoint
    if encoding:
        plan["encoding"] = encoding
    return plan


def run_unit(release, kind, path, unit, checkpoint=None, encoding=None) -> dict:
    """{"loaded": bool, "error", "stage", "steps": {sid: {...}}} (never raises
    for a model problem; an unavailable runtime raises RuntimeUnavailableError)."""
    plan = _plan(kind, path, unit, checkpoint, encoding)
    try:
        res = rf.run_plan_in_release(_RUNTIME[release], plan, unit.arrays, timeout=RUN_TIMEOUT)
    except rf.ReleaseLoadError as e:
        return {"loaded": False, "stage": e.stage or "load",
                "error": first_line(e.message), "steps": {}}
    except rf.LoaderTimeout:
        return {"loaded": False, "stage": "timeout",
                "error": "loader timed out after %ss" % RUN_TIMEOUT, "steps": {}}
    except RuntimeError as e:           # the loader crashed (segfault, abort, ...)
        msg = str(e)
        tail = msg.split("--- stderr tail ---")[-1].strip().splitlines()
        err = [ln for ln in tail if ln.strip()][-1:] or [first_line(msg)]
        return {"loaded": False, "stage": "crash", "error": first_line(msg) + " / " + err[0][:200],
                "steps": {}}
    except BaseException as e:          # pytest.skip/fail from an unavailable runtime
        if type(e).__name__ in ("Skipped", "Failed", "OutcomeException"):
            raise RuntimeUnavailableError(str(e))
        raise
    return {"loaded": True, "stage": None, "error": None, "steps": res["steps"],
            "signatures": res.get("signatures")}


class RuntimeUnavailableError(Exception):
    pass


def compare(got: dict, want: dict, rtol=1e-5, atol=1e-6) -> Optional[str]:
    """None when every key of want is in got with the same shape and values (verify's comparison;
    a want value may be (array, rtol, atol))."""
    for key, w in sorted(want.items()):
        w, rtol_k, atol_k = w if isinstance(w, tuple) else (w, rtol, atol)
        if key not in got:
            return "output %s missing (has %s)" % (key, sorted(got))
        check = verify_compare(key, got[key], w, rtol_k, atol_k)
        if not check.ok:
            return "output %s differs: %s" % (key, check.detail)
    return None


class _Memo:
    """Thread-safe memo of as-is results: one computation per key."""

    def __init__(self):
        self._lock = threading.Lock()
        self._locks: Dict[tuple, threading.Lock] = {}
        self._values: Dict[tuple, object] = {}

    def get(self, key, compute):
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]


_UNITS = _Memo()
_ASIS = _Memo()


def units_of(name):
    return _UNITS.get(("units", name), lambda: model_units(name))


def as_is(name: str, release: str) -> dict:
    """(a) for one release: {"units": [unit result + "ref_mismatch"], "loaded",
    "complete", "error"}."""
    return _ASIS.get((name, release), lambda: _as_is(name, release))


def _as_is(name, release):
    mi = ModelInput(name)
    t0 = time.time()
    results = []
    for unit in units_of(name):
        r = run_unit(release, mi.kind, mi.path, unit, mi.checkpoint, mi.encoding)
        r["ref_mismatch"] = {}
        for sid, want in unit.expected.items():
            st = r["steps"].get(sid)
            if st and st.get("ok"):
                msg = compare(st["outputs"], want)
                if msg:
                    r["ref_mismatch"][sid] = msg
        results.append(r)
    return _summarize(results, units_of(name), time.time() - t0)


def _summarize(results, units, seconds):
    loaded = all(r["loaded"] for r in results)
    err, complete = None, loaded
    for u, r in zip(units, results):
        if not r["loaded"]:
            err = err or "%s%s: %s" % (u.label + " " if u.label else "", r["stage"], r["error"])
            continue
        for sid in [s["id"] for s in u.steps]:
            st = r["steps"].get(sid) or {"ok": False, "error": "step not run", "stage": "run"}
            if not st.get("ok"):
                complete = False
                err = err or "%s%s: %s" % (u.label + " " if u.label else "", u.labels[sid],
                                           first_line(st.get("error")))
            elif sid in r.get("ref_mismatch", {}):
                complete = False
                err = err or "%s%s: reference_io: %s" % (
                    u.label + " " if u.label else "", u.labels[sid], r["ref_mismatch"][sid])
    return {"units": results, "loaded": loaded, "any_loaded": any(r["loaded"] for r in results),
            "complete": complete, "error": err, "seconds": round(seconds, 1)}


def baseline(name, release, ui, sid, releases=None):
    """(release, outputs) of the step as-is: the target release, else the first of
    _BASELINE_ORDER that ran it (and matched reference_io)."""
    order = [release] + [r for r in (releases or _BASELINE_ORDER) if r != release]
    for r in order:
        a = as_is(name, r)
        res = a["units"][ui]
        st = res["steps"].get(sid)
        if st and st.get("ok") and sid not in res.get("ref_mismatch", {}):
            return r, st["outputs"]
    return None, None


# ---------------------------------------------------------------------------
# converting

def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return e


def run_cli(args, cwd, timeout=CLI_TIMEOUT):
    cmd = [sys.executable, "-m", "transpiler"] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", cwd=cwd,
                           timeout=timeout, env=_env())
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %ss" % timeout


def _last_line(text):
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


def check_model(path, release, cwd, checkpoint=None) -> dict:
    """``tf-transpile check PATH --to V``: {"exit", "blocks", "summary"}."""
    args = ["check", path, "--to", release]
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    rc, out, err = run_cli(args, cwd)
    summary = ""
    gpu_note = any(line.startswith("note:") and "pinned to a GPU" in line for line in out.splitlines())
    for line in out.splitlines():
        if "block" in line and "problem" in line:
            summary = line.strip()
            break
    if rc not in (0, 1):
        summary = _last_line(err) or _last_line(out)
    return {"exit": rc, "blocks": rc == 1, "summary": summary[:400], "gpu_note": gpu_note}


def out_path(mi: ModelInput, tmp: str) -> str:
    if mi.kind == "saved_model":
        return os.path.join(tmp, mi.name)
    return os.path.join(tmp, os.path.basename(mi.path))


def _is_saved_model_dir(p):
    return os.path.isdir(p) and any(os.path.isfile(os.path.join(p, f))
                                    for f in ("saved_model.pb", "saved_model.pbtxt"))


def evaluate(name: str, release: str, keep_dir: Optional[str] = None) -> dict:
    """(a)-(d) for one (model, release): a JSON-able dict (see module docstring)."""
    mi = ModelInput(name)
    units = units_of(name)
    a = as_is(name, release)
    rec = {"model": name, "release": release, "kind": mi.kind,
           "as_is": {"loaded": a["loaded"], "any_loaded": a["any_loaded"],
                     "complete": a["complete"], "error": a["error"], "seconds": a["seconds"],
                     "steps_ok": _steps_ok(units, a["units"])}}
    tmp = tempfile.mkdtemp(prefix="corpus-matrix-", dir="/tmp")
    try:
        rec["check_in"] = check_model(mi.path, release, tmp)
        out = out_path(mi, tmp)
        t0 = time.time()
        rc, _stdout, err = run_cli([mi.path, out, "--to", release] + CONVERT_OPTIONS.get(name, []), tmp)
        rec["convert"] = {"exit": rc, "last_line": _last_line(err) or _last_line(_stdout),
                          "seconds": round(time.time() - t0, 1)}
        conv = {"form_ok": None, "loaded": None, "error": None, "failures": [],
                "check_out": None}
        rec["converted"] = conv
        if rc == 0:
            _converted(mi, units, release, out, tmp, conv)
        if keep_dir and os.path.exists(out):
            dst = os.path.join(keep_dir, "%s__%s" % (name, release))
            shutil.rmtree(dst, ignore_errors=True)
            (shutil.copytree if os.path.isdir(out) else shutil.copy)(out, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _verdicts(rec, units, a)
    return rec


def _steps_ok(units, results):
    return {"%s%s" % (u.label, u.labels[s["id"]]):
            bool(r["loaded"] and (r["steps"].get(s["id"]) or {}).get("ok")
                 and s["id"] not in r.get("ref_mismatch", {}))
            for u, r in zip(units, results) for s in u.steps}


def _converted(mi, units, release, out, tmp, conv):
    # form: OUT named like IN
    want = mi.form
    if want == "dir":
        form_ok = _is_saved_model_dir(out)
        what = "a SavedModel directory"
    else:
        form_ok = os.path.isfile(out)
        what = "a %s file" % want
    if not os.path.exists(out):
        conv["form_ok"] = False
        conv["form_error"] = "exit 0 but nothing at OUT %s" % os.path.basename(out)
        conv["loaded"] = False
        conv["error"] = "form: " + conv["form_error"]
        return
    conv["form_ok"] = form_ok
    kind, path, ckpt = mi.kind, out, None
    if not form_ok:
        actual = ("a SavedModel directory" if _is_saved_model_dir(out)
                  else "a directory" if os.path.isdir(out) else "a file")
        conv["form_error"] = "OUT %s is %s, not %s" % (os.path.basename(out), actual, what)
        if _is_saved_model_dir(out):
            kind = "saved_model"
        elif os.path.isdir(out) and mi.kind == "meta_graph":
            metas = sorted(f for f in os.listdir(out) if f.endswith(".meta"))
            if len(metas) == 1:
                # a directory holding the .meta and its checkpoint: load that
                path = os.path.join(out, metas[0])
                conv["inner"] = os.path.basename(out) + "/" + metas[0]
    if kind == "meta_graph":
        ckpt = checkpoint_beside(path)
        conv["checkpoint"] = os.path.basename(ckpt) if ckpt else None
    conv["check_out"] = check_model(out, release, tmp, None)
    results = []
    for u in units:
        lu = u
        if kind == "saved_model" and mi.kind != "saved_model":
            # a file model that came back as a SavedModel: its only tag set
            try:
                sm = read_saved_model(out)
                tags = list(sm.meta_graphs[0].meta_info_def.tags) if sm.meta_graphs else []
            except Exception:
                tags = ["serve"]
            lu = Unit(tags)
            lu.steps, lu.arrays, lu.labels = u.steps, u.arrays, u.labels
        results.append(run_unit(release, kind, path, lu, ckpt))   # encoding: guessed
    if (kind == "saved_model" and mi.kind != "saved_model" and len(results) == 1
            and results[0]["loaded"] and units[0].steps
            and all(not st.get("ok") and st.get("stage") == "feed"
                    for st in results[0]["steps"].values())):
        # none of IN's tensor names is in OUT (a TF 2 native SavedModel made of a
        # GraphDef): run OUT's signatures instead, fed IN's inputs by name
        fb, mapping = _signature_unit(mi.name, out, units[0])
        conv["fallback"] = (fb, run_unit(release, "saved_model", out, fb), mapping)
    conv["units"] = results
    conv["loaded"] = all(r["loaded"] for r in results)
    conv["any_loaded"] = any(r["loaded"] for r in results)


def _signature_unit(name, out, unit):
    """A unit running every signature of the SavedModel OUT, with IN's feed
    values where a signature input key is the name of an IN placeholder;
    mapping {fallback sid: {out key: IN step sid fetching a tensor of that name}}."""
    sm = read_saved_model(out)
    mg = sm.meta_graphs[0]
    fb = Unit(list(mg.meta_info_def.tags))
    values, fetch_sid = {}, {}
    for st in unit.steps:
        for tensor, key in (st.get("feeds") or {}).items():
            values.setdefault(tensor.split(":")[0], unit.arrays[key])
        fetch_sid.setdefault(st["fetch"].split(":")[0], st["id"])
    mapping = {}
    feats = example_features(mg.graph_def)
    for key in sorted(mg.signature_def):
        if key == "__saved_model_init_op":
            continue
        sig = mg.signature_def[key]
        inputs = {k: values[k] if k in values else
                  generated_value(name, info.name, _dtype_name(info.dtype), _shape_of(info), feats)
                  for k, info in sig.inputs.items()}
        sid = fb.add("signature %s" % key, {"signature": key, "inputs": {}}, inputs)
        mapping[sid] = {k: fetch_sid[k] for k in sig.outputs if k in fetch_sid}
    return fb, mapping


def _verdicts(rec, units, a):
    name, release = rec["model"], rec["release"]
    conv = rec["converted"]
    rc = rec["convert"]["exit"]
    failures = conv["failures"]           # [{"stage", "step", "error", "checkable", "was_ok"}]
    step_results = {}
    if rc == 0 and conv.get("units") is not None:
        if not conv["form_ok"]:
            failures.append({"stage": "form", "step": "", "error": conv["form_error"],
                             "checkable": True, "was_ok": a["any_loaded"]})
        for ui, (u, r, ra) in enumerate(zip(units, conv["units"], a["units"])):
            if not r["loaded"]:
                failures.append({"stage": "converted-" + (r["stage"] or "load"), "step": u.label,
                                 "error": r["error"], "checkable": True,
                                 "was_ok": ra["loaded"]})
                continue
            if conv.get("fallback"):
                continue                # judged on OUT's signatures below
            for s in u.steps:
                sid = s["id"]
                label = "%s%s" % (u.label + " " if u.label else "", u.labels[sid])
                was_ok = bool(ra["loaded"] and (ra["steps"].get(sid) or {}).get("ok")
                              and sid not in ra.get("ref_mismatch", {}))
                base_rel, base_out = baseline(name, release, ui, sid)
                want = u.expected.get(sid)
                checkable = bool(want) or base_rel is not None
                st = r["steps"].get(sid) or {"ok": False, "error": "step not run"}
                ok = bool(st.get("ok"))
                msg = None
                if not ok:
                    msg = first_line(st.get("error"))
                else:
                    if want:
                        m = compare(st["outputs"], want)
                        if m:
                            msg = "reference_io: " + m
                    if msg is None and base_out is not None:
                        m = compare(st["outputs"], base_out)
                        if m:
                            msg = "vs as-is in %s: %s" % (base_rel, m)
                step_results[label] = msg is None
                if msg:
                    failures.append({"stage": "converted-run" if not ok else "converted-numbers",
                                     "step": label, "error": msg, "checkable": checkable,
                                     "was_ok": was_ok})
        if conv.get("fallback"):
            fb, r, mapping = conv.pop("fallback")
            conv["fallback"] = {"loaded": r["loaded"], "error": r["error"], "steps": {}}
            if not r["loaded"]:
                failures.append({"stage": "converted-" + (r["stage"] or "load"),
                                 "step": "as a SavedModel", "error": r["error"],
                                 "checkable": True, "was_ok": a["any_loaded"]})
            for s in (fb.steps if r["loaded"] else []):
                sid = s["id"]
                st = r["steps"].get(sid) or {"ok": False, "error": "step not run"}
                msgs, checkable = [], False
                if not st.get("ok"):
                    msgs.append(first_line(st.get("error")))
                for okey, in_sid in mapping.get(sid, {}).items():
                    base_rel, base_out = baseline(name, release, 0, in_sid)
                    if base_out is None:
                        continue
                    checkable = True
                    if st.get("ok"):
                        (want,) = base_out.values()
                        m = compare({okey: st["outputs"][okey]}, {okey: want})
                        if m:
                            msgs.append("vs as-is in %s: %s" % (base_rel, m))
                label = "(as a SavedModel) " + fb.labels[sid]
                conv["fallback"]["steps"][label] = not msgs
                step_results[label] = not msgs
                if msgs:
                    failures.append({"stage": "converted-run" if not st.get("ok")
                                     else "converted-numbers", "step": label,
                                     "error": msgs[0], "checkable": checkable,
                                     "was_ok": checkable})
            fb_steps = conv["fallback"]["steps"]
            note = ("; as a SavedModel it does not load: %s" % r["error"] if not r["loaded"] else
                    "; as a SavedModel it loads, %d/%d signature(s) run and match"
                    % (sum(fb_steps.values()), len(fb_steps)))
            for f in failures:
                if f["stage"] == "form":
                    f["error"] += note
        if conv.get("inner"):
            n_ok = sum(1 for v in step_results.values() if v)
            note = ("; the %s inside %s (%d/%d step(s) run and match)"
                    % (conv["inner"], "loads" if conv["loaded"] else "does not load",
                       n_ok, len(step_results)))
            for f in failures:
                if f["stage"] == "form":
                    f["error"] += note
        # keep the raw unit results small in the JSON
        conv["units"] = [{"loaded": r["loaded"], "stage": r["stage"], "error": r["error"]}
                         for r in conv["units"]]
    conv["steps_ok"] = step_results
    if rc is None:
        status = "✗"
        conv["error"] = "convert timed out"
    elif rc in (1, 2):
        status = "refused"
        conv["error"] = rec["convert"]["last_line"]
    elif rc != 0:
        status = "✗"
        conv["error"] = "convert exit %s: %s" % (rc, rec["convert"]["last_line"])
    else:
        bad = [f for f in failures if f["checkable"]]
        status = "false-success" if bad else "✓"
        if bad:
            f = bad[0]
            conv["error"] = "%s%s: %s" % (f["stage"], " " + f["step"] if f["step"] else "",
                                          f["error"])
    rec["status_as_is"] = ("✓" if a["complete"] else "◐" if a["any_loaded"] else "✗")
    rec["status_converted"] = status
    nw = []
    if a["any_loaded"]:
        if rc != 0:
            nw.append("as-is loads, convert %s: %s" % (
                "refused" if rc in (1, 2) else "failed", rec["convert"]["last_line"]))
        else:
            nw += ["%s%s: %s" % (f["stage"], " " + f["step"] if f["step"] else "", f["error"])
                   for f in failures if f["was_ok"]]
    rec["never_worse_violations"] = nw
    rec["false_success"] = status == "false-success"
    co = conv.get("check_out") or {}
    rec["check_disagrees"] = []
    if rc == 0 and co.get("blocks"):
        rec["check_disagrees"].append("convert exit 0 but check OUT: " + co.get("summary", ""))
    ci = rec.get("check_in") or {}
    if ci.get("exit") == 0 and rc == 1:
        rec["check_disagrees"].append("check IN says nothing blocks, but convert refuses: %s"
                                      % rec["convert"]["last_line"])
    # a GPU-pinned input fails on this CPU-only harness, not in the release: check notes it, as it should
    gpu_only = ci.get("gpu_note") and "Cannot assign a device" in (a["error"] or "")
    if ci.get("exit") == 0 and not a["any_loaded"] and not gpu_only:
        rec["check_disagrees"].append("check IN says nothing blocks, but as-is: %s" % a["error"])
    if ci.get("blocks") and a["complete"]:
        rec["check_disagrees"].append("check IN blocks (%s) but as-is loads and runs"
                                      % ci.get("summary", ""))


def cell(rec) -> str:
    s = "as-is %s \\| %s" % (rec["status_as_is"], rec["status_converted"])
    if rec["status_converted"] == "✓":
        s = "as-is %s \\| converted ✓" % rec["status_as_is"]
    if rec["never_worse_violations"]:
        s += " ⚠NW"
    return s


def problems(rec) -> List[str]:
    """Why the (model, release) test fails: never-worse violations, a false success, and exit 2 (a bad-input
    error: every corpus model is a valid file, so exit 2 there is a bug, e.g. a rule that breaks)."""
    out = ["never worse: " + v for v in rec["never_worse_violations"]]
    if rec["convert"]["exit"] == 2:
        out.append("convert exit 2 on a valid model: " + rec["convert"]["last_line"])
    if rec["false_success"]:
        out.append("false success: convert exit 0 but " + (rec["converted"]["error"] or "?"))
    return out
