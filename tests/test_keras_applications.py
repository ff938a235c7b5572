"""Keras `model.export()` of MobileNetV2, ResNet50 and EfficientNetB0 (weights=None),
transpiled for TF 1.8 and 1.15, run in the real release with the producer's numbers."""

import numpy as np
import pytest

APPS = {"mobilenetv2": "MobileNetV2", "resnet50": "ResNet50", "efficientnetb0": "EfficientNetB0"}
#: Softmax outputs of 1000 classes; deep nets reorder float sums between releases.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (SavedModel dir, inputs, outputs), built once per test run by the host TF."""
    import keras
    import tensorflow as tf

    built = {}

    def get(name):
        if name not in built:
            path = str(tmp_path_factory.mktemp(name) / "model")
            getattr(keras.applications, APPS[name])(weights=None, input_shape=(96, 96, 3)).export(path)
            x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
            signature = tf.saved_model.load(path).signatures["serve"]
            [key] = signature.structured_input_signature[1]
            outputs = {k: v.numpy() for k, v in signature(**{key: tf.constant(x)}).items()}
            built[name] = (path, {key: x}, outputs)
        return built[name]

    return get


@pytest.mark.slow
@pytest.mark.real_runtime
@pytest.mark.parametrize("name,release", [
    # CI time: ResNet50 in 1.8 in CI, the other applications and 1.15 under --full-matrix
    pytest.param(name, release, marks=[] if (name, release) == ("resnet50", "1.8.0") else [pytest.mark.full_matrix])
    for name in sorted(APPS) for release in ("1.8.0", "1.15.0")])
def test_keras_application_runs_in_tf1(name, release, exported, cli, run_in_release, tmp_path):
    path, inputs, outputs = exported(name)
    out = tmp_path / "out"
    result = cli(path, out, "--to", release)
    assert result.returncode == 0, result.stderr
    got = run_in_release(release, str(out), inputs, "serve")
    assert sorted(got) == sorted(outputs)
    for key, want in outputs.items():
        np.testing.assert_allclose(got[key], want, rtol=TOLERANCE, atol=TOLERANCE, err_msg=key)
