# -*- coding: utf-8 -*-
"""Build the TF 1.x models the upgrade tests (1.x -> native TF 2) start from.

Runs under Python 2.7 inside real TF 1.4 and 1.15 (the conventions of
tf1_models.py, whose helpers it reuses: seeded numpy weights, one-thread
sessions, NAME.case.json + NAME.io.npz written from the very session that was
exported):

    python tf1_upgrade_models.py OUTDIR [NAME ...]

Besides SavedModels ("saved_model") and frozen GraphDefs ("graph_def") it
writes a MetaGraphDef with a name-based checkpoint ("meta_graph": path is the
.meta file, "checkpoint" the prefix relative to OUTDIR) for the checkpoint and
.meta tests. Models that use tf.contrib import it first, as their authors did
(contrib ops are only registered then).
"""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import graph_util  # noqa: E402

from tf1_models import (SERVE, TF_VERSION, _normal, _session_config,  # noqa: E402
                        _uniform, _write_case, export_estimator, run_signature)


def _contrib():
    import tensorflow.contrib as contrib  # registers the contrib ops
    return contrib


def _run(sess, inputs, outputs, feeds):
    keys = sorted(outputs)
    feed_dict = dict((inputs[k], v) for k, v in feeds.items())
    return dict(zip(keys, sess.run([outputs[k] for k in keys], feed_dict=feed_dict)))


def _export(sess, outdir, name, signature, inputs, outputs, feeds):
    """SavedModelBuilder export ("serve"), predict signature; writes the case."""
    export_dir = os.path.join(outdir, name)
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    results = _run(sess, inputs, outputs, feeds)
    sig = tf.saved_model.signature_def_utils.predict_signature_def(inputs=inputs, outputs=outputs)
    builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
    builder.add_meta_graph_and_variables(sess, [SERVE], signature_def_map={signature: sig})
    builder.save()
    _write_case(outdir, name, "saved_model", name, [SERVE], signature, inputs, outputs, feeds, results)


def _freeze(sess, outdir, name, inputs, outputs, feeds):
    results = _run(sess, inputs, outputs, feeds)
    out_nodes = sorted(set(t.op.name for t in outputs.values()))
    frozen = graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), out_nodes)
    with open(os.path.join(outdir, name + ".pb"), "wb") as f:
        f.write(frozen.SerializeToString())
    _write_case(outdir, name, "graph_def", name + ".pb", [], None, inputs, outputs, feeds, results)


def _const(value):
    return tf.constant_initializer(value)


# --------------------------------------------------------------------------
# core models


def _cnn_layers_graph():
    """conv(relu) -> fused batch norm (inference) -> max pool -> conv -> dense."""
    x = tf.placeholder(tf.float32, [None, 8, 8, 3], name="image")
    h = tf.layers.conv2d(x, 4, 3, padding="same", activation=tf.nn.relu, name="conv1",
                         kernel_initializer=_const(_normal(1001, (3, 3, 3, 4), 0.4)),
                         bias_initializer=_const(_normal(1002, (4,), 0.1)))
    h = tf.layers.batch_normalization(
        h, fused=True, training=False, name="bn1",
        gamma_initializer=_const(1.0 + _normal(1003, (4,), 0.2)),
        beta_initializer=_const(_normal(1004, (4,), 0.2)),
        moving_mean_initializer=_const(_normal(1005, (4,), 0.3)),
        moving_variance_initializer=_const(_uniform(1006, (4,), 0.5, 1.5)))
    h = tf.layers.max_pooling2d(h, 2, 2, name="pool1")
    h = tf.layers.conv2d(h, 6, 1, activation=tf.nn.tanh, name="conv2",
                         kernel_initializer=_const(_normal(1007, (1, 1, 4, 6), 0.5)),
                         bias_initializer=_const(_normal(1008, (6,), 0.1)))
    h = tf.reshape(h, [-1, 4 * 4 * 6])
    logits = tf.layers.dense(h, 5, name="dense",
                             kernel_initializer=_const(_normal(1009, (96, 5), 0.2)),
                             bias_initializer=_const(_normal(1010, (5,), 0.1)))
    probs = tf.nn.softmax(logits, name="probs")
    return x, logits, probs


