"""Run a test model in the host's TensorFlow 2.x through a TF 1-style session.

    run_on_host(case_dir_or_path, case, inputs) -> {output key: ndarray}

``case_dir_or_path`` is the model itself: a SavedModel directory (or its
saved_model.pb / saved_model.pbtxt), a GraphDef file (.pb binary, .pbtxt text)
or, for kind "meta_graph", a .meta file. A directory that is none of those but
holds ``case["path"]`` (a producer's OUTDIR) works too.

``case`` is a producer's case dict (name, kind, path, tags, signature, inputs,
outputs) or a model_zoo.Case. ``inputs`` maps input keys to arrays.

- SavedModel: tf.compat.v1.Session + tf.compat.v1.saved_model.loader.load, then
  feeds and fetches through the loaded meta graph's signature_def. This works
  for v1 (builder) and v2 (tf.saved_model.save) SavedModels alike.
- GraphDef: import_graph_def(name="") in a fresh graph; the case's inputs and
  outputs give the tensor names for each key.
- meta_graph: import_meta_graph, then restore case["checkpoint"] (a checkpoint
  prefix, relative to the .meta file's directory) when given.

Everything runs in its own tf.Graph, so eager mode stays on for the caller.
"""
import os
import subprocess
import sys

import numpy as np

_GRAPHDEF_TEXT_SUFFIXES = (".pbtxt", ".pbtx", ".txt")


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _get(case, key, default=None):
    if isinstance(case, dict):
        return case.get(key, default)
    return getattr(case, key, default)


def _names(case, which):
    """{key: tensor name} for "inputs"/"outputs" from a dict or a Case."""
    if isinstance(case, dict):
        return dict(case.get(which) or {})
    return dict(getattr(case, "input_names" if which == "inputs"
                        else "output_names") or {})


def _session_config(tf):
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1,
                                    inter_op_parallelism_threads=1)


def resolve_model_path(case_dir_or_path, case):
    """Returns (kind, path) of the model to load."""
    path = os.path.abspath(str(case_dir_or_path))
    kind = _get(case, "kind") or None
    if os.path.isdir(path):
        if _is_saved_model_dir(path):
            return "saved_model", path
        rel = _get(case, "path")
        if rel:
            inner = os.path.join(path, rel)
            if os.path.exists(inner) and os.path.abspath(inner) != path:
                return resolve_model_path(inner, case)
        raise FileNotFoundError("no model found in directory %s" % path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    base = os.path.basename(path)
    if base in ("saved_model.pb", "saved_model.pbtxt"):
        return "saved_model", os.path.dirname(path)
    if base.endswith(".meta"):
        return "meta_graph", path
    if kind == "saved_model":
        raise ValueError("%s is a file, but the case says saved_model" % path)
    return kind or "graph_def", path


def _is_saved_model_dir(path):
    return any(os.path.isfile(os.path.join(path, f))
               for f in ("saved_model.pb", "saved_model.pbtxt"))


def read_graph_def(path):
    tf = _tf()
    from google.protobuf import text_format

    gd = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(_GRAPHDEF_TEXT_SUFFIXES):
        text_format.Parse(data.decode("utf-8"), gd)
    else:
        gd.ParseFromString(data)
    return gd


def _run(sess, feeds, fetches):
    """feeds: {tensor name: array}; fetches: {key: tensor name}."""
    keys = sorted(fetches)
    values = sess.run([fetches[k] for k in keys], feed_dict=feeds)
    return {k: np.asarray(v) for k, v in zip(keys, values)}


def _feeds(names, inputs, what):
    missing = sorted(set(inputs) - set(names))
    if missing:
        raise KeyError("%s has no input(s) %s (known: %s)"
                       % (what, missing, sorted(names)))
    return {names[k]: v for k, v in inputs.items()}


def run_on_host(case_dir_or_path, case, inputs, config=None):
    tf = _tf()
    v1 = tf.compat.v1
    kind, path = resolve_model_path(case_dir_or_path, case)
    config = config or _session_config(tf)
    with tf.Graph().as_default() as graph:
        with v1.Session(graph=graph, config=config) as sess:
            if kind == "saved_model":
                tags = list(_get(case, "tags") or ["serve"])
                meta = v1.saved_model.loader.load(sess, tags, path)
                sig_key = _get(case, "signature") or "serving_default"
                if sig_key not in meta.signature_def:
                    raise KeyError("signature %r not in %s (has %s)" % (
                        sig_key, path, sorted(meta.signature_def)))
                sig = meta.signature_def[sig_key]
                in_names = {k: t.name for k, t in sig.inputs.items()}
                out_names = {k: t.name for k, t in sig.outputs.items()}
                wanted = _names(case, "outputs")
                if wanted:
                    out_names = {k: out_names[k] for k in wanted}
                return _run(sess, _feeds(in_names, inputs, path), out_names)
            if kind == "meta_graph":
                saver = v1.train.import_meta_graph(path, clear_devices=True)
                ckpt = _get(case, "checkpoint")
                if ckpt:
                    ckpt = os.path.join(os.path.dirname(path), ckpt)
                    saver.restore(sess, ckpt)
            elif kind == "graph_def":
                tf.graph_util.import_graph_def(read_graph_def(path), name="")
            else:
                raise ValueError("unknown model kind %r" % kind)
            in_names = _names(case, "inputs")
            out_names = _names(case, "outputs")
            if not out_names:
                raise ValueError("case for %s names no outputs" % path)
            return _run(sess, _feeds(in_names, inputs, path), out_names)


def build_with_host_tf(script: str, out) -> None:
    """Run `script` (Python source that writes a model to sys.argv[1]) in a fresh host-TF process:
    a model built apart from the test process keeps that process free of TF's global state."""
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
