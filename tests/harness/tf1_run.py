#!/usr/bin/env python
"""Small loader: run a SavedModel signature or a frozen GraphDef in one TF release.

Runs under Python 2.7 with TF 1.0 - 2.1 (inside transpiler/runtimes/provision.py roots)
and under Python 3 with any TF 2.x, through the TF 1 API (Graph + Session).

    tf1_run.py --saved-model DIR [--tags serve] [--signature serving_default]
               --inputs in.npz --outputs out.npz
    tf1_run.py --graph-def FILE.pb [--feed name:0=key ...] [--fetch name:0[=key] ...]
               [--inputs in.npz] --outputs out.npz

SavedModel mode feeds every array of in.npz to the signature input of the same
key (all signature inputs must be given, no extra keys) and writes every
signature output to out.npz under its output key.  GraphDef mode (binary .pb,
or text when the file ends in .pbtxt/.txt) imports the graph with name "" and
feeds/fetches tensors by name; a fetch's key in out.npz is the text after "="
or else the tensor name.

The last line on stdout is one JSON object:
    {"ok": true, "tf_version": ..., "outputs": {key: [dtype, shape]}}   exit 0
    {"error": "...", "type": "...", "stage": "load"|"run"}             exit 3
Bad arguments or unreadable npz files give {"error": ..., "type": "UsageError"}
and exit 2.  String tensors are written as numpy bytes ('S') arrays; inputs
are read with allow_pickle=False.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import sys
import traceback


def _text(x):
    """A printable text form of anything (Python 2 unicode/bytes safe)."""
    try:
        if isinstance(x, bytes):
            return x.decode("utf-8", "replace")
        if sys.version_info[0] < 3 and isinstance(x, unicode):  # noqa: F821
            return x
        return str(x)
    except Exception:  # pragma: no cover
        try:
            return repr(x)
        except Exception:
            return "<unprintable %s>" % type(x).__name__


def _emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _fail(code, err_type, message, stage=None, tb=None):
    obj = {"error": _text(message), "type": _text(err_type)}
    if stage:
        obj["stage"] = stage
    if tb:
        sys.stderr.write(tb)
    _emit(obj)
    sys.exit(code)


def _exc_message(e):
    # KeyError(u'FusedBatchNormV3') reads "KeyError: u'FusedBatchNormV3'" as users see it.
    if isinstance(e, KeyError) and len(e.args) == 1:
        msg = repr(e.args[0])
    else:
        msg = _text(e)
    return "%s: %s" % (type(e).__name__, msg)


class UsageError(Exception):
    pass


def _load_npz(path, np):
    if not path:
        return {}
    try:
        try:
            f = np.load(path, allow_pickle=False)
        except TypeError:               # numpy < 1.10 has no allow_pickle
            f = np.load(path)
        try:
            return dict((k, f[k]) for k in f.files)
        finally:
            f.close()
    except Exception as e:
        raise UsageError("cannot read %s: %s" % (path, _exc_message(e)))


def _to_savable(value, np):
    a = np.asarray(value)
    if a.dtype == object:
        flat = [v if isinstance(v, bytes) else _text(v).encode("utf-8") for v in a.ravel()]
        if flat:
            a = np.array(flat, dtype=bytes).reshape(a.shape)
        else:
            a = np.zeros(a.shape, dtype="S1")
    elif a.dtype.kind == "U":
        a = np.char.encode(a, "utf-8")
    return a


def _write_npz(path, results, np):
    arrays = dict((k, _to_savable(v, np)) for k, v in results.items())
    np.savez(path, **arrays)
    return dict((k, [str(a.dtype), list(a.shape)]) for k, a in arrays.items())


def _tf_v1(tf):
    compat = getattr(tf, "compat", None)
    v1 = getattr(compat, "v1", None) if compat is not None else None
    return v1 if v1 is not None else tf


def _names(keys):
    return ", ".join(_text(k) for k in sorted(keys))


def _tensor_name(name):
    return name if ":" in name else name + ":0"


def run_saved_model(tf, np, a):
    v1 = _tf_v1(tf)
    feeds_np = _load_npz(a.inputs, np)
    tags = [t for t in a.tags.split(",") if t] if a.tags else []
    graph = v1.Graph()
    with graph.as_default():
        sess = v1.Session(graph=graph)
        try:
            try:
                meta = v1.saved_model.loader.load(sess, tags, a.saved_model)
            except Exception as e:
                _fail(3, type(e).__name__, _exc_message(e), "load", traceback.format_exc())
            if a.signature not in meta.signature_def:
                _fail(3, "KeyError", "signature '%s' not in SavedModel (has: %s)"
                      % (a.signature, _names(meta.signature_def) or "none"),
                      "load")
            sig = meta.signature_def[a.signature]
            missing = sorted(set(sig.inputs) - set(feeds_np))
            extra = sorted(set(feeds_np) - set(sig.inputs))
            if missing or extra:
                raise UsageError("signature %s inputs are [%s]; missing [%s], unknown [%s]"
                                 % (a.signature, _names(sig.inputs), _names(missing),
                                    _names(extra)))
            feed = {}
            for key, info in sig.inputs.items():
                if not info.name:
                    raise UsageError("input %r is not a dense tensor" % key)
                feed[info.name] = feeds_np[key]
            fetch = {}
            for key, info in sig.outputs.items():
                if not info.name:
                    _fail(3, "ValueError", "output %r is not a dense tensor" % key, "run")
                fetch[key] = info.name
            try:
                results = sess.run(fetch, feed_dict=feed) if fetch else {}
            except Exception as e:
                _fail(3, type(e).__name__, _exc_message(e), "run", traceback.format_exc())
        finally:
            sess.close()
    return results


def _parse_graph_def(tf, path):
    v1 = _tf_v1(tf)
    gd = v1.GraphDef()
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".pbtxt") or path.endswith(".txt"):
        from google.protobuf import text_format
        text_format.Merge(data.decode("utf-8"), gd)
    else:
        gd.ParseFromString(data)
    return gd


def run_graph_def(tf, np, a):
    v1 = _tf_v1(tf)
    arrays = _load_npz(a.inputs, np)
    feeds = []
    for spec in a.feed or []:
        name, sep, key = spec.partition("=")
        if not sep:
            key = name
        if key not in arrays:
            raise UsageError("--feed %s: no array %r in %s" % (spec, key, a.inputs))
        feeds.append((_tensor_name(name), arrays[key]))
    fetches = []
    for spec in a.fetch or []:
        name, sep, key = spec.partition("=")
        fetches.append((key if sep else name, _tensor_name(name)))
    graph = v1.Graph()
    with graph.as_default():
        try:
            gd = _parse_graph_def(tf, a.graph_def)
            v1.import_graph_def(gd, name="")
            feed = dict((graph.get_tensor_by_name(n), v) for n, v in feeds)
            fetch = dict((k, graph.get_tensor_by_name(n)) for k, n in fetches)
        except Exception as e:
            _fail(3, type(e).__name__, _exc_message(e), "load", traceback.format_exc())
        sess = v1.Session(graph=graph)
        try:
            results = sess.run(fetch, feed_dict=feed) if fetch else {}
        except Exception as e:
            _fail(3, type(e).__name__, _exc_message(e), "run", traceback.format_exc())
        finally:
            sess.close()
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run a SavedModel signature or GraphDef in this TF.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--saved-model", metavar="DIR")
    src.add_argument("--graph-def", metavar="FILE")
    ap.add_argument("--tags", default="serve", help="comma-separated MetaGraph tags")
    ap.add_argument("--signature", default="serving_default")
    ap.add_argument("--inputs", metavar="NPZ")
    ap.add_argument("--outputs", metavar="NPZ", required=True)
    ap.add_argument("--feed", action="append", metavar="NAME[:0]=KEY")
    ap.add_argument("--fetch", action="append", metavar="NAME[:0][=KEY]")
    a = ap.parse_args(argv)

    try:
        import numpy as np
        import tensorflow as tf
    except Exception as e:
        _fail(3, type(e).__name__, _exc_message(e), "import", traceback.format_exc())
    version = getattr(tf, "__version__", None) or getattr(tf.version, "VERSION", "?")
    try:
        if a.saved_model:
            results = run_saved_model(tf, np, a)
        else:
            results = run_graph_def(tf, np, a)
        info = _write_npz(a.outputs, results, np)
    except UsageError as e:
        _fail(2, "UsageError", _text(e))
    _emit({"ok": True, "tf_version": version, "outputs": info})
    return 0


if __name__ == "__main__":
    sys.exit(main())
