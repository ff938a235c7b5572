# -*- coding: utf-8 -*-
"""Build small test models with a real TensorFlow 1.x release.

Runs under Python 2.7 inside TF 1.4, 1.8 and 1.15 (and the host's Python 3 for
nothing else): no f-strings, only the v1 API that already exists in TF 1.4.

    python tf1_models.py OUTDIR [NAME ...]

For every model that exists for the running release (all of them when no NAME
is given) it writes

    OUTDIR/NAME/            a SavedModel (tags ["serve"])       kind "saved_model"
    OUTDIR/NAME.pb          a frozen GraphDef                    kind "graph_def"
    OUTDIR/NAME.case.json   name, kind, path (relative to OUTDIR), tags,
                            signature, producer (tf.__version__),
                            inputs/outputs {key: tensor name}
    OUTDIR/NAME.io.npz      in__<key> / out__<key> arrays: seeded inputs and
                            the outputs this release computed for them, in the
                            very session that was exported.

Weights come from seeded numpy RandomStates (not TF's RNG), so a model has the
same numbers in every release that builds it; tests/producers/tf2_models.py
uses the same recipe for compat_v1_linear_relu6.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import graph_util  # noqa: E402

SERVE = "serve"


def _version_tuple(v):
    out = []
    for part in v.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        out.append(int(digits or 0))
    while len(out) < 3:
        out.append(0)
    return tuple(out)


TF_VERSION = _version_tuple(tf.__version__)


def _session_config():
    # One thread each: the recorded outputs must not depend on scheduling.
    return tf.ConfigProto(intra_op_parallelism_threads=1,
                          inter_op_parallelism_threads=1)


def _normal(seed, shape, scale=1.0):
    return (np.random.RandomState(seed).standard_normal(shape) * scale).astype(np.float32)


def _uniform(seed, shape, low, high):
    return np.random.RandomState(seed).uniform(low, high, shape).astype(np.float32)


# --------------------------------------------------------------------------
# writers


def _tensor_name(t):
    return t.name if hasattr(t, "name") else str(t)


def _write_case(outdir, name, kind, relpath, tags, signature, inputs, outputs,
                feeds, results):
    """inputs/outputs: {key: tensor}; feeds/results: {key: ndarray}."""
    case = {
        "name": name,
        "kind": kind,
        "path": relpath,
        "tags": list(tags),
        "signature": signature,
        "producer": tf.__version__,
        "inputs": dict((k, _tensor_name(v)) for k, v in inputs.items()),
        "outputs": dict((k, _tensor_name(v)) for k, v in outputs.items()),
    }
    with open(os.path.join(outdir, name + ".case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
    arrays = {}
    for k, v in feeds.items():
        arrays["in__" + k] = np.asarray(v)
    for k, v in results.items():
        arrays["out__" + k] = np.asarray(v)
    np.savez(os.path.join(outdir, name + ".io.npz"), **arrays)


def _save_saved_model(sess, outdir, name, signature, inputs, outputs, feeds,
                      main_op=None, assets_collection=None):
    """Runs the graph, exports it with SavedModelBuilder and writes the case.

    main_op (e.g. tf.tables_initializer()) runs when the model is loaded;
    assets_collection lists the asset file tensors to copy into assets/."""
    export_dir = os.path.join(outdir, name)
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    keys = sorted(outputs)
    feed_dict = dict((inputs[k], v) for k, v in feeds.items())
    values = sess.run([outputs[k] for k in keys], feed_dict=feed_dict)
    results = dict(zip(keys, values))
    sig = tf.saved_model.signature_def_utils.predict_signature_def(
        inputs=inputs, outputs=outputs)
    builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
    extra = {}
    if main_op is not None:
        extra["main_op"] = main_op
    if assets_collection is not None:
        extra["assets_collection"] = assets_collection
    builder.add_meta_graph_and_variables(
        sess, [SERVE], signature_def_map={signature: sig}, **extra)
    builder.save()
    _write_case(outdir, name, "saved_model", name, [SERVE], signature,
                inputs, outputs, feeds, results)


def _save_frozen(sess, outdir, name, inputs, outputs, feeds):
    keys = sorted(outputs)
    feed_dict = dict((inputs[k], v) for k, v in feeds.items())
    values = sess.run([outputs[k] for k in keys], feed_dict=feed_dict)
    results = dict(zip(keys, values))
    out_nodes = sorted(set(outputs[k].op.name for k in keys))
    frozen = graph_util.convert_variables_to_constants(
        sess, sess.graph.as_graph_def(), out_nodes)
    relpath = name + ".pb"
    with open(os.path.join(outdir, relpath), "wb") as f:
        f.write(frozen.SerializeToString())
    _write_case(outdir, name, "graph_def", relpath, [], None,
                inputs, outputs, feeds, results)


# --------------------------------------------------------------------------
# models


def linear_relu6_weights():
    """Shared with tf2_models.compat_v1_linear_relu6."""
    w = _normal(101, (3, 2), 1.5)
    b = _normal(102, (2,), 1.0)
    x = _normal(103, (4, 3), 2.0)
    return w, b, x


def build_linear_relu6(outdir):
    """y = relu6(x.W + b); signature "predict"; x [None, 3] float32."""
    w_val, b_val, x_val = linear_relu6_weights()
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        w = tf.get_variable("W", [3, 2], tf.float32,
                            initializer=tf.constant_initializer(w_val))
        b = tf.get_variable("b", [2], tf.float32,
                            initializer=tf.constant_initializer(b_val))
        y = tf.nn.relu6(tf.matmul(x, w) + b, name="y")
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _save_saved_model(sess, outdir, "linear_relu6", "predict",
                              {"x": x}, {"y": y}, {"x": x_val})


def build_while_cond(outdir):
    """tf.layers.dense, then a tf.while_loop whose body holds a tf.cond."""
    x_val = _normal(301, (5, 4), 1.0)
    k_val = _normal(302, (4, 3), 0.8)
    kb_val = _normal(303, (3,), 0.2)
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        h = tf.layers.dense(
            x, 3, activation=tf.nn.tanh, name="dense",
            kernel_initializer=tf.constant_initializer(k_val),
            bias_initializer=tf.constant_initializer(kb_val))

        def cond(i, acc):
            return i < 4

        def body(i, acc):
            s = tf.reduce_sum(acc)
            acc = tf.cond(s > 0.0,
                          lambda: acc * 0.5 + 0.25,
                          lambda: acc * acc - 0.5)
            return i + 1, acc

        n, acc = tf.while_loop(cond, body, [tf.constant(0), h], name="loop")
        y = tf.identity(acc, name="y")
        steps = tf.identity(n, name="steps")
        with tf.Session(graph=g, config=_session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            _save_saved_model(sess, outdir, "while_cond", "serving_default",
                              {"x": x}, {"y": y, "steps": steps}, {"x": x_val})


def _keras_cnn_layers_available():
    layers = tf.keras.layers
    return all(hasattr(layers, n) for n in (
        "Conv2D", "BatchNormalization", "LeakyReLU", "DepthwiseConv2D",
        "MaxPooling2D", "GlobalAveragePooling2D", "Dense"))


def _cnn_keras_weights(model):
    seed = 500
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            # gamma, beta, moving_mean, moving_variance
            shapes = [w.shape for w in weights]
            new.append(1.0 + _normal(seed, shapes[0], 0.2))
            new.append(_normal(seed + 1, shapes[1], 0.2))
            new.append(_normal(seed + 2, shapes[2], 0.3))
            new.append(_uniform(seed + 3, shapes[3], 0.5, 1.5))
        else:
            for i, w in enumerate(weights):
                new.append(_normal(seed + i, w.shape, 0.4))
        seed += 10
        layer.set_weights(new)


def _build_keras_cnn():
    K = tf.keras.backend
    K.set_learning_phase(0)
    L = tf.keras.layers
    model = tf.keras.Sequential([
        L.Conv2D(4, 3, padding="same", use_bias=False, input_shape=(8, 8, 3),
                 name="conv1"),
        L.BatchNormalization(name="bn1"),
        L.LeakyReLU(0.1, name="leaky1"),
        L.DepthwiseConv2D(3, padding="same", name="dw1"),
        L.BatchNormalization(name="bn2"),
        L.LeakyReLU(0.2, name="leaky2"),
        L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(6, 1, activation="relu", name="conv2"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(5, name="dense"),
    ])
    _cnn_keras_weights(model)
    return model


def _keras_cnn(outdir, name, frozen):
    x_val = _normal(401, (2, 8, 8, 3), 1.0)
    g = tf.Graph()
    sess = tf.Session(graph=g, config=_session_config())
    try:
        with g.as_default():
            tf.keras.backend.set_session(sess)
            model = _build_keras_cnn()
            inputs = {"input": model.inputs[0]}
            outputs = {"output": model.outputs[0]}
            if frozen:
                _save_frozen(sess, outdir, name, inputs, outputs,
                             {"input": x_val})
            else:
                _save_saved_model(sess, outdir, name, "serving_default",
                                  inputs, outputs, {"input": x_val})
    finally:
        sess.close()
        # Outside the graph scope: clear_session resets the default graph.
        tf.keras.backend.clear_session()


def build_cnn_keras(outdir):
    """tf.keras Sequential CNN (Conv2D, fused BatchNormalization, LeakyReLU,
    DepthwiseConv2D, pooling, Dense) in inference mode, as a SavedModel."""
    _keras_cnn(outdir, "cnn_keras", frozen=False)


def build_cnn_keras_frozen(outdir):
    """The same network as cnn_keras, frozen into a GraphDef."""
    _keras_cnn(outdir, "cnn_keras_frozen", frozen=True)


# --------------------------------------------------------------------------
# models of what TF 1.15 puts into graph-mode exports (downgrade tests)


def _detection_inputs(seed, n):
    """n boxes [ymin, xmin, ymax, xmax] in the unit square that overlap a
    lot, and distinct scores."""
    rs = np.random.RandomState(seed)
    centers = rs.uniform(0.2, 0.8, (n, 2))
    sizes = rs.uniform(0.1, 0.4, (n, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    scores = rs.permutation(n) / float(n) + rs.uniform(0.0, 0.5 / n, n)
    return boxes.astype(np.float32), scores.astype(np.float32)


def build_detection_nms(outdir):
    """Detection post-processing: tf.image.non_max_suppression with and
    without score_threshold (NonMaxSuppressionV3), the padded variant
    (V4, pad_to_max_output_size) and non_max_suppression_with_scores with
    soft_nms_sigma=0 (V5, hard NMS)."""
    boxes_val, scores_val = _detection_inputs(801, 40)
    with tf.Graph().as_default() as g:
        boxes = tf.placeholder(tf.float32, [None, 4], name="boxes")
        scores = tf.placeholder(tf.float32, [None], name="scores")
        # Sizes and thresholds chosen so that suppression, the score
        # threshold and the padding all change the result.
        nms = tf.image.non_max_suppression(boxes, scores, 20, iou_threshold=0.4)
        nms_thr = tf.image.non_max_suppression(
            boxes, scores, 20, iou_threshold=0.4, score_threshold=0.6)
        padded, valid = tf.image.non_max_suppression_padded(
            boxes, scores, 30, iou_threshold=0.3, score_threshold=0.5,
            pad_to_max_output_size=True)
        ws_idx, ws_scores = tf.image.non_max_suppression_with_scores(
            boxes, scores, 25, iou_threshold=0.35, score_threshold=0.4,
            soft_nms_sigma=0.0)
        outputs = {
            "nms": tf.identity(nms, name="nms"),
            "nms_threshold": tf.identity(nms_thr, name="nms_threshold"),
            "selected_boxes": tf.gather(boxes, nms_thr, name="selected_boxes"),
            "padded": tf.identity(padded, name="padded"),
            "valid": tf.identity(valid, name="valid"),
            "with_scores_indices": tf.identity(ws_idx, name="with_scores_indices"),
            "with_scores_scores": tf.identity(ws_scores, name="with_scores_scores"),
        }
        with tf.Session(graph=g, config=_session_config()) as sess:
            _save_saved_model(sess, outdir, "detection_nms", "serving_default",
                              {"boxes": boxes, "scores": scores}, outputs,
                              {"boxes": boxes_val, "scores": scores_val})


def build_detection_soft_nms(outdir):
    """non_max_suppression_with_scores with soft_nms_sigma=0.5: soft-NMS
    (NonMaxSuppressionV5), which no older NMS op can compute."""
    boxes_val, scores_val = _detection_inputs(802, 30)
    with tf.Graph().as_default() as g:
        boxes = tf.placeholder(tf.float32, [None, 4], name="boxes")
        scores = tf.placeholder(tf.float32, [None], name="scores")
        idx, sc = tf.image.non_max_suppression_with_scores(
            boxes, scores, 10, iou_threshold=0.5, score_threshold=0.1,
            soft_nms_sigma=0.5)
        outputs = {"indices": tf.identity(idx, name="indices"),
                   "scores": tf.identity(sc, name="selected_scores")}
        with tf.Session(graph=g, config=_session_config()) as sess:
            _save_saved_model(sess, outdir, "detection_soft_nms",
                              "serving_default",
                              {"boxes": boxes, "scores": scores}, outputs,
                              {"boxes": boxes_val, "scores": scores_val})


VOCAB = ["<pad>", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]


def build_lookup_table(outdir):
    """String -> id lookups: index_table_from_file over a vocabulary asset
    (HashTableV2 + InitializeTableFromTextFileV2; the file is copied into
    assets/) and a tf.lookup.StaticHashTable from in-graph keys (TF 1.15
    fills it with LookupTableImportV2); tables initialized by main_op."""
    vocab_dir = tempfile.mkdtemp(prefix="tf1_models_vocab_")
    vocab_path = os.path.join(vocab_dir, "vocab.txt")
    with open(vocab_path, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    words_val = np.array([b"the", b"fox", b"cat", b"dog", b"", b"lazy",
                          b"quick", b"unknown"])
    try:
        with tf.Graph().as_default() as g:
            words = tf.placeholder(tf.string, [None], name="words")
            file_table = tf.contrib.lookup.index_table_from_file(
                vocab_path, default_value=-1, name="vocab_table")
            ids = file_table.lookup(words, name="ids")
            kv_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(["fox", "dog", "cat"]),
                    tf.constant([10, 20, 30], tf.int64)),
                default_value=-1, name="kv_table")
            animal = kv_table.lookup(words, name="animal")
            with tf.Session(graph=g, config=_session_config()) as sess:
                sess.run(tf.tables_initializer())
                _save_saved_model(
                    sess, outdir, "lookup_table", "serving_default",
                    {"words": words}, {"ids": ids, "animal": animal},
                    {"words": words_val}, main_op=tf.tables_initializer(),
                    assets_collection=tf.get_collection(
                        tf.GraphKeys.ASSET_FILEPATHS))
    finally:
        shutil.rmtree(vocab_dir, ignore_errors=True)


def _example(x):
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=list(x)))
    proto = tf.train.Example(
        features=tf.train.Features(feature={"x": feature}))
    data = proto.SerializeToString()
    # numpy 'S' arrays (how cases are stored) drop trailing NUL bytes.
    assert not data.endswith(b"\0"), "serialized example ends in NUL"
    return data


def export_estimator(make, input_fn, steps, receiver, outdir, name):
    """Train `make(model_dir)` for `steps`, export it with `receiver` to
    OUTDIR/NAME (replacing what is there); returns the export dir."""
    work = tempfile.mkdtemp(prefix="tf1_models_estimator_")
    try:
        estimator = make(os.path.join(work, "model"))
        estimator.train(input_fn, steps=steps)
        export = (getattr(estimator, "export_saved_model", None) or
                  estimator.export_savedmodel)
        exported = export(os.path.join(work, "export"), receiver)
        if not isinstance(exported, str):
            exported = exported.decode("utf-8")
        export_dir = os.path.join(outdir, name)
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        shutil.copytree(exported, export_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return export_dir


def run_signature(export_dir, signature, feeds):
    """Load a SavedModel and run `signature` on {input key: array}:
    (input names, output names, sorted output keys, output values)."""
    with tf.Graph().as_default() as g:
        with tf.Session(graph=g, config=_session_config()) as sess:
            meta = tf.saved_model.loader.load(sess, [SERVE], export_dir)
            sig = meta.signature_def[signature]
            inputs = dict((k, v.name) for k, v in sig.inputs.items())
            outputs = dict((k, v.name) for k, v in sig.outputs.items())
            keys = sorted(outputs)
            values = sess.run([outputs[k] for k in keys],
                              feed_dict=dict((inputs[k], v)
                                             for k, v in feeds.items()))
    return inputs, outputs, keys, values


def build_estimator_parse(outdir):
    """A canned LinearRegressor trained 2 steps, exported with a tf.Example
    parsing serving_input_receiver_fn; signature serving_default
    (regression: inputs "inputs" serialized Examples -> "outputs")."""
    name = "estimator_parse"
    x_train = _normal(701, (16, 3), 1.0)
    y_train = (x_train.dot(np.array([[1.5], [-2.0], [0.5]], np.float32)) +
               0.25).astype(np.float32)
    x_val = _normal(702, (5, 3), 1.0)
    serialized = np.array([_example(row) for row in x_val])
    columns = [tf.feature_column.numeric_column("x", shape=(3,))]

    def make(model_dir):
        return tf.estimator.LinearRegressor(
            columns, model_dir=model_dir,
            config=tf.estimator.RunConfig(tf_random_seed=7))

    input_fn = tf.compat.v1.estimator.inputs.numpy_input_fn(
        {"x": x_train}, y_train, batch_size=8, num_epochs=None, shuffle=False)
    spec = tf.feature_column.make_parse_example_spec(columns)
    export_dir = export_estimator(
        make, input_fn, 2,
        tf.estimator.export.build_parsing_serving_input_receiver_fn(spec),
        outdir, name)
    signature = "serving_default"
    inputs, outputs, keys, values = run_signature(
        export_dir, signature, {"inputs": serialized})
    _write_case(outdir, name, "saved_model", name, [SERVE], signature,
                inputs, outputs, {"inputs": serialized},
                dict(zip(keys, values)))


def build_resize_half_pixel(outdir):
    """tf.compat.v1.image.resize_bilinear / resize_nearest_neighbor with
    half_pixel_centers=True (the TF 2 sampling grid), up and down."""
    x_val = _uniform(901, (2, 5, 7, 3), 0.0, 10.0)
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 5, 7, 3], name="image")
        outputs = {
            "bilinear_up": tf.identity(tf.image.resize_bilinear(
                x, [8, 11], half_pixel_centers=True), name="bilinear_up"),
            "bilinear_down": tf.identity(tf.image.resize_bilinear(
                x, [3, 4], half_pixel_centers=True), name="bilinear_down"),
            "nearest": tf.identity(tf.image.resize_nearest_neighbor(
                x, [9, 5], half_pixel_centers=True), name="nearest"),
        }
        with tf.Session(graph=g, config=_session_config()) as sess:
            _save_saved_model(sess, outdir, "resize_half_pixel",
                              "serving_default", {"image": x}, outputs,
                              {"image": x_val})


def _always():
    return True


def _tf115():
    return TF_VERSION >= (1, 15, 0)


def _keras_ok():
    return TF_VERSION >= (1, 8, 0) and _keras_cnn_layers_available()


# name -> (builder, available-in-this-release predicate)
MODELS = [
    ("linear_relu6", build_linear_relu6, _always),
    ("while_cond", build_while_cond, _always),
    ("cnn_keras", build_cnn_keras, _keras_ok),
    ("cnn_keras_frozen", build_cnn_keras_frozen, _keras_ok),
    ("detection_nms", build_detection_nms, _tf115),
    ("detection_soft_nms", build_detection_soft_nms, _tf115),
    ("lookup_table", build_lookup_table, _tf115),
    ("estimator_parse", build_estimator_parse, _tf115),
    ("resize_half_pixel", build_resize_half_pixel, _tf115),
]


def available_models():
    return [name for name, _, ok in MODELS if ok()]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: tf1_models.py OUTDIR [NAME ...]\n")
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
    names = wanted or [name for name, _, _ in MODELS]
    built = []
    for name in names:
        fn, ok = known[name]
        if not ok():
            print("skip %s: not available in TF %s" % (name, tf.__version__))
            continue
        t0 = time.time()
        fn(outdir)
        built.append(name)
        print("built %s in %.2f s (TF %s)" % (name, time.time() - t0,
                                               tf.__version__))
    with open(os.path.join(outdir, "built.json"), "w") as f:
        json.dump({"producer": tf.__version__, "built": built}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
