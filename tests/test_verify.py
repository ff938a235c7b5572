"""`tf-transpile verify` and `--verify`: OUT in the real target release against IN in the reference.

The positive cases convert test and corpus models and verify them in real TF 1.4/1.8/1.15 and the
host's 2.21; the negative ones break a correct OUT (a weight scaled by 1.001, a signature output
rewired, a frozen constant scaled) and demand exit 1 naming the signature and output. The
runtime-failure cases use a stand-in interpreter that hangs or crashes (what verify must survive);
no stand-in ever decides whether a model loads.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from transpiler.verify.compare import compare
from transpiler.verify.inputs import generated_value, read_inputs_file, user_value

DATA = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------------------
# comparison and inputs (no runtime)

def test_float_within_tolerance_matches_and_records_errors():
    want = np.array([1.0, 2.0, 3.0], np.float32)
    check = compare("y", want * (1 + 1e-6), want)
    assert check.ok and check.max_abs_error > 0 and check.max_rel_error < 1e-5
    assert (check.rtol, check.atol) == (1e-4, 1e-5)


def test_weight_scaled_by_1_001_is_outside_float32_tolerance():
    want = np.linspace(0.5, 1.5, 12, dtype=np.float32).reshape(3, 4)
    check = compare("y", want * 1.001, want)
    assert not check.ok
    assert "12 of 12 values outside rtol 0.0001" in check.detail
    assert check.max_rel_error == pytest.approx(1e-3, rel=1e-3)


def test_user_tolerances_win():
    want = np.ones(3, np.float32)
    assert compare("y", want * 1.001, want, rtol=1e-2).ok


def test_nan_matches_nan_only():
    want = np.array([np.nan, 1.0], np.float32)
    assert compare("y", want.copy(), want).ok
    assert not compare("y", np.array([0.0, 1.0], np.float32), want).ok


def test_shapes_ints_and_strings_must_be_equal():
    assert "shape [2], reference [3]" in compare("y", np.zeros(2), np.zeros(3)).detail
    check = compare("k", np.array([1, 2, 4], np.int64), np.array([1, 2, 3], np.int64))
    assert not check.ok and "1 of 3 values differ (first at [2]: 4, reference 3)" in check.detail
    assert compare("s", np.array([b"a", b"b"]), np.array(["a", "b"], dtype=object)).ok
    assert not compare("s", np.array([b"a", b"c"]), np.array([b"a", b"b"])).ok


def test_generated_inputs_are_deterministic_and_follow_the_signature():
    a = generated_value("sig/x", "DT_FLOAT", [-1, 3])
    assert a.shape == (1, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, generated_value("sig/x", "DT_FLOAT", [-1, 3]))
    assert generated_value("sig/k", "DT_INT64", [4]).tolist() == [0, 1, 0, 1]
    assert generated_value("sig/p", "DT_FLOAT", []).item() == 1.0   # a keep_prob: dropout off
    examples = generated_value("sig/e", "DT_STRING", [-1], {"x": ("float", [1])})
    from transpiler.io.protos import example_pb2

    parsed = example_pb2.Example.FromString(examples[0])
    assert list(parsed.features.feature["x"].float_list.value) == [1.0]


def test_inputs_file_json_and_npz(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({"x": [[1, 2]], "sig": {"y": [3]}}))
    given = read_inputs_file(tmp_path / "in.json")
    assert user_value(given, "other", "x", "x:0", "DT_FLOAT").dtype == np.float32
    assert user_value(given, "sig", "y", "y:0", "DT_INT64").tolist() == [3]
    assert user_value(given, "other", "y", "y:0", "DT_INT64") is None
    np.savez(tmp_path / "in.npz", x=np.ones(2))
    assert read_inputs_file(tmp_path / "in.npz")["x"].tolist() == [1.0, 1.0]


def _variables(tmp_path, name, values):
    """Loader-style entries for `values` ({path: array}) and the .npz holding them."""
    import hashlib

    npz = tmp_path / ("%s.npz" % name)
    np.savez(npz, **{"v%d" % i: v for i, v in enumerate(values.values())})
    return [{"path": p, "name": p + ":0", "dtype": str(v.dtype), "shape": list(v.shape), "key": "v%d" % i,
             "raw": False, "sha256": hashlib.sha256(v.tobytes()).hexdigest()}
            for i, (p, v) in enumerate(values.items())], str(npz)


def test_trainable_variables_equal_changed_missing_and_extra(tmp_path):
    from transpiler.verify.variables import compare_variables

    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    want, want_npz = _variables(tmp_path, "in", {"dense.kernel": w, "dense.bias": np.zeros(4, np.float32)})
    same, same_npz = _variables(tmp_path, "same", {"dense.bias": np.zeros(4, np.float32), "dense.kernel": w.copy()})
    check = compare_variables(["serve"], want, want_npz, same, same_npz)
    assert check.ok and check.count == 2 and check.summary() == "2 trainable variable(s) equal"

    changed = w.copy()
    changed[1, 2] += 0.5
    got, got_npz = _variables(tmp_path, "changed", {"dense.kernel": changed, "dense.bias": np.zeros(4, np.float32)})
    check = compare_variables(["serve"], want, want_npz, got, got_npz)
    assert not check.ok
    assert check.problems == ["variable dense.kernel (dense.kernel:0 float32 [3, 4]): 1 of 12 values differ "
                              "(max |diff| 0.5)"]

    got, got_npz = _variables(tmp_path, "other", {"dense.kernel": w, "extra.v": np.ones(2, np.float32)})
    check = compare_variables(None, want, want_npz, got, got_npz)
    assert check.problems == ["variable dense.bias (dense.bias:0 float32 [4]) missing in OUT",
                              "variable extra.v (extra.v:0 float32 [2]) only in OUT"]
    got, got_npz = _variables(tmp_path, "fewer", {"dense.kernel": w})
    assert compare_variables(None, want, want_npz, got, got_npz).problems[0] == (
        "OUT has 1 trainable variable(s), IN 2")


def test_unreadable_inputs_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "in.json"
    bad.write_text("{not json")
    p = run_cli("verify", DATA / "rust__addition_tf217" / "model.pb", DATA / "rust__addition_tf217" / "model.pb",
                "--release", "2.21", "--inputs-file", bad)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "--inputs-file" in p.stderr and "Traceback" not in p.stderr


# ---------------------------------------------------------------------------
# where the target runs

def test_unknown_release_says_how_to_get_a_runtime():
    p = run_cli("verify", DATA / "rust__addition_tf217" / "model.pb", DATA / "rust__addition_tf217" / "model.pb",
                "--release", "1.3")
    assert p.returncode == 2
    assert "--python PATH" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_missing_interpreter_is_exit_2():
    p = run_cli("verify", DATA / "rust__addition_tf217" / "model.pb", DATA / "rust__addition_tf217" / "model.pb",
                "--release", "1.8", "--python", "/nonexistent/python")
    assert p.returncode == 2 and "no such interpreter" in p.stderr, p.stderr


def test_python_running_another_release_is_refused():
    """--python names the target's interpreter: one that runs the host's 2.21 is not TF 1.8."""
    p = run_cli("verify", DATA / "rust__addition_tf217" / "model.pb", DATA / "rust__addition_tf217" / "model.pb",
                "--release", "1.8", "--python", sys.executable)
    assert p.returncode == 2 and "runs TF 2.21" in p.stderr and "not 1.8" in p.stderr, p.stderr


def test_python_of_the_target_release_is_used():
    model = DATA / "rust__addition_tf217" / "model.pb"
    p = run_cli("verify", model, model, "--release", "2.21", "--python", sys.executable, "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["ok"] and doc["runtime"].endswith("(--python)") and doc["target_tf"].startswith("2.21")


def _fake_python(tmp_path, body):
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_hanging_runtime_is_stopped_at_the_timeout(tmp_path):
    model = DATA / "rust__addition_tf217" / "model.pb"
    hang = _fake_python(tmp_path, "echo 'loading the model' >&2; sleep 60")
    # 20 s: the timeout also bounds the reference (host TF), whose import alone takes 5-10 s on a busy box
    p = run_cli("verify", model, model, "--release", "2.21", "--python", hang, "--timeout", "20")
    assert p.returncode == 1, p.stderr + p.stdout
    assert "timeout of 20s" in p.stdout and "loading the model" in p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith("verify: FAIL")


def test_crashing_runtime_shows_its_last_lines(tmp_path):
    model = DATA / "rust__addition_tf217" / "model.pb"
    crash = _fake_python(tmp_path, "echo 'Fatal Python error: Segmentation fault' >&2; exit 139")
    p = run_cli("verify", model, model, "--release", "2.21", "--python", crash, "--format", "json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert not doc["ok"] and "Segmentation fault" in doc["signatures"][0]["error"]
    assert "exit 139" in doc["signatures"][0]["error"]


def test_runtimes_list_names_every_provisionable_release():
    p = run_cli("runtimes", "list")
    assert p.returncode == 0
    assert "1.8.0" in p.stdout and "1.15.0" in p.stdout


# ---------------------------------------------------------------------------
# real releases: correct conversions pass, broken ones fail

def _convert(src, out, release, *extra):
    p = run_cli(src, out, "--to", release, *extra)
    assert p.returncode == 0, p.stderr
    return p


def _verify(src, out, release, *extra):
    p = run_cli("verify", src, out, "--release", release, *extra)
    assert p.returncode in (0, 1), p.stderr
    return p


@pytest.fixture(scope="module")
def module_saved_18(tf2_cases, tf_release, tmp_path_factory):
    tf_release("1.8")
    out = tmp_path_factory.mktemp("verify") / "module_saved_18"
    _convert(tf2_cases["module_saved"].path, out, "1.8")
    return Path(tf2_cases["module_saved"].path), out


@pytest.mark.real_runtime("1.8")
def test_convert_with_verify_passes_in_real_18(tf2_cases, tf_release, tmp_path):
    tf_release("1.8")
    p = _convert(tf2_cases["keras_export"].path, tmp_path / "out", "1.8", "--verify")
    assert "verify: PASS" in p.stdout.strip().splitlines()[-1], p.stdout
    assert "in TF 1.8.0" in p.stdout


def _copy(out, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    return broken


def _scale_one_variable(prefix: Path, factor: float, name: str = None) -> str:
    """Scale variable `name` (default: the largest float one) of a checkpoint (written again by the
    host's TF, every other tensor as it was); returns its checkpoint key."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    names = sorted(dtypes)
    values = [reader.get_tensor(n) for n in names]
    floats = [i for i, n in enumerate(names) if dtypes[n] == tf.float32]
    i = names.index(name) if name else max(floats, key=lambda j: values[j].size)
    values[i] = (values[i] * factor).astype(np.float32)
    tmp = str(prefix) + "-scaled"
    tf.raw_ops.SaveV2(prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v) for v in values])
    for old in prefix.parent.glob(prefix.name + ".*"):
        old.unlink()
    for new in prefix.parent.glob(prefix.name + "-scaled.*"):
        new.rename(prefix.parent / new.name.replace("-scaled", ""))
    return names[i]