def build_cnn_layers(outdir):
    """tf.layers CNN as a SavedModel; signature serving_default (image -> logits, probs)."""
    with tf.Graph().as_default() as g:
        x, logits, probs = _cnn_layers_graph()
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _export(sess, outdir, "cnn_layers", "serving_default", {"image": x},
                    {"logits": logits, "probs": probs}, {"image": _normal(1011, (3, 8, 8, 3))})


def build_cnn_layers_frozen(outdir):
    """The same CNN frozen into a GraphDef: one placeholder, one unconsumed sink (probs)."""
    with tf.Graph().as_default() as g:
        x, _, probs = _cnn_layers_graph()
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _freeze(sess, outdir, "cnn_layers_frozen", {"image": x}, {"probs": probs},
                    {"image": _normal(1011, (3, 8, 8, 3))})


def build_lstm_dynamic_rnn(outdir):
    """tf.nn.dynamic_rnn over an LSTMCell with per-example sequence lengths
    (a v1 while loop with TensorArrays)."""
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 6, 3], name="x")
        lengths = tf.placeholder(tf.int32, [None], name="lengths")
        cell = tf.nn.rnn_cell.LSTMCell(5, initializer=_const(_normal(1101, (8, 20), 0.4)))
        outputs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32, scope="rnn")
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            # the bias starts at zero: give it values too
            bias = [v for v in tf.global_variables() if v.name.endswith("bias:0")][0]
            sess.run(bias.assign(_normal(1102, (20,), 0.3)))
            _export(sess, outdir, "lstm_dynamic_rnn", "serving_default",
                    {"x": x, "lengths": lengths},
                    {"outputs": tf.identity(outputs, name="outputs"),
                     "h": tf.identity(state.h, name="h"), "c": tf.identity(state.c, name="c")},
                    {"x": _normal(1103, (3, 6, 3)), "lengths": np.array([6, 2, 4], np.int32)})


def build_estimator_dnn(outdir):
    """A canned DNNRegressor trained 3 steps, exported with a raw-tensor
    serving_input_receiver_fn; signature "predict" (x -> predictions)."""
    name = "estimator_dnn"
    x_train = _normal(1201, (32, 3), 1.0)
    y_train = (x_train.dot(np.array([[1.0], [-2.0], [0.5]], np.float32)) + 0.5).astype(np.float32)
    x_val = _normal(1202, (4, 3), 1.0)
    columns = [tf.feature_column.numeric_column("x", shape=(3,))]

    def make(model_dir):
        return tf.estimator.DNNRegressor([8, 4], columns, model_dir=model_dir,
                                         config=tf.estimator.RunConfig(tf_random_seed=11))

    input_fn = tf.estimator.inputs.numpy_input_fn(
        {"x": x_train}, y_train, batch_size=8, num_epochs=None, shuffle=False)
    receiver = tf.estimator.export.build_raw_serving_input_receiver_fn(
        {"x": tf.placeholder(tf.float32, [None, 3], name="x")})
    export_dir = export_estimator(make, input_fn, 3, receiver, outdir, name)
    signature = "predict"
    inputs, outputs, keys, values = run_signature(export_dir, signature, {"x": x_val})
    _write_case(outdir, name, "saved_model", name, [SERVE], signature, inputs, outputs,
                {"x": x_val}, dict(zip(keys, values)))


def build_train_checkpoint(outdir):
    """A two-layer net trained 3 Adam steps and saved by tf.train.Saver: a
    training MetaGraphDef (.meta) and a name-based checkpoint with Adam slots
    (W1/Adam, W1/Adam_1, ...), beta1_power/beta2_power and global_step."""
    name = "train_checkpoint"
    directory = os.path.join(outdir, name)
    if os.path.exists(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    x_val = _normal(1301, (4, 3), 1.0)
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        target = tf.placeholder(tf.float32, [None, 2], name="target")
        with tf.variable_scope("model"):
            w1 = tf.get_variable("W1", [3, 4], initializer=_const(_normal(1302, (3, 4), 0.5)))
            b1 = tf.get_variable("b1", [4], initializer=_const(_normal(1303, (4,), 0.1)))
            w2 = tf.get_variable("W2", [4, 2], initializer=_const(_normal(1304, (4, 2), 0.5)))
            b2 = tf.get_variable("b2", [2], initializer=_const(_normal(1305, (2,), 0.1)))
        y = tf.add(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2), b2, name="y")
        loss = tf.reduce_mean(tf.square(y - target))
        step = tf.train.get_or_create_global_step()
        train = tf.train.AdamOptimizer(0.05).minimize(loss, global_step=step)
        saver = tf.train.Saver()
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            for i in range(3):
                sess.run(train, {x: _normal(1306 + i, (8, 3)), target: _normal(1310 + i, (8, 2))})
            results = _run(sess, {"x": x}, {"y": y}, {"x": x_val})
            saver.save(sess, os.path.join(directory, "model.ckpt"))
    _write_case(outdir, name, "meta_graph", os.path.join(name, "model.ckpt.meta"), [], None,
                {"x": x}, {"y": y}, {"x": x_val}, results)
    _add_to_case(outdir, name, checkpoint="model.ckpt")


