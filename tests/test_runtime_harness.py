"""The real-runtime harness itself: build a model in TF 1.8, run it back, see errors."""

import subprocess
import sys

import numpy as np
import pytest

from runtime_fixtures import HARNESS_DIR, ReleaseLoadError

MAKE_TINY = HARNESS_DIR / "make_tiny_model.py"
W = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]], np.float32)
B = np.array([0.1, -0.2], np.float32)
X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], np.float32)
NAMES = np.array([b"ada", b"grace"])


def expected_y(x):
    return np.maximum(x @ W + B, 0.0)


@pytest.fixture(scope="module")
def tiny_18(tf_release, tmp_path_factory):
    """A SavedModel + frozen graph written by real TF 1.8 (Python 2.7)."""
    rt = tf_release("1.8")
    out = tmp_path_factory.mktemp("tiny18")
    proc = rt.run_python(MAKE_TINY, [rt.chroot_path(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"tf_version": "1.8.0"' in proc.stdout
    return out


@pytest.mark.real_runtime("1.8")
def test_saved_model_round_trip_in_18(tiny_18, run_in_release):
    out = run_in_release("1.8", tiny_18 / "saved_model", {"x": X, "name": NAMES})
    assert sorted(out) == ["msg", "y"]
    np.testing.assert_allclose(out["y"], expected_y(X), rtol=1e-6)
    assert out["msg"].dtype.kind == "S"
    assert out["msg"].tolist() == [b"hi ada", b"hi grace"]


@pytest.mark.real_runtime("1.8")
def test_str_inputs_are_sent_as_bytes(tiny_18, run_in_release):
    out = run_in_release("1.8", tiny_18 / "saved_model",
                         {"x": X[:1], "name": np.array(["zoë"], dtype=object)})
    assert out["msg"].tolist() == ["hi zoë".encode("utf-8")]


@pytest.mark.real_runtime("1.8")
def test_frozen_graph_in_18(tiny_18, run_graph_def_in_release):
    out = run_graph_def_in_release("1.8", tiny_18 / "frozen.pb",
                                   {"x:0": X, "name:0": NAMES}, ["y:0", "msg:0"])
    np.testing.assert_allclose(out["y:0"], expected_y(X), rtol=1e-6)
    assert out["msg:0"].tolist() == [b"hi ada", b"hi grace"]


@pytest.mark.real_runtime("1.8")
def test_corrupt_saved_model_is_a_release_load_error(tmp_path, tiny_18, run_in_release):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff this is not a protobuf")
    with pytest.raises(ReleaseLoadError) as ei:
        run_in_release("1.8", bad, {"x": X, "name": NAMES})
    err = ei.value
    assert err.version == "1.8.0"
    assert err.stage == "load"
    assert "Cannot parse" in str(err) or "DecodeError" in str(err), str(err)


@pytest.mark.real_runtime("1.8")
def test_unknown_signature_is_a_release_load_error(tiny_18, run_in_release):
    with pytest.raises(ReleaseLoadError, match="signature 'nope' not in SavedModel"):
        run_in_release("1.8", tiny_18 / "saved_model", {"x": X, "name": NAMES},
                       signature="nope")


@pytest.mark.real_runtime("1.8")
def test_bad_feed_is_not_a_load_error(tiny_18, run_in_release):
    with pytest.raises(RuntimeError, match=r"missing \[name\]"):
        run_in_release("1.8", tiny_18 / "saved_model", {"x": X})


@pytest.mark.real_runtime("1.8")
def test_tf2_compat_v1_saved_model_refused_by_18(tmp_path, run_in_release):
    """The brief's motivating failure, reproduced for real: TF 2.x's compat.v1
    builder writes a saver graph with StaticRegexFullMatch, unknown to TF 1.8."""
    pytest.importorskip("tensorflow")
    proc = subprocess.run([sys.executable, str(MAKE_TINY), str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The host TF runs it fine through the same loader ...
    host = run_in_release("host", tmp_path / "saved_model", {"x": X, "name": NAMES})
    np.testing.assert_allclose(host["y"], expected_y(X), rtol=1e-6)
    # ... and TF 1.8 refuses it, naming the op.
    with pytest.raises(ReleaseLoadError) as ei:
        run_in_release("1.8", tmp_path / "saved_model", {"x": X, "name": NAMES})
    assert "StaticRegexFullMatch" in str(ei.value), str(ei.value)
    assert ei.value.stage == "load"
