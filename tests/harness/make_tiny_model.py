#!/usr/bin/env python
"""Build a tiny SavedModel and frozen GraphDef with the running TF (1.0 - 2.x).

    make_tiny_model.py OUT_DIR

writes OUT_DIR/saved_model/ (tags "serve", signature "serving_default":
inputs x float32[?,3] and name string[?]; outputs y = relu(x.W + b) float32[?,2]
and msg = "hi " + name) and OUT_DIR/frozen.pb (the same graph with variables
folded; tensors x:0, name:0, y:0, msg:0).  Prints one JSON line.
Runs under Python 2.7 (TF 1.x) and Python 3 (TF 2.x through tf.compat.v1).
"""
from __future__ import absolute_import, division, print_function

import json
import os
import sys

import tensorflow as tf

W = [[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]]
B = [0.1, -0.2]


def main(out_dir):
    v1 = tf.compat.v1 if hasattr(tf, "compat") and hasattr(tf.compat, "v1") else tf
    graph = v1.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        name = v1.placeholder(tf.string, [None], name="name")
        w = v1.Variable(W, dtype=tf.float32, name="W")
        b = v1.Variable(B, dtype=tf.float32, name="b")
        y = tf.nn.relu(tf.matmul(x, w) + b, name="y")
        msg = tf.identity(v1.string_join(["hi ", name]), name="msg")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            utils = v1.saved_model.utils
            sig = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"x": utils.build_tensor_info(x), "name": utils.build_tensor_info(name)},
                outputs={"y": utils.build_tensor_info(y), "msg": utils.build_tensor_info(msg)},
                method_name="tensorflow/serving/predict")
            builder = v1.saved_model.builder.SavedModelBuilder(os.path.join(out_dir, "saved_model"))
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ["y", "msg"])
    with open(os.path.join(out_dir, "frozen.pb"), "wb") as f:
        f.write(frozen.SerializeToString())
    print(json.dumps({"ok": True, "tf_version": tf.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