def _add_to_case(outdir, name, **fields):
    path = os.path.join(outdir, name + ".case.json")
    with open(path) as f:
        case = json.load(f)
    case.update(fields)
    with open(path, "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)


# --------------------------------------------------------------------------
# tf.contrib and deprecated ops


def build_contrib_image_transform(outdir):
    """tf.contrib.image.transform (projective, bilinear) and rotate (nearest)
    after a 1x1 conv: ImageProjectiveTransform in TF 1.4,
    ImageProjectiveTransformV2 in TF 1.15. Part of each image maps outside."""
    contrib = _contrib()
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 7, 9, 3], name="image")
        h = tf.layers.conv2d(x, 3, 1, name="mix",
                             kernel_initializer=_const(_normal(1401, (1, 1, 3, 3), 0.6)),
                             bias_initializer=_const(_normal(1402, (3,), 0.1)))
        warped = contrib.image.transform(h, [1.1, 0.2, -1.5, -0.1, 0.9, 0.7, 0.01, -0.02],
                                         interpolation="BILINEAR")
        rotated = contrib.image.rotate(h, 0.4)
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _export(sess, outdir, "contrib_image_transform", "serving_default", {"image": x},
                    {"warped": tf.identity(warped, name="warped"),
                     "rotated": tf.identity(rotated, name="rotated")},
                    {"image": _uniform(1403, (2, 7, 9, 3), -2.0, 2.0)})


def build_contrib_resampler(outdir):
    """tf.contrib.resampler (op Resampler, never in core TF): bilinear samples
    of a scaled image at points inside, on and outside its border."""
    contrib = _contrib()
    with tf.Graph().as_default() as g:
        data = tf.placeholder(tf.float32, [None, 6, 7, 3], name="data")
        warp = tf.placeholder(tf.float32, [None, 10, 2], name="warp")
        scale = tf.get_variable("scale", [3], initializer=_const(_normal(1501, (3,), 1.0)))
        sampled = contrib.resampler.resampler(data * scale, warp)
        y = tf.identity(sampled, name="sampled")
        warp_val = _uniform(1503, (2, 10, 2), -1.5, 8.0)
        warp_val[0, :4] = [[0.0, 0.0], [6.0, 5.0], [-1.0, 2.5], [3.25, 5.0]]
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _export(sess, outdir, "contrib_resampler", "serving_default",
                    {"data": data, "warp": warp}, {"sampled": y},
                    {"data": _normal(1502, (2, 6, 7, 3)), "warp": warp_val})


def build_contrib_rnn_blocks(outdir):
    """tf.contrib.rnn's fused kernels: LSTMBlockCell and GRUBlockCell in
    dynamic_rnn, LSTMBlockFusedCell (BlockLSTM) over time-major input."""
    contrib = _contrib()
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 5, 3], name="x")
        with tf.variable_scope("lstm_block"):
            lstm_out, _ = tf.nn.dynamic_rnn(contrib.rnn.LSTMBlockCell(4), x, dtype=tf.float32)
        with tf.variable_scope("gru_block"):
            gru_out, _ = tf.nn.dynamic_rnn(contrib.rnn.GRUBlockCell(3), x, dtype=tf.float32)
        with tf.variable_scope("fused"):
            fused_out, _ = contrib.rnn.LSTMBlockFusedCell(2)(tf.transpose(x, [1, 0, 2]), dtype=tf.float32)
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            for i, v in enumerate(sorted(tf.global_variables(), key=lambda v: v.name)):
                shape = v.get_shape().as_list()
                sess.run(v.assign(_normal(1610 + i, shape, 0.5)))
            _export(sess, outdir, "contrib_rnn_blocks", "serving_default", {"x": x},
                    {"lstm": tf.identity(lstm_out, name="lstm"), "gru": tf.identity(gru_out, name="gru"),
                     "fused": tf.identity(fused_out, name="fused")},
                    {"x": _normal(1602, (2, 5, 3))})


