"""Build small test models with the host's TensorFlow 2.x (Python 3).

    python tf2_models.py OUTDIR [NAME ...]

or, from Python, ``build(outdir, names=None)``. Same output convention as
tf1_models.py: OUTDIR/NAME/ (SavedModel, tags ["serve"]), OUTDIR/NAME.case.json
and OUTDIR/NAME.io.npz (in__<key> / out__<key>). For signature-based models
the case's inputs/outputs map signature keys to the tensor names found in the
written signature_def; a loader should go through the signature.

Models:
  compat_v1_linear_relu6  tf.compat.v1 graph + Session + SavedModelBuilder,
                          signature "predict"; the same weights as
                          tf1_models.linear_relu6. Its saver graph holds
                          StaticRegexFullMatch (unknown to TF <= 1.12).
  compat_v1_cnn           tf.compat.v1 CNN: conv2d, fused batch norm
                          (FusedBatchNormV3), LeakyRelu, depthwise conv,
                          pooling, dense; builder export.
  compat_v1_einsum        tf.compat.v1 multi-head-attention-like block:
                          tf.einsum projections and scores (Einsum), a
                          broadcasting tf.linalg.matmul [B,1,3,4] x [5,4,6]
                          (BatchMatMulV2), a broadcasting tf.where (SelectV2),
                          bias adds (AddV2); builder export, "serving_default".
  module_saved            tf.Module with resource variables and a
                          tf.function serving signature; tf.saved_model.save
                          (StatefulPartitionedCall + function library).
  module_control_flow     like module_saved, with a tf.range loop and a
                          data-dependent if inside the tf.function (functional
                          While/If ops in the function library).
  keras_export            Keras 3 functional model (Conv2D, pooling, Dense)
                          via model.export(dir).
  module_two_signatures   tf.Module with two tf.function signatures
                          ("serving_default", "score"); a second case,
                          module_two_signatures__score, runs "score".
  keras_lstm, keras_gru   Keras 3 Embedding + LSTM/GRU + Dense text
                          classifiers via model.export() (functional While
                          carrying TensorList ops).
  keras_transformer       Keras 3 Transformer encoder block
                          (MultiHeadAttention, LayerNormalization, gelu).
  module_nested_control_flow  variables read in loop bodies and branches,
                          loops in loops and in branches, tf.switch_case
                          (Case), a TensorArray carried by a While.
"""
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
SERVE = "serve"


def _session_config():
    return v1.ConfigProto(intra_op_parallelism_threads=1,
                          inter_op_parallelism_threads=1)


def _normal(seed, shape, scale=1.0):
    # Same recipe as tf1_models._normal (legacy RandomState is stable across
    # numpy releases), so shared models have identical numbers.
    return (np.random.RandomState(seed).standard_normal(shape) * scale).astype(np.float32)


def _uniform(seed, shape, low, high):
    return np.random.RandomState(seed).uniform(low, high, shape).astype(np.float32)


def linear_relu6_weights():
    """Must equal tf1_models.linear_relu6_weights()."""
    w = _normal(101, (3, 2), 1.5)
    b = _normal(102, (2,), 1.0)
    x = _normal(103, (4, 3), 2.0)
    return w, b, x


# --------------------------------------------------------------------------
# writers


