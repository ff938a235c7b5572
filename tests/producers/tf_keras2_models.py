"""Build a tf.keras 2 SavedModel inside a real TF 2.x (< 2.16) release.

    python tf_keras2_models.py OUTDIR

writes OUTDIR/keras2_mlp: a functional tf.keras model (Dense, BatchNormalization
with its non-trainable moving statistics, Dense softmax) saved with
model.save(dir, save_format="tf"), so the SavedModel has keras_metadata.pb and
its serving_default signature is the model's call (input key "features",
output key "probs"). Weights are fixed (seeded), the model is not compiled.
The host's Keras 3 cannot write this format: the tests run this script in a
provisioned release (transpiler/runtimes/provision.py).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_keras2_mlp(outdir):
    inp = tf.keras.Input(shape=(6,), name="features")
    h = tf.keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    h = tf.keras.layers.BatchNormalization(name="norm")(h)
    out = tf.keras.layers.Dense(3, activation="softmax", name="probs")(h)
    model = tf.keras.Model(inp, out, name="keras2_mlp")
    rs = np.random.RandomState(7)
    model.set_weights([(rs.uniform(0.5, 1.5, w.shape) if "variance" in v.name else rs.normal(0, 0.5, w.shape))
                       .astype(np.float32) for v, w in zip(model.weights, model.get_weights())])
    path = os.path.join(outdir, "keras2_mlp")
    model.save(path, save_format="tf")
    return path


if __name__ == "__main__":
    print(build_keras2_mlp(sys.argv[1]))