def build_contrib_gather_tree(outdir):
    """tf.contrib.seq2seq.gather_tree (op GatherTree): beam-search backtracking."""
    contrib = _contrib()
    rng = np.random.RandomState(1701)
    with tf.Graph().as_default() as g:
        step_ids = tf.placeholder(tf.int32, [5, None, 3], name="step_ids")
        parent_ids = tf.placeholder(tf.int32, [5, None, 3], name="parent_ids")
        lengths = tf.placeholder(tf.int32, [None], name="lengths")
        beams = contrib.seq2seq.gather_tree(step_ids, parent_ids, lengths, end_token=1)
        with tf.Session(graph=g, config=_session_config()) as sess:
            _export(sess, outdir, "contrib_gather_tree", "serving_default",
                    {"step_ids": step_ids, "parent_ids": parent_ids, "lengths": lengths},
                    {"beams": tf.identity(beams, name="beams")},
                    {"step_ids": rng.randint(0, 9, (5, 2, 3)).astype(np.int32),
                     "parent_ids": rng.randint(0, 3, (5, 2, 3)).astype(np.int32),
                     "lengths": np.array([5, 3], np.int32)})


def build_deprecated_random_poisson(outdir):
    """tf.random_poisson in TF 1.4 writes RandomPoisson, deprecated at GraphDef
    version 25: TF refuses it in any graph whose producer is 25 or later."""
    with tf.Graph().as_default() as g:
        rate = tf.placeholder(tf.float32, [None], name="rate")
        samples = tf.random_poisson(rate, [6], seed=3)
        w = tf.get_variable("w", [], initializer=_const(2.0))
        y = tf.identity(samples * w, name="y")
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _export(sess, outdir, "deprecated_random_poisson", "serving_default", {"rate": rate},
                    {"y": y}, {"rate": np.array([0.5, 3.0, 10.0], np.float32)})


# --------------------------------------------------------------------------


def _always():
    return True


def _tf115():
    return TF_VERSION >= (1, 15, 0)


def _before_1_5():
    return TF_VERSION < (1, 5, 0)


# name -> (builder, available-in-this-release predicate)
MODELS = [
    ("cnn_layers", build_cnn_layers, _always),
    ("cnn_layers_frozen", build_cnn_layers_frozen, _always),
    ("lstm_dynamic_rnn", build_lstm_dynamic_rnn, _always),
    ("estimator_dnn", build_estimator_dnn, _always),
    ("train_checkpoint", build_train_checkpoint, _always),
    ("contrib_image_transform", build_contrib_image_transform, _always),
    ("contrib_resampler", build_contrib_resampler, _always),
    ("contrib_rnn_blocks", build_contrib_rnn_blocks, _always),
    ("contrib_gather_tree", build_contrib_gather_tree, _tf115),
    ("deprecated_random_poisson", build_deprecated_random_poisson, _before_1_5),
]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: tf1_upgrade_models.py OUTDIR [NAME ...]\n")
        return 2
    outdir = argv[1]
    wanted = argv[2:]
    known = dict((name, (fn, ok)) for name, fn, ok in MODELS)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        sys.stderr.write("unknown model(s): %s\n" % ", ".join(unknown))
        return 2
    if not os.path.isdir(outdir):
        os.makedirs(outdir)
    built = []
    for name in wanted or [name for name, _, _ in MODELS]:
        fn, ok = known[name]
        if not ok():
            print("skip %s: not available in TF %s" % (name, tf.__version__))
            continue
        t0 = time.time()
        fn(outdir)
        built.append(name)
        print("built %s in %.2f s (TF %s)" % (name, time.time() - t0, tf.__version__))
    with open(os.path.join(outdir, "built.json"), "w") as f:
        json.dump({"producer": tf.__version__, "built": built}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
