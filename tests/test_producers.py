"""The model fixtures work: producers write what they claim, host_runner
loads it back, the corpus copy is intact. Cross-release round trips live
elsewhere."""
import os
import sys

import numpy as np
import pytest

import host_runner
import model_zoo
from model_zoo import corpus_case, corpus_entry, corpus_reference_io, op_histogram

# conftest.py is meant to provide the fixtures (`from model_zoo import *`);
# until it does, take them from model_zoo here (importing them twice would
# build the models twice).
_conftest = sys.modules.get("conftest")
if not (_conftest and hasattr(_conftest, "tf2_cases")):
    from model_zoo import tf1_cases, tf2_cases  # noqa: F401

TF2_MODELS = {
    # name: (op types that must appear, graph or function library)
    "compat_v1_linear_relu6": {"StaticRegexFullMatch", "Relu6", "VarHandleOp"},
    "compat_v1_cnn": {"FusedBatchNormV3", "LeakyRelu", "DepthwiseConv2dNative",
                      "StaticRegexFullMatch"},
    "module_saved": {"StatefulPartitionedCall", "VarHandleOp"},
    "module_control_flow": {"StatefulPartitionedCall", "StatelessWhile",
                            "StatelessIf"},
    "keras_export": {"StatefulPartitionedCall", "Conv2D", "MatMul"},
}


def test_tf2_producer_builds_every_model(tf2_cases):
    assert set(TF2_MODELS) <= set(tf2_cases)
    for case in tf2_cases.values():
        assert case.kind == "saved_model" and os.path.isdir(case.path)
        assert case.tags == ["serve"] and case.signature
        assert case.inputs and case.outputs
        assert set(case.input_names) == set(case.inputs)
        assert set(case.output_names) == set(case.outputs)


@pytest.mark.parametrize("name", sorted(TF2_MODELS))
def test_tf2_case_loads_on_host_with_identical_outputs(tf2_cases, name):
    case = tf2_cases[name]
    got = host_runner.run_on_host(case.path, case, case.inputs)
    assert set(got) == set(case.outputs)
    for key, want in case.outputs.items():
        assert got[key].dtype == want.dtype
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    # the case.json form works the same
    got2 = host_runner.run_on_host(case.path, case.as_dict(), case.inputs)
    for key in case.outputs:
        np.testing.assert_array_equal(got2[key], got[key])


@pytest.mark.parametrize("name", sorted(TF2_MODELS))
def test_tf2_case_has_the_ops_it_exists_for(tf2_cases, name):
    hist = op_histogram(tf2_cases[name].path)
    missing = TF2_MODELS[name] - set(hist)
    assert not missing, (name, missing, dict(hist))


def test_tf2_producer_is_reproducible(tf2_cases, tmp_path):
    producer = model_zoo._import_file("tf2_models_again",
                                      model_zoo.TF2_PRODUCER)
    names = ["compat_v1_cnn", "module_saved"]
    producer.build(str(tmp_path), names)
    again = model_zoo.load_cases(tmp_path)
    for name in names:
        for which in ("inputs", "outputs"):
            a, b = getattr(tf2_cases[name], which), getattr(again[name], which)
            assert set(a) == set(b)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


# ---------------------------------------------------------------------------
# third-party corpus copied into tests/data

REQUIRED_CORPUS = [
    "serving__saved_model_half_plus_two_tf2_cpu",
    "tensorflow__sm_half_plus_two_v2_2018",
    "tensorflow__sm_half_plus_two_pbtxt_2016",
    "tensorflow-onnx__regression_checkpoint",
    "tensorflow-onnx__lstm_frozen",
    "tensorflow__parse_example_graph_def",
    "tfjs__module_with_multiple_signatures",
    "serving__saved_model_half_plus_two_cpu",
    "rust__addition_tf217",
]


def test_corpus_copy_matches_manifest_and_notice():
    with open(os.path.join(model_zoo.DATA_DIR, "NOTICE")) as f:
        notice = f.read()
    assert "Apache License" in notice
    assert os.path.exists(os.path.join(model_zoo.DATA_DIR,
                                       "LICENSE-Apache-2.0.txt"))
    for name in REQUIRED_CORPUS:
        path = corpus_case(name)
        entry = corpus_entry(name)
        have = sorted(os.path.relpath(os.path.join(r, f), path)
                      for r, _, fs in os.walk(path) for f in fs)
        assert have == sorted(entry["files"]), name
        assert name + "/" in notice and entry["source_commit"] in notice
    total = sum(os.path.getsize(os.path.join(r, f))
                for r, _, fs in os.walk(model_zoo.DATA_DIR) for f in fs)
    assert total < 5 * 1024 * 1024


@pytest.mark.parametrize("name", [
    "serving__saved_model_half_plus_two_tf2_cpu",
    "serving__saved_model_half_plus_two_cpu",
    "tensorflow__sm_half_plus_two_v2_2018",
    "tensorflow__sm_half_plus_two_pbtxt_2016",
])
def test_corpus_reference_io_runs_on_host(name):
    refs = corpus_reference_io(name)
    assert refs
    for ref in refs:
        case = {"kind": "saved_model", "tags": ["serve"],
                "signature": ref["signature"]}
        got = host_runner.run_on_host(corpus_case(name), case, ref["inputs"])
        for key, want in ref["outputs"].items():
            np.testing.assert_allclose(got[key], want, err_msg=key)


