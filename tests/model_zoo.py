"""Test models as pytest fixtures (conftest.py does ``from model_zoo import *``).

- ``tf2_cases``  (session): every model of producers/tf2_models.py, built once
  per pytest run by the host's TF 2.x; {name: Case}.
- ``tf1_cases``  (session): a factory, ``tf1_cases("1.15.0") -> {name: Case}``.
  The first call for a release runs producers/tf1_models.py inside that real
  release (transpiler/runtimes/provision.py); later calls reuse the result. A release that
  cannot be provisioned skips the test, or fails it loudly when CI=true.
- ``corpus_case(name)``: path of a third-party model copied into tests/data/
  (see tests/data/NOTICE); ``corpus_entry(name)`` its manifest entry.
- ``op_histogram(path)``: Counter of op types in a SavedModel / GraphDef,
  graph and function library, for structural assertions.
"""
import collections
import dataclasses
import glob
import importlib.util
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np
import pytest

__all__ = [
    "Case", "TF1_VERSIONS", "load_case", "load_cases", "corpus_case",
    "corpus_entry", "corpus_reference_io", "op_histogram", "tf2_cases",
    "tf1_cases",
]

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PRODUCERS_DIR = os.path.join(TESTS_DIR, "producers")
DATA_DIR = os.path.join(TESTS_DIR, "data")
TF1_PRODUCER = os.path.join(PRODUCERS_DIR, "tf1_models.py")
TF2_PRODUCER = os.path.join(PRODUCERS_DIR, "tf2_models.py")

# The releases tf1_models.py is written for.
TF1_VERSIONS = ("1.4.0", "1.8.0", "1.15.0")


@dataclasses.dataclass
class Case:
    """One produced model plus the numbers its producer computed."""
    name: str
    kind: str                      # "saved_model" | "graph_def"
    path: str                      # absolute: SavedModel dir or .pb file
    tags: List[str]
    signature: Optional[str]       # signature_def key (None for graph_def)
    producer: str                  # tf.__version__ of the producing release
    inputs: Dict[str, np.ndarray]  # key -> array fed to the producer
    outputs: Dict[str, np.ndarray]  # key -> array the producer computed
    input_names: Dict[str, str]    # key -> tensor name ("x:0")
    output_names: Dict[str, str]

    def as_dict(self):
        """The case.json form (inputs/outputs as tensor names), for
        host_runner.run_on_host and for writing next to a converted model."""
        return {
            "name": self.name, "kind": self.kind, "path": self.path,
            "tags": list(self.tags), "signature": self.signature,
            "producer": self.producer, "inputs": dict(self.input_names),
            "outputs": dict(self.output_names),
        }


def load_case(case_json):
    """Reads NAME.case.json and NAME.io.npz next to it."""
    with open(case_json) as f:
        meta = json.load(f)
    outdir = os.path.dirname(os.path.abspath(case_json))
    io_path = os.path.join(outdir, meta["name"] + ".io.npz")
    inputs, outputs = {}, {}
    with np.load(io_path, allow_pickle=False) as io:
        for key in io.files:
            if key.startswith("in__"):
                inputs[key[len("in__"):]] = io[key]
            elif key.startswith("out__"):
                outputs[key[len("out__"):]] = io[key]
    return Case(
        name=meta["name"], kind=meta["kind"],
        path=os.path.join(outdir, meta["path"]),
        tags=list(meta.get("tags") or []), signature=meta.get("signature"),
        producer=meta["producer"], inputs=inputs, outputs=outputs,
        input_names=dict(meta.get("inputs") or {}),
        output_names=dict(meta.get("outputs") or {}),
    )


def load_cases(outdir):
    """{name: Case} for every NAME.case.json in a producer's OUTDIR."""
    return {c.name: c for c in (load_case(p) for p in sorted(
        glob.glob(os.path.join(str(outdir), "*.case.json"))))}


# ---------------------------------------------------------------------------
# third-party corpus (tests/data)