@pytest.mark.real_runtime("1.8")
def test_verify_passes_then_fails_on_a_weight_scaled_by_1_001(module_saved_18, tmp_path):
    src, out = module_saved_18
    assert "verify: PASS" in _verify(src, out, "1.8").stdout
    broken = _copy(out, tmp_path)
    _scale_one_variable(broken / "variables" / "variables", 1.001)
    p = _verify(src, broken, "1.8", "--format", "json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["summary"].startswith("verify: FAIL") and "serving_default" in doc["summary"]
    (sig,) = doc["signatures"]
    bad = [o for o in sig["outputs"] if not o["ok"]]
    assert bad and bad[0]["max_rel_error"] > 1e-4, sig


@pytest.mark.real_runtime("1.8")
def test_verify_fails_on_a_rewired_signature_output(module_saved_18, tmp_path):
    from transpiler.io.protos import saved_model_pb2

    src, out = module_saved_18
    broken = _copy(out, tmp_path)
    sm = saved_model_pb2.SavedModel.FromString((broken / "saved_model.pb").read_bytes())
    sig = sm.meta_graphs[0].signature_def["serving_default"]
    key = sorted(sig.outputs)[0]
    sig.outputs[key].name = sig.inputs[sorted(sig.inputs)[0]].name   # the output now echoes the input
    (broken / "saved_model.pb").write_bytes(sm.SerializeToString())
    p = _verify(src, broken, "1.8")
    assert p.returncode == 1
    assert "FAIL %s" % key in p.stdout and "verify: FAIL" in p.stdout and "serving_default" in p.stdout


def _scale_largest_const(pb: Path, factor: float) -> None:
    import tensorflow as tf

    from transpiler.io.protos import graph_pb2

    gd = graph_pb2.GraphDef.FromString(pb.read_bytes())
    consts = [n for n in gd.node if n.op == "Const" and n.attr["dtype"].type == 1]
    node = max(consts, key=lambda n: tf.make_ndarray(n.attr["value"].tensor).size)
    value = tf.make_ndarray(node.attr["value"].tensor) * np.float32(factor)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(np.float32)))
    pb.write_bytes(gd.SerializeToString())