def _write_case(outdir, name, kind, relpath, tags, signature, inputs, outputs,
                feeds, results):
    """inputs/outputs: {key: tensor name}; feeds/results: {key: ndarray}."""
    case = {
        "name": name,
        "kind": kind,
        "path": relpath,
        "tags": list(tags),
        "signature": signature,
        "producer": tf.__version__,
        "inputs": dict(inputs),
        "outputs": dict(outputs),
    }
    with open(os.path.join(outdir, name + ".case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
    arrays = {"in__" + k: np.asarray(v) for k, v in feeds.items()}
    arrays.update({"out__" + k: np.asarray(v) for k, v in results.items()})
    np.savez(os.path.join(outdir, name + ".io.npz"), **arrays)
    return case


def _signature_tensor_names(export_dir, signature, tags=(SERVE,)):
    """{key: tensor name} for a signature's inputs and outputs, read from the
    saved_model.pb that was just written."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == set(tags):
            sig = mg.signature_def[signature]
            return ({k: v.name for k, v in sig.inputs.items()},
                    {k: v.name for k, v in sig.outputs.items()})
    raise ValueError("no meta graph with tags %r in %s" % (tags, export_dir))


def _fresh_dir(outdir, name):
    export_dir = os.path.join(outdir, name)
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    return export_dir


def _builder_export(sess, outdir, name, signature, inputs, outputs, feeds):
    """tf.compat.v1 path: run, then SavedModelBuilder. inputs/outputs are
    {key: tf.Tensor}."""
    export_dir = _fresh_dir(outdir, name)
    keys = sorted(outputs)
    values = sess.run([outputs[k] for k in keys],
                      feed_dict={inputs[k]: v for k, v in feeds.items()})
    results = dict(zip(keys, values))
    sig = v1.saved_model.signature_def_utils.predict_signature_def(
        inputs=inputs, outputs=outputs)
    builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
    builder.add_meta_graph_and_variables(
        sess, [SERVE], signature_def_map={signature: sig})
    builder.save()
    return _write_case(outdir, name, "saved_model", name, [SERVE], signature,
                       {k: t.name for k, t in inputs.items()},
                       {k: t.name for k, t in outputs.items()},
                       feeds, results)


def _signature_outputs(fn, feeds):
    """Calls a (concrete) signature function eagerly; {key: ndarray}."""
    out = fn(**{k: tf.constant(v) for k, v in feeds.items()})
    return {k: v.numpy() for k, v in out.items()}


# --------------------------------------------------------------------------
# models


def build_compat_v1_linear_relu6(outdir):
    w_val, b_val, x_val = linear_relu6_weights()
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        w = v1.get_variable("W", initializer=w_val)
        b = v1.get_variable("b", initializer=b_val)
        y = tf.nn.relu6(tf.matmul(x, w) + b, name="y")
        with v1.Session(graph=g, config=_session_config()) as sess:
            sess.run(v1.global_variables_initializer())
            return _builder_export(sess, outdir, "compat_v1_linear_relu6",
                                   "predict", {"x": x}, {"y": y},
                                   {"x": x_val})


def build_compat_v1_cnn(outdir):
    x_val = _normal(601, (2, 8, 8, 3), 1.0)
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")

        def var(name, value):
            return v1.get_variable(name, initializer=value)

        def fused_bn(h, scope, c, seed):
            with v1.variable_scope(scope):
                gamma = var("gamma", 1.0 + _normal(seed, (c,), 0.2))
                beta = var("beta", _normal(seed + 1, (c,), 0.2))
                mean = var("moving_mean", _normal(seed + 2, (c,), 0.3))
                variance = var("moving_variance",
                               _uniform(seed + 3, (c,), 0.5, 1.5))
                y, _, _ = v1.nn.fused_batch_norm(
                    h, gamma, beta, mean=mean, variance=variance,
                    epsilon=1e-3, is_training=False)
            return y

        k1 = var("conv1/kernel", _normal(610, (3, 3, 3, 4), 0.4))
        h = tf.nn.conv2d(x, k1, strides=[1, 1, 1, 1], padding="SAME")
        h = fused_bn(h, "bn1", 4, 620)
        h = tf.nn.leaky_relu(h, alpha=0.1)
        dk = var("dw1/depthwise_kernel", _normal(630, (3, 3, 4, 1), 0.4))
        h = tf.nn.depthwise_conv2d(h, dk, strides=[1, 1, 1, 1],
                                   padding="SAME")
        h = fused_bn(h, "bn2", 4, 640)
        h = tf.nn.relu6(h)
        h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="VALID")
        k2 = var("conv2/kernel", _normal(650, (1, 1, 4, 6), 0.4))
        b2 = var("conv2/bias", _normal(651, (6,), 0.1))
        h = tf.nn.relu(tf.nn.bias_add(
            tf.nn.conv2d(h, k2, strides=[1, 1, 1, 1], padding="VALID"), b2))
        h = tf.reduce_mean(h, axis=[1, 2])
        kd = var("dense/kernel", _normal(660, (6, 5), 0.4))
        bd = var("dense/bias", _normal(661, (5,), 0.1))
        y = tf.identity(tf.matmul(h, kd) + bd, name="y")
        with v1.Session(graph=g, config=_session_config()) as sess:
            sess.run(v1.global_variables_initializer())
            return _builder_export(sess, outdir, "compat_v1_cnn",
                                   "serving_default", {"x": x}, {"y": y},
                                   {"x": x_val})


def build_compat_v1_einsum(outdir):
    x_val = _normal(1101, (2, 4, 8), 1.0)
    heads, key_dim = 2, 4
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 4, 8], name="x")

        def var(name, seed, shape, scale=0.4):
            return v1.get_variable(name, initializer=_normal(seed, shape, scale))

        def project(h, name, seed):                 # Keras EinsumDense
            kernel = var(name + "/kernel", seed, (8, heads, key_dim))
            bias = var(name + "/bias", seed + 1, (heads, key_dim), 0.1)
            return tf.einsum("abc,cde->abde", h, kernel) + bias
        q = project(x, "query", 1110) * (1.0 / key_dim ** 0.5)
        k = project(x, "key", 1120)
        v = project(x, "value", 1130)
        scores = tf.einsum("aecd,abcd->acbe", k, q)  # [B, heads, Tq, Tk]
        probs = tf.nn.softmax(scores, axis=-1)
        context = tf.einsum("acbe,aecd->abcd", probs, v)
        wo = var("attention_output/kernel", 1140, (heads, key_dim, 8))
        attention = tf.einsum("abcd,cde->abe", context, wo)
        # A broadcasting batch matmul: [B, 1, 3, 4] x [5, 4, 6] -> [B, 5, 3, 6].
        w = var("mix/kernel", 1150, (5, 4, 6))
        mixed = tf.linalg.matmul(tf.expand_dims(attention[:, :3, :4], 1), w)
        # A broadcasting select: condition [B, 5, 1, 6], else a [6] row.
        keep = tf.reduce_mean(mixed, axis=2, keepdims=True) > 0.0
        floor = var("floor", 1160, (6,), 0.1)
        y = tf.identity(tf.where(keep, mixed, floor), name="y")
        attention = tf.identity(attention, name="attention")
        with v1.Session(graph=g, config=_session_config()) as sess:
            sess.run(v1.global_variables_initializer())
            return _builder_export(sess, outdir, "compat_v1_einsum",
                                   "serving_default", {"x": x},
                                   {"y": y, "attention": attention},
                                   {"x": x_val})


class _LinearModule(tf.Module):
    def __init__(self):
        super().__init__(name="linear_module")
        self.w = tf.Variable(_normal(701, (3, 4), 0.8), name="w")
        self.b = tf.Variable(_normal(702, (4,), 0.3), name="b")
        self.scale = tf.Variable(np.float32(1.5), name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                name="x")])
    def __call__(self, x):
        h = tf.nn.relu(tf.matmul(x, self.w) + self.b)
        return {"y": h * self.scale, "total": tf.reduce_sum(h, axis=1)}


class _ControlFlowModule(tf.Module):
    def __init__(self):
        super().__init__(name="control_flow_module")
        self.w = tf.Variable(_normal(801, (3, 3), 0.7), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                name="x")])
    def __call__(self, x):
        h = tf.matmul(x, self.w)
        for _ in tf.range(3):                       # -> While
            h = tf.tanh(h) * 0.9 + 0.1
        if tf.reduce_sum(h) > 0.0:                  # -> If
            h = h * 2.0
        else:
            h = h - 1.0
        return {"y": h}


def _module_export(outdir, name, module, x_val):
    export_dir = _fresh_dir(outdir, name)
    fn = module.__call__.get_concrete_function()
    tf.saved_model.save(module, export_dir,
                        signatures={"serving_default": fn})
    results = _signature_outputs(fn, {"x": x_val})
    inputs, outputs = _signature_tensor_names(export_dir, "serving_default")
    return _write_case(outdir, name, "saved_model", name, [SERVE],
                       "serving_default", inputs, outputs, {"x": x_val},
                       results)


def build_module_saved(outdir):
    return _module_export(outdir, "module_saved", _LinearModule(),
                          _normal(703, (4, 3), 1.0))


def build_module_control_flow(outdir):
    return _module_export(outdir, "module_control_flow", _ControlFlowModule(),
                          _normal(803, (4, 3), 1.0))


def build_keras_export(outdir):
    import keras

    name = "keras_export"
    inp = keras.Input(shape=(8, 8, 3), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            name="conv")(inp)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(3, name="dense")(h)
    model = keras.Model(inp, out, name="keras_export")
    model.set_weights([_normal(900 + i, w.shape, 0.4)
                       for i, w in enumerate(model.get_weights())])
    export_dir = _fresh_dir(outdir, name)
    model.export(export_dir, verbose=False)
    inputs, outputs = _signature_tensor_names(export_dir, "serving_default")
    (in_key,) = inputs
    x_val = _normal(950, (2, 8, 8, 3), 1.0)
    # The producer's numbers: the exported serving function, called eagerly.
    loaded = tf.saved_model.load(export_dir)
    results = _signature_outputs(loaded.signatures["serving_default"],
                                 {in_key: x_val})
    return _write_case(outdir, name, "saved_model", name, [SERVE],
                       "serving_default", inputs, outputs, {in_key: x_val},
                       results)


class _TwoSignatureModule(tf.Module):
    def __init__(self):
        super().__init__(name="two_signature_module")
        self.w = tf.Variable(_normal(1001, (3, 2), 0.6), name="w")
        self.b = tf.Variable(_normal(1002, (2,), 0.2), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                name="x")])
    def predict(self, x):
        return {"y": tf.sigmoid(tf.matmul(x, self.w) + self.b)}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                name="x"),
                                  tf.TensorSpec([], tf.float32,
                                                name="scale")])
    def score(self, x, scale):
        logits = tf.matmul(x, self.w) * scale
        return {"logits": logits,
                "best": tf.argmax(logits, axis=1, output_type=tf.int32)}


def build_module_two_signatures(outdir):
    """Two serving signatures in one meta graph: NAME (serving_default) and
    NAME__score (signature "score", same SavedModel directory)."""
    name = "module_two_signatures"
    module = _TwoSignatureModule()
    export_dir = _fresh_dir(outdir, name)
    predict = module.predict.get_concrete_function()
    score = module.score.get_concrete_function()
    tf.saved_model.save(module, export_dir,
                        signatures={"serving_default": predict,
                                    "score": score})
    x_val = _normal(1003, (5, 3), 1.0)
    feeds = {"x": x_val}
    inputs, outputs = _signature_tensor_names(export_dir, "serving_default")
    _write_case(outdir, name + "__score", "saved_model", name, [SERVE],
                "score", *_signature_tensor_names(export_dir, "score"),
                {"x": x_val, "scale": np.float32(1.7)},
                _signature_outputs(score, {"x": x_val,
                                           "scale": np.float32(1.7)}))
    return _write_case(outdir, name, "saved_model", name, [SERVE],
                       "serving_default", inputs, outputs, feeds,
                       _signature_outputs(predict, feeds))


def _keras_export_case(outdir, name, model, feed):
    """model.export(dir), then the producer's numbers from the exported
    serving function called eagerly (as keras_export does)."""
    export_dir = _fresh_dir(outdir, name)
    model.export(export_dir, verbose=False)
    inputs, outputs = _signature_tensor_names(export_dir, "serving_default")
    (in_key,) = inputs
    loaded = tf.saved_model.load(export_dir)
    results = _signature_outputs(loaded.signatures["serving_default"],
                                 {in_key: feed})
    return _write_case(outdir, name, "saved_model", name, [SERVE],
                       "serving_default", inputs, outputs, {in_key: feed},
                       results)


def _set_weights(model, seed, scale):
    model.set_weights([_normal(seed + i, w.shape, scale)
                       for i, w in enumerate(model.get_weights())])


def _tokens(seed, shape, vocab):
    return np.random.RandomState(seed).randint(0, vocab, shape).astype(
        np.int32)


def _keras_rnn_classifier(name, rnn_layer, seed):
    import keras

    inp = keras.Input(shape=(7,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(20, 6, name="embedding")(inp)
    h = rnn_layer(h)
    out = keras.layers.Dense(3, activation="softmax", name="dense")(h)
    model = keras.Model(inp, out, name=name)
    _set_weights(model, seed, 0.5)
    return model


def build_keras_lstm(outdir):
    """Keras 3 Embedding + LSTM + Dense text classifier, model.export()."""
    import keras

    model = _keras_rnn_classifier("keras_lstm", keras.layers.LSTM(
        8, name="lstm"), 1100)
    return _keras_export_case(outdir, "keras_lstm", model,
                              _tokens(1150, (3, 7), 20))


def build_keras_gru(outdir):
    """Keras 3 Embedding + GRU + Dense text classifier, model.export()."""
    import keras

    model = _keras_rnn_classifier("keras_gru", keras.layers.GRU(
        8, name="gru"), 1200)
    return _keras_export_case(outdir, "keras_gru", model,
                              _tokens(1250, (3, 7), 20))


def build_keras_transformer(outdir):
    """A small Transformer encoder block (MultiHeadAttention, residuals,
    LayerNormalization, gelu feed-forward) + pooling + Dense, model.export()."""
    import keras

    name = "keras_transformer"
    inp = keras.Input(shape=(5, 8), name="features")
    att = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4,
                                          name="attention")(inp, inp)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="norm1")(
        keras.layers.Add(name="residual1")([inp, att]))
    ff = keras.layers.Dense(16, activation="gelu", name="ff1")(h)
    ff = keras.layers.Dense(8, name="ff2")(ff)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="norm2")(
        keras.layers.Add(name="residual2")([h, ff]))
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    out = keras.layers.Dense(4, name="head")(h)
    model = keras.Model(inp, out, name=name)
    _set_weights(model, 1300, 0.4)
    return _keras_export_case(outdir, name, model,
                              _normal(1350, (2, 5, 8), 1.0))


class _NestedControlFlowModule(tf.Module):
    """Resource variables read inside loop bodies and branches; a loop in a
    branch, a cond and a loop in a loop, a tf.switch_case (Case), a
    data-dependent trip count and a loop that carries a TensorArray."""

    def __init__(self):
        super().__init__(name="nested_control_flow_module")
        self.w = tf.Variable(_normal(1401, (3, 3), 0.5), name="w")
        self.b = tf.Variable(_normal(1402, (3,), 0.2), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                name="x"),
                                  tf.TensorSpec([], tf.int32,
                                                name="mode")])
    def __call__(self, x, mode):
        h = x
        steps = tf.cast(tf.reduce_sum(tf.abs(x)) * 0.5, tf.int32) % 4 + 1
        trace = tf.TensorArray(tf.float32, size=steps)
        for i in tf.range(steps):                   # data-dependent While
            h = tf.tanh(tf.matmul(h, self.w) + self.b)
            if tf.reduce_mean(h) > 0.0:             # cond in the loop
                h = h * 1.1
            else:
                j = tf.constant(0)                  # loop in a branch
                while j < 2:
                    h = h - 0.05 * self.b
                    j += 1
            k = tf.constant(0)                      # loop in the loop
            while k < i:
                h = h + 0.01
                k += 1
            trace = trace.write(i, tf.reduce_sum(h, axis=1))
        h = tf.switch_case(mode, [lambda: h * 2.0,
                                  lambda: h + self.b,
                                  lambda: tf.matmul(h, self.w)])
        return {"y": h, "trace": trace.stack(), "steps": steps}


def build_module_nested_control_flow(outdir):
    name = "module_nested_control_flow"
    module = _NestedControlFlowModule()
    export_dir = _fresh_dir(outdir, name)
    fn = module.__call__.get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures={"serving_default": fn})
    feeds = {"x": _normal(1403, (4, 3), 1.0), "mode": np.int32(2)}
    inputs, outputs = _signature_tensor_names(export_dir, "serving_default")
    return _write_case(outdir, name, "saved_model", name, [SERVE],
                       "serving_default", inputs, outputs, feeds,
                       _signature_outputs(fn, feeds))


MODELS = {
    "compat_v1_linear_relu6": build_compat_v1_linear_relu6,
    "compat_v1_cnn": build_compat_v1_cnn,
    "compat_v1_einsum": build_compat_v1_einsum,
    "module_saved": build_module_saved,
    "module_control_flow": build_module_control_flow,
    "keras_export": build_keras_export,
    "module_two_signatures": build_module_two_signatures,
    "keras_lstm": build_keras_lstm,
    "keras_gru": build_keras_gru,
    "keras_transformer": build_keras_transformer,
    "module_nested_control_flow": build_module_nested_control_flow,
}


def build(outdir, names=None, verbose=False):
    """Builds the named models (all when None) into outdir; returns
    {name: case dict}."""
    names = list(MODELS) if names is None else list(names)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise KeyError("unknown model(s): %s" % ", ".join(unknown))
    os.makedirs(outdir, exist_ok=True)
    cases = {}
    for name in names:
        t0 = time.time()
        cases[name] = MODELS[name](outdir)
        if verbose:
            print("built %s in %.2f s (TF %s)" % (name, time.time() - t0,
                                                   tf.__version__))
    return cases


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: tf2_models.py OUTDIR [NAME ...]\n")
        return 2
    try:
        build(argv[1], argv[2:] or None, verbose=True)
    except KeyError as e:
        sys.stderr.write("%s\n" % e.args[0])
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