def corpus_case(name):
    """Absolute path of tests/data/<name>, a model copied from the public
    corpus (directory names as in its manifest)."""
    path = os.path.join(DATA_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError("no corpus model %r in %s" % (name, DATA_DIR))
    return path


_MANIFEST = None


def corpus_entry(name):
    """tests/data/manifest.json's entry for a corpus model (source, producer
    version, tags, signatures, op histogram, files)."""
    global _MANIFEST
    if _MANIFEST is None:
        with open(os.path.join(DATA_DIR, "manifest.json")) as f:
            _MANIFEST = {m["path"]: m for m in json.load(f)["models"]}
    return _MANIFEST[name]


def _example_batch(spec):
    """Serialized tf.train.Example protos, one per value, for a reference_io
    input of kind "tf_example_batch"."""
    from tensorflow.core.example import example_pb2

    out = []
    for v in spec["values"]:
        ex = example_pb2.Example()
        feat = ex.features.feature[spec["feature"]]
        kind = spec.get("feature_dtype", "float")
        if kind == "float":
            feat.float_list.value.append(float(v))
        elif kind == "int64":
            feat.int64_list.value.append(int(v))
        else:
            feat.bytes_list.value.append(
                v.encode("utf-8") if isinstance(v, str) else bytes(v))
        out.append(ex.SerializeToString())
    return np.array(out, dtype=object)


def corpus_reference_io(name):
    """The reference_io.json cases of a corpus model as
    [{"signature", "inputs": {key: ndarray}, "outputs": {key: ndarray}}]
    ([] when it has none). Inputs of kind "tf_example_batch" become a 1-D
    array of serialized tf.train.Example protos. Shapes are as transcribed:
    see the file's "note" (tfjs feeds 1-D arrays to scalar inputs)."""
    path = os.path.join(corpus_case(name), "reference_io.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        ref = json.load(f)
    cases = []
    for c in ref["cases"]:
        inputs = {}
        for key, spec in c["inputs"].items():
            if spec.get("kind", "tensor") == "tf_example_batch":
                inputs[key] = _example_batch(spec)
            else:
                inputs[key] = np.asarray(spec["value"], dtype=spec["dtype"])
        outputs = {key: np.asarray(spec["value"], dtype=spec["dtype"])
                   for key, spec in c["expected_outputs"].items()}
        cases.append({"signature": c.get("signature"), "inputs": inputs,
                      "outputs": outputs})
    return cases


# ---------------------------------------------------------------------------
# structure


def op_histogram(path, include_functions=True):
    """Counter of op types in a SavedModel (dir or saved_model.pb[txt]; every
    meta graph) or a GraphDef file (.pb, or text .pbtxt), including the
    bodies of library functions unless include_functions is False."""
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    path = str(path)
    if os.path.isdir(path):
        for fname in ("saved_model.pb", "saved_model.pbtxt"):
            if os.path.exists(os.path.join(path, fname)):
                path = os.path.join(path, fname)
                break
    with open(path, "rb") as f:
        data = f.read()
    text = path.endswith((".pbtxt", ".pbtx", ".txt"))
    if os.path.basename(path).startswith("saved_model."):
        msg = saved_model_pb2.SavedModel()
    else:
        msg = graph_pb2.GraphDef()
    if text:
        text_format.Parse(data.decode("utf-8"), msg)
    else:
        msg.ParseFromString(data)
    graphs = ([mg.graph_def for mg in msg.meta_graphs]
              if isinstance(msg, saved_model_pb2.SavedModel) else [msg])
    hist = collections.Counter()
    for gd in graphs:
        hist.update(n.op for n in gd.node)
        if include_functions:
            for fn in gd.library.function:
                hist.update(n.op for n in fn.node_def)
    return hist


# ---------------------------------------------------------------------------
# fixtures


def _import_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tf2_cases(tmp_path_factory):
    """{name: Case} for every model of producers/tf2_models.py, built once
    per run by the host's TensorFlow, in a process of its own: built in the
    test process, names TF and Keras draw from global counters depended on
    the tests that ran before (the keras_lstm golden case changed with the
    test order)."""
    outdir = tmp_path_factory.mktemp("tf2_models")
    build = subprocess.run([sys.executable, TF2_PRODUCER, str(outdir)], capture_output=True, text=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=1800)
    assert build.returncode == 0, "tf2_models.py failed:\n" + _tail(build.stderr)
    return load_cases(outdir)


def _unavailable(version, reason):
    msg = "TF %s runtime unavailable: %s" % (version, reason)
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " (CI=true: real-runtime tests must not skip)",
                    pytrace=False)
    pytest.skip(msg)


def _tail(text, n=60):
    return "\n".join((text or "").splitlines()[-n:])


@pytest.fixture(scope="session")
def tf1_cases(tmp_path_factory):
    """Factory: tf1_cases(version) -> {name: Case}, the models of
    producers/tf1_models.py built inside that real TF 1.x release (once per
    run and release)."""
    built = {}
    failed = {}

    def get(version):
        if version in built:
            return built[version]
        if version in failed:
            pytest.fail(failed[version], pytrace=False)
        try:
            from transpiler.runtimes.provision import RuntimeUnavailable, ensure_runtime
        except ImportError as e:
            _unavailable(version, "cannot import transpiler/runtimes/provision.py (%s)" % e)
        try:
            rt = ensure_runtime(version)
        except RuntimeUnavailable as e:
            _unavailable(version, e)
        outdir = tmp_path_factory.mktemp("tf1_models_" + version)
        try:
            proc = rt.run_python(TF1_PRODUCER,
                                 args=[rt.chroot_path(str(outdir))],
                                 timeout=900)
        except ValueError as e:   # outdir not visible inside the root
            failed[version] = "TF %s: %s" % (version, e)
            pytest.fail(failed[version], pytrace=False)
        except subprocess.TimeoutExpired as e:
            failed[version] = "tf1_models.py timed out in TF %s: %s" % (
                version, e)
            pytest.fail(failed[version], pytrace=False)
        if proc.returncode != 0:
            failed[version] = (
                "tf1_models.py failed in TF %s (exit %s)\n--- stdout\n%s\n"
                "--- stderr\n%s" % (version, proc.returncode,
                                    _tail(proc.stdout), _tail(proc.stderr)))
            pytest.fail(failed[version], pytrace=False)
        cases = load_cases(outdir)
        if not cases:
            failed[version] = ("tf1_models.py in TF %s wrote no cases\n%s"
                               % (version, _tail(proc.stdout)))
            pytest.fail(failed[version], pytrace=False)
        built[version] = cases
        return cases

    return get