@pytest.mark.real_runtime("1.4")
def test_frozen_graph_in_real_14_and_a_scaled_constant(tf_release, tmp_path):
    tf_release("1.4")
    src = DATA / "tensorflow-onnx__lstm_frozen" / "frozen.pb"
    out = tmp_path / "lstm.pb"
    _convert(src, out, "1.4")
    assert "verify: PASS" in _verify(src, out, "1.4").stdout
    _scale_largest_const(out, 1.001)
    p = _verify(src, out, "1.4")
    assert p.returncode == 1 and "verify: FAIL" in p.stdout, p.stdout


#: (corpus model, its file) x release: every release once in CI, the rest with --corpus-matrix.
CORPUS = ["tensorflow-onnx__lstm_frozen/frozen.pb", "TensorFlow.NET__xor_meta/xor.meta",
          "serving__saved_model_counter", "tfjs__module_with_multiple_signatures"]
RELEASES = ["1.4", "1.8", "1.15", "2.21"]
CI_PAIRS = {("TensorFlow.NET__xor_meta/xor.meta", "1.15"), ("serving__saved_model_counter", "1.8"),
            ("tfjs__module_with_multiple_signatures", "2.21")}


def _corpus_params():
    for model in CORPUS:
        for release in RELEASES:
            marks = [pytest.mark.real_runtime(release)]
            if (model, release) not in CI_PAIRS:
                marks.append(pytest.mark.corpus_matrix)
            yield pytest.param(model, release, marks=marks, id="%s@%s" % (model.split("/")[0], release))