def test_corpus_scalar_signatures_fed_elementwise():
    # reference_io feeds [1, 2, 3] to a scalar input: feed one at a time.
    name = "tfjs__module_with_multiple_signatures"
    for ref in corpus_reference_io(name):
        case = {"kind": "saved_model", "tags": ["serve"],
                "signature": ref["signature"]}
        (key, xs), = ref["inputs"].items()
        (okey, want), = ref["outputs"].items()
        got = [host_runner.run_on_host(corpus_case(name), case,
                                       {key: x})[okey] for x in xs]
        np.testing.assert_allclose(np.array(got), want)


def test_corpus_frozen_graph_runs_on_host():
    path = os.path.join(corpus_case("rust__addition_tf217"), "model.pb")
    hist = op_histogram(path)
    assert hist, "empty GraphDef"
    gd = host_runner.read_graph_def(path)
    placeholders = [n.name for n in gd.node if n.op == "Placeholder"]
    assert len(placeholders) == 2, placeholders
    sinks = {n.name for n in gd.node} - {
        i.split(":")[0].lstrip("^") for n in gd.node for i in n.input}
    (out,) = sinks
    case = {"kind": "graph_def",
            "inputs": {p: p + ":0" for p in placeholders},
            "outputs": {"z": out + ":0"}}
    x = {p: np.array(i + 1, np.int32) for i, p in enumerate(placeholders)}
    dtypes = {n.name: n.attr["dtype"].type for n in gd.node
              if n.op == "Placeholder"}
    from tensorflow.core.framework import types_pb2
    if set(dtypes.values()) == {types_pb2.DT_FLOAT}:
        x = {p: v.astype(np.float32) for p, v in x.items()}
    got = host_runner.run_on_host(path, case, x)
    assert float(got["z"]) == sum(float(v) for v in x.values())


# ---------------------------------------------------------------------------
# real TF 1.x releases (transpiler/runtimes/provision.py)

TF1_EXPECTED = {
    # name: {output key: (shape, dtype)}
    "linear_relu6": {"y": ((4, 2), np.float32)},
    "while_cond": {"y": ((5, 3), np.float32), "steps": ((), np.int32)},
    "cnn_keras": {"output": ((2, 5), np.float32)},
    "cnn_keras_frozen": {"output": ((2, 5), np.float32)},
}
TF1_EVERYWHERE = {"linear_relu6", "while_cond"}


def _check_sane(case):
    """Models listed in TF1_EXPECTED get exact shapes/dtypes; every model gets finite numbers."""
    expected = TF1_EXPECTED.get(case.name)
    if expected is not None:
        assert set(case.outputs) == set(expected), case.name
        for key, (shape, dtype) in expected.items():
            out = case.outputs[key]
            assert out.shape == shape and out.dtype == dtype, (case.name, key, out.shape, out.dtype)
    assert case.outputs, case.name
    for key, arr in list(case.outputs.items()) + list(case.inputs.items()):
        if arr.dtype.kind == "f":
            assert np.all(np.isfinite(arr)), (case.name, key)
    if case.kind == "saved_model":
        assert os.path.isfile(os.path.join(case.path, "saved_model.pb"))
        assert case.tags == ["serve"] and case.signature
    else:
        assert os.path.isfile(case.path) and case.path.endswith(".pb")
        assert set(case.input_names) == set(case.inputs)


def _versions(*versions):
    return [pytest.param(v, marks=pytest.mark.real_runtime(v), id=v)
            for v in versions]


@pytest.mark.parametrize("version", _versions(*model_zoo.TF1_VERSIONS))
def test_tf1_producer_builds_in_real_release(tf1_cases, version):
    cases = tf1_cases(version)
    assert TF1_EVERYWHERE <= set(cases), sorted(cases)
    for case in cases.values():
        assert case.producer == version
        _check_sane(case)
    y = cases["linear_relu6"].outputs["y"]
    assert y.min() >= 0.0 and y.max() <= 6.0
    assert int(cases["while_cond"].outputs["steps"]) == 4


@pytest.mark.real_runtime("1.15.0")
def test_tf1_15_models_are_what_they_claim(tf1_cases, tf2_cases):
    cases = tf1_cases("1.15.0")
    assert set(TF1_EXPECTED) <= set(cases)
    cnn = op_histogram(cases["cnn_keras"].path)
    assert {"FusedBatchNormV3", "LeakyRelu", "DepthwiseConv2dNative"} <= set(cnn)
    frozen = op_histogram(cases["cnn_keras_frozen"].path)
    assert "FusedBatchNormV3" in frozen
    assert not {"VariableV2", "VarHandleOp"} & set(frozen)
    np.testing.assert_array_equal(cases["cnn_keras"].outputs["output"],
                                  cases["cnn_keras_frozen"].outputs["output"])
    loop = op_histogram(cases["while_cond"].path)
    assert {"Enter", "Exit", "Switch", "Merge", "NextIteration"} <= set(loop)
    # tf1 linear_relu6 and tf2 compat_v1_linear_relu6 share their recipe
    a, b = cases["linear_relu6"], tf2_cases["compat_v1_linear_relu6"]
    np.testing.assert_array_equal(a.inputs["x"], b.inputs["x"])
    np.testing.assert_allclose(a.outputs["y"], b.outputs["y"], rtol=1e-6)