@pytest.mark.parametrize("model,release", list(_corpus_params()))
def test_corpus_model_converts_and_verifies(model, release, tf_release, tmp_path):
    if release != "2.21":
        tf_release(release)
    src = DATA / model
    out = tmp_path / ("out" + src.suffix)
    p = _convert(src, out, release, "--verify", "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["verify"]["ok"], doc["verify"]["summary"]
    assert doc["verify"]["target_tf"].startswith(release)
    assert all(o["ok"] for s in doc["verify"]["signatures"] for o in s["outputs"])


def _wrapper_for(rt, tmp_path, visible):
    """What a user's own old environment looks like to verify: one executable `python` (here the
    provisioned TF 1.8 root entered through unshare + chroot, the host directories it needs bound at
    the same paths, so no path translation happens anywhere)."""
    root = str(rt.root)
    binds = []
    for d in sorted(set(visible)):
        os.makedirs(root + d, exist_ok=True)
        binds.append("mount --bind %s %s%s" % (d, root, d))
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexec unshare --mount --net sh -c '\n"
                      "mount --bind /proc %s/proc\n%s\n"
                      "exec chroot %s env -i PATH=/usr/bin:/bin PYTHONPATH=%s TF_CPP_MIN_LOG_LEVEL=2 %s \"$@\"' sh \"$@\"\n"
                      % (root, "\n".join(binds), root, rt.site_dir, rt.python))
    script.chmod(0o755)
    return script


@pytest.mark.real_runtime("1.8")
def test_python_given_as_a_wrapper_script(module_saved_18, tf_release, tmp_path):
    from transpiler.runtimes.runner import LOADER

    src, out = module_saved_18
    rt = tf_release("1.8")
    python = _wrapper_for(rt, tmp_path, ["/tmp", str(LOADER.parent), str(src), str(out)])
    p = _verify(src, out, "1.8", "--python", python, "--format", "json")
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["ok"], doc["summary"]
    assert doc["target_tf"] == "1.8.0" and doc["runtime"].endswith("(--python)")
