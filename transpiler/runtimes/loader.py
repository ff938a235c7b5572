#!/usr/bin/env python
"""The loader: run a SavedModel signature or a frozen GraphDef in one TF release.

A standalone script, run by transpiler/runtimes/runner.py with the target's
interpreter: it imports nothing of tf-transpile, only numpy and TensorFlow, and
runs under Python 2.7 with TF 1.0 - 2.1 (inside transpiler/runtimes/provision.py
roots) and under Python 3 with any TF 2.x, through the TF 1 API (Graph +
Session), or with "api": "tf2" in a plan through tf.saved_model.load.

    loader.py --saved-model DIR [--tags serve] [--signature serving_default]
              --inputs in.npz --outputs out.npz
    loader.py --graph-def FILE.pb [--feed name:0=key ...] [--fetch name:0[=key] ...]
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

Plan mode runs several steps against one loaded model in one session, in
order (so stateful sequences such as a counter's signatures reproduce):

    loader.py --plan plan.json --inputs in.npz --outputs out.npz

plan.json:
    {"kind": "saved_model" | "meta_graph" | "graph_def",
     "path": MODEL,                 # SavedModel dir, .meta file or GraphDef file
     "tags": ["serve"],             # saved_model: the tag set to load
     "checkpoint": PREFIX | null,   # meta_graph: restored after import
     "encoding": "binary" | "text" | null,   # meta_graph/graph_def (null: guess)
     "saver_filename": "ckpt",      # fed to the Saver's filename tensor
                                    # (saver_def, else save/Const:0) in
                                    # feed/fetch steps, so a fetched save op
                                    # writes there (relative: in the cwd)
     "seed_random_ops": true,       # meta_graph/graph_def: give unseeded random
                                    # ops (seed == seed2 == 0) fixed seeds from
                                    # their node names, so two loads agree
     "api": "tf1" | "tf2",          # saved_model: "tf2" loads with
                                    # tf.saved_model.load and calls
                                    # .signatures[KEY] (signature and keras
                                    # steps only)
     "variables": NPZ,              # tf2: write the trainable variables there
     "steps": [
        {"id": "s0", "signature": KEY, "inputs": {input key: npz key}},
        {"id": "s1", "feeds": {tensor name: npz key}, "fetch": NAME},
        {"id": "s2", "feeds": {...}, "fetches": {output key: NAME}},
        {"id": "s3", "keras": KEY, "inputs": {...}}]}   # tf2 only

A keras step feeds signature KEY's inputs to the model as Keras loads it:
keras.layers.TFSMLayer(DIR, call_endpoint=KEY) under Keras 3, else
tf.keras.models.load_model(DIR) called as a model (or, when the signature's
inputs are not the model's, its signature KEY); its entry has a "mode" saying
which, and a Keras load failure is stage "keras-load".  With "variables", the
result has "variables": [{"path" (object-graph path), "name", "dtype",
"shape", "sha256" (of the value's bytes), "key" (in NPZ), "raw" (stored as
uint8 bytes)}] for every trainable variable reachable from the loaded object
(or "variables_error": why they could not be read).

An input array may also come as KEY~u8 (uint8, every item's bytes
concatenated) and KEY~len (int64, each item's length, in the array's shape):
it is fed as an array of byte strings, trailing NUL bytes kept.

A signature step feeds the signature's inputs and fetches all its outputs
(an output naming an operation, such as __saved_model_init_op's NoOp, is run
as a target).  A feed/fetch step works in every kind (a SavedModel's graph
too): NAME is a tensor ("x:0"), or an operation, whose first output is
fetched or which, without outputs, is run as a target; "fetches" fetches
several in one run, under their keys.  Without a checkpoint,
a meta graph's global and local variables are initialized; with one, those
still uninitialized after the restore; then tables and the serving_init_op / legacy_init_op
collections.  A GraphDef with variables runs its "init" node, or else every
"<variable>/Assign" node.  A load (or init) failure exits 3 as above
(stage "load" / "init"); a failing step does not stop the others.  The last
stdout line is then
    {"ok": true, "tf_version": ..., "signatures": [keys] | null,
     "steps": {id: {"ok": true, "outputs": {key: [npz key, dtype, shape]}}
                 | {"ok": false, "error": ..., "type": ..., "stage": "feed"|"run"}}}
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
            results = _run_or_fail(sess, fetch, feed)
        finally:
            sess.close()
    return results


def _run_or_fail(sess, fetch, feed):
    """sess.run, or the loader's "run" failure (exit 3)."""
    try:
        return sess.run(fetch, feed_dict=feed) if fetch else {}
    except Exception as e:
        _fail(3, type(e).__name__, _exc_message(e), "run", traceback.format_exc())


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
            gd = _read_proto(v1.GraphDef(), a.graph_def, None)
            v1.import_graph_def(gd, name="")
            feed = dict((graph.get_tensor_by_name(n), v) for n, v in feeds)
            fetch = dict((k, graph.get_tensor_by_name(n)) for k, n in fetches)
        except Exception as e:
            _fail(3, type(e).__name__, _exc_message(e), "load", traceback.format_exc())
        sess = v1.Session(graph=graph)
        try:
            results = _run_or_fail(sess, fetch, feed)
        finally:
            sess.close()
    return results


# ---------------------------------------------------------------------------
# plan mode

_VARIABLE_OPS = ("Variable", "VariableV2", "VarHandleOp", "AutoReloadVariable")


def _read_proto(msg, path, encoding):
    from google.protobuf import text_format
    with open(path, "rb") as f:
        data = f.read()
    if encoding is None:
        encoding = "text" if path.endswith((".pbtxt", ".pbtx", ".txt")) else "binary"
        if encoding == "binary":
            try:
                msg.ParseFromString(data)
                return msg
            except Exception:
                msg.Clear()
                encoding = "text"
    if encoding == "text":
        text_format.Merge(data.decode("utf-8"), msg)
    else:
        msg.ParseFromString(data)
    return msg


def _seed_random_ops(graph_def):
    """seed/seed2 of ops with both 0 (random on every run) set from the node name."""
    import zlib

    def fix(node):
        if "seed" in node.attr and "seed2" in node.attr:
            if node.attr["seed"].i == 0 and node.attr["seed2"].i == 0:
                node.attr["seed"].i = 87654321
                node.attr["seed2"].i = zlib.crc32(node.name.encode("utf-8")) & 0x7fffffff

    for node in graph_def.node:
        fix(node)
    for fn in graph_def.library.function:
        for node in fn.node_def:
            fix(node)


def _unpack_bytes(arrays, np):
    """Arrays sent as KEY~u8 (all bytes, concatenated) + KEY~len (each length,
    in the array's shape) become object arrays of bytes: an 'S' array would
    drop trailing NUL bytes (a serialized tf.Example ending in 0.0f does)."""
    out = dict((k, v) for k, v in arrays.items() if not k.endswith(("~u8", "~len")))
    for k in arrays:
        if k.endswith("~len"):
            key = k[:-len("~len")]
            lens = arrays[k]
            data = arrays[key + "~u8"].tobytes()
            items, pos = [], 0
            for n in lens.ravel().tolist():
                items.append(data[pos:pos + int(n)])
                pos += int(n)
            a = np.empty(len(items), dtype=object)
            for i, b in enumerate(items):
                a[i] = b
            out[key] = a.reshape(lens.shape)
    return out


def _saver_filename(graph, saver_def):
    """The tensor a Saver's save/restore ops read their path from, if any."""
    names = []
    if saver_def is not None and saver_def.filename_tensor_name:
        names.append(saver_def.filename_tensor_name)
    names.append("save/Const:0")
    for n in names:
        try:
            t = graph.get_tensor_by_name(n)
        except (KeyError, ValueError):
            continue
        if t.dtype.base_dtype.name == "string":
            return t
    return None


def _collection_ops(graph, key):
    out = []
    for item in graph.get_collection(key):
        op = getattr(item, "op", item)
        if hasattr(op, "type") and hasattr(op, "name"):
            out.append(op)
    return out


def _plan_load(tf, v1, sess, graph, plan):
    """Loads the model into graph/sess; returns {signature key: SignatureDef} or None."""
    kind = plan.get("kind")
    path = plan["path"]
    if kind == "saved_model":
        meta = v1.saved_model.loader.load(sess, list(plan.get("tags") or []), path)
        graph._tf1_run_saver_def = meta.saver_def if meta.HasField("saver_def") else None
        return dict(meta.signature_def)
    if kind == "meta_graph":
        try:
            from tensorflow.core.protobuf import meta_graph_pb2
        except ImportError:  # pragma: no cover
            meta_graph_pb2 = None
        meta = _read_proto(meta_graph_pb2.MetaGraphDef(), path, plan.get("encoding"))
        if plan.get("seed_random_ops"):
            _seed_random_ops(meta.graph_def)
        saver = v1.train.import_meta_graph(meta)
        ckpt = plan.get("checkpoint")
        return meta, saver, ckpt
    if kind == "graph_def":
        gd = _read_proto(v1.GraphDef(), path, plan.get("encoding"))
        if plan.get("seed_random_ops"):
            _seed_random_ops(gd)
        v1.import_graph_def(gd, name="")
        return gd
    raise UsageError("plan kind must be saved_model, meta_graph or graph_def, not %r" % kind)


def _plan_init(tf, v1, sess, graph, plan, loaded):
    kind = plan.get("kind")
    if kind == "meta_graph":
        meta, saver, ckpt = loaded
        items = list(v1.global_variables()) + list(v1.local_variables())
        all_vars = [v for v in items if hasattr(v, "initializer")]
        # an old meta graph may list a variable as its ref tensor: "<op>/Assign" inits it
        ref_inits = []
        for t in items:
            if not hasattr(t, "initializer") and hasattr(t, "op"):
                try:
                    ref_inits.append((t, graph.get_operation_by_name(t.op.name + "/Assign")))
                except (KeyError, ValueError):
                    pass
        if ckpt:
            if saver is None:
                saver = v1.train.Saver()
            saver.restore(sess, ckpt)
            # variables the saver does not cover (a global_step outside it, locals)
            names = set()
            if all_vars:
                names = set(_text(n) for n in
                            sess.run(v1.report_uninitialized_variables(all_vars)))
            init_vars = [v for v in all_vars if v.op.name in names]
            ref_inits = [(t, op) for t, op in ref_inits
                         if not sess.run(v1.is_variable_initialized(t))]
        else:
            init_vars = all_vars
        targets = [op for _, op in ref_inits]
        if init_vars:
            targets.append(v1.variables_initializer(init_vars))
        if graph.get_collection(v1.GraphKeys.TABLE_INITIALIZERS):
            targets.append(v1.tables_initializer())
        for key in ("serving_init_op", "legacy_init_op"):
            targets += _collection_ops(graph, key)
        if targets:
            sess.run(targets)
        graph._tf1_run_saver_def = meta.saver_def if meta.HasField("saver_def") else None
        return dict(meta.signature_def)
    if kind == "graph_def":
        gd = loaded
        nodes = dict((n.name, n) for n in gd.node)
        if any(n.op in _VARIABLE_OPS for n in gd.node):
            if "init" in nodes and nodes["init"].op == "NoOp":
                targets = ["init"]
            else:
                targets = [n.name for n in gd.node
                           if n.op in ("Assign", "AssignVariableOp") and n.input
                           and n.name == n.input[0] + "/Assign"
                           and n.input[0] in nodes
                           and nodes[n.input[0]].op in _VARIABLE_OPS]
            if targets:
                sess.run([graph.get_operation_by_name(t) for t in targets])
        return None
    return loaded


def _plan_step(v1, sess, graph, sigs, step, arrays):
    """Runs one step; returns ({key: array}, info) or raises _StepError."""
    if "signature" in step:
        key = step["signature"]
        if sigs is None or key not in sigs:
            raise _StepError("load", "KeyError", "signature '%s' not in the model (has: %s)"
                             % (key, _names(sigs or {}) or "none"))
        sig = sigs[key]
        given = step.get("inputs") or {}
        missing = sorted(set(sig.inputs) - set(given))
        extra = sorted(set(given) - set(sig.inputs))
        if missing or extra:
            raise _StepError("feed", "UsageError",
                             "signature %s inputs are [%s]; missing [%s], unknown [%s]"
                             % (key, _names(sig.inputs), _names(missing), _names(extra)))
        feeds = []
        for k, info in sig.inputs.items():
            if not info.name:
                raise _StepError("feed", "UsageError", "input %r is not a dense tensor" % k)
            feeds.append((info.name, given[k]))
        fetches = [(k, info.name) for k, info in sorted(sig.outputs.items())]
    else:
        feeds = sorted((step.get("feeds") or {}).items())
        if "fetches" in step:
            fetches = sorted(step["fetches"].items())
        else:
            fetches = [(step["fetch"], step["fetch"])]
    feed = {}
    if "signature" not in step and arrays.get("__saver_filename__") is not None:
        # a fetched save op writes a checkpoint: to a relative path in the cwd
        t = _saver_filename(graph, getattr(graph, "_tf1_run_saver_def", None))
        if t is not None:
            feed[t] = arrays["__saver_filename__"]
    try:
        for name, npz_key in feeds:
            if npz_key not in arrays:
                raise UsageError("no array %r in the inputs" % npz_key)
            feed[graph.get_tensor_by_name(_tensor_name(name))] = arrays[npz_key]
        fetch, targets = {}, []
        for k, name in fetches:
            if not name:
                raise ValueError("output %r is not a dense tensor" % k)
            if ":" in name:
                fetch[k] = graph.get_tensor_by_name(name)
            else:
                op = graph.get_operation_by_name(name)
                if op.outputs:
                    fetch[k] = op.outputs[0]
                else:
                    targets.append(op)
    except UsageError:
        raise
    except Exception as e:
        raise _StepError("feed", type(e).__name__, _exc_message(e))
    try:
        if fetch:
            got = sess.run([fetch, targets], feed_dict=feed)[0]
        else:
            got = {}
            if targets:
                sess.run(targets, feed_dict=feed)
    except Exception as e:
        raise _StepError("run", type(e).__name__, _exc_message(e))
    return got


class _StepError(Exception):
    def __init__(self, stage, err_type, message):
        Exception.__init__(self, message)
        self.stage = stage
        self.err_type = err_type
        self.message = message


def run_plan(tf, np, a):
    """Returns (arrays to write, extra JSON fields)."""
    v1 = _tf_v1(tf)
    try:
        with open(a.plan) as f:
            plan = json.load(f)
    except Exception as e:
        raise UsageError("cannot read plan %s: %s" % (a.plan, _exc_message(e)))
    arrays = _unpack_bytes(_load_npz(a.inputs, np), np)
    if plan.get("saver_filename"):
        arrays["__saver_filename__"] = np.array(plan["saver_filename"].encode("utf-8"), dtype=object)
    if plan.get("api") == "tf2":
        return _run_plan_tf2(tf, plan, arrays)
    results, steps = {}, {}
    graph = v1.Graph()
    with graph.as_default():
        # a step blocked on a queue fails after a minute instead of hanging
        config = v1.ConfigProto(operation_timeout_in_ms=int(plan.get("op_timeout_ms", 60000)))
        sess = v1.Session(graph=graph, config=config)
        try:
            try:
                loaded = _plan_load(tf, v1, sess, graph, plan)
            except UsageError:
                raise
            except Exception as e:
                _fail(3, type(e).__name__, _exc_message(e), "load", traceback.format_exc())
            try:
                sigs = _plan_init(tf, v1, sess, graph, plan, loaded)
            except Exception as e:
                _fail(3, type(e).__name__, _exc_message(e), "init", traceback.format_exc())
            for n, step in enumerate(plan.get("steps") or []):
                sid = _text(step.get("id", "s%d" % n))
                try:
                    got = _plan_step(v1, sess, graph, sigs, step, arrays)
                except _StepError as e:
                    steps[sid] = {"ok": False, "error": _text(e.message),
                                  "type": _text(e.err_type), "stage": e.stage}
                    continue
                except UsageError as e:
                    steps[sid] = {"ok": False, "error": _text(e), "type": "UsageError",
                                  "stage": "feed"}
                    continue
                outs = {}
                for i, (k, v) in enumerate(sorted(got.items())):
                    npz_key = "%s.%d" % (sid, i)
                    results[npz_key] = v
                    outs[_text(k)] = npz_key
                steps[sid] = {"ok": True, "outputs": outs}
        finally:
            sess.close()
    extra = {"steps": steps,
             "signatures": sorted(_text(k) for k in sigs) if sigs is not None else None}
    return results, extra


def _run_plan_tf2(tf, plan, arrays):
    """A SavedModel loaded as TF 2 users load it: tf.saved_model.load, then
    each step calls .signatures[KEY] with the step's inputs as tensors (a
    "keras" step loads it the Keras way instead, see _keras_step). With
    "variables": NPZ, the trainable variables are written there too."""
    if plan.get("kind") != "saved_model":
        raise UsageError('"api": "tf2" needs "kind": "saved_model"')
    try:
        obj = tf.saved_model.load(plan["path"], tags=list(plan.get("tags") or []) or None)
        sigs = dict(obj.signatures)
    except Exception as e:
        _fail(3, type(e).__name__, _exc_message(e), "load", traceback.format_exc())
    results, steps, keras_state = {}, {}, {}
    for n, step in enumerate(plan.get("steps") or []):
        sid = _text(step.get("id", "s%d" % n))
        try:
            given = dict((k, tf.constant(arrays[v])) for k, v in (step.get("inputs") or {}).items())
        except Exception as e:
            steps[sid] = {"ok": False, "error": _exc_message(e), "type": type(e).__name__,
                          "stage": "feed"}
            continue
        key = step.get("keras") or step.get("signature")
        if key not in sigs:
            steps[sid] = {"ok": False, "type": "KeyError", "stage": "load",
                          "error": "signature '%s' not in the model (has: %s)"
                          % (key, _names(sigs) or "none")}
            continue
        mode = None
        try:
            if "keras" in step:
                got, mode = _keras_step(tf, plan["path"], keras_state, key, sigs[key], given)
            else:
                got = sigs[key](**given)
        except _StepError as e:
            steps[sid] = {"ok": False, "error": _text(e.message), "type": _text(e.err_type),
                          "stage": e.stage}
            continue
        except Exception as e:
            steps[sid] = {"ok": False, "error": _exc_message(e), "type": type(e).__name__,
                          "stage": "run"}
            continue
        if not isinstance(got, dict):
            steps[sid] = {"ok": False, "type": "TypeError", "stage": "run",
                          "error": "the call gave a %s, not {output key: tensor}" % type(got).__name__}
            continue
        outs = {}
        for i, (k, v) in enumerate(sorted(got.items())):
            npz_key = "%s.%d" % (sid, i)
            results[npz_key] = v.numpy()
            outs[_text(k)] = npz_key
        steps[sid] = {"ok": True, "outputs": outs}
        if mode:
            steps[sid]["mode"] = mode
    extra = {"steps": steps, "signatures": sorted(_text(k) for k in sigs)}
    if plan.get("variables"):
        try:
            extra["variables"] = _write_variables(tf, obj, plan["variables"])
        except Exception as e:   # the steps' results still count
            extra["variables_error"] = _exc_message(e)
    return results, extra


# ---------------------------------------------------------------------------
# trainable variables of a tf.saved_model.load object

def _trackable_children(obj):
    """[(name, child)] of a trackable, by name: _trackable_children() (TF >= 2.6), else
    _checkpoint_dependencies (older)."""
    fn = getattr(obj, "_trackable_children", None)
    if fn is not None:
        try:
            return sorted(fn().items(), key=lambda kv: kv[0])
        except Exception:
            pass
    deps = getattr(obj, "_checkpoint_dependencies", None) or []
    return sorted(((d.name, d.ref) for d in deps), key=lambda kv: kv[0])


def _trainable_variables(tf, root):
    """[(object path, variable)]: root.trainable_variables where the saved object has that list
    (Keras, a Keras 3 export, an upgrade's output), else every trainable tf.Variable reachable
    from root (a loaded tf.Module has no such list), each under its shortest object-graph path
    (ties: by name); the order is deterministic."""
    listed = getattr(root, "trainable_variables", None)
    if isinstance(listed, (list, tuple)) or type(listed).__name__ == "ListWrapper":
        return [("trainable_variables.%d" % i, v) for i, v in enumerate(listed)]
    seen, found, queue = set([id(root)]), [], [("", root)]
    while queue:
        path, obj = queue.pop(0)
        for name, child in _trackable_children(obj):
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_path = name if not path else path + "." + name
            if isinstance(child, tf.Variable):
                if child.trainable:
                    found.append((child_path, child))
            else:
                queue.append((child_path, child))
    return found


def _write_variables(tf, obj, npz_path):
    """Writes each trainable variable's value to npz_path (key "v<i>"; a dtype numpy cannot
    store without pickle as its raw bytes, uint8) and returns
    [{"path", "name", "dtype", "shape", "sha256", "key", "raw"}]."""
    import hashlib

    import numpy as np
    info, arrays = [], {}
    for i, (path, var) in enumerate(_trainable_variables(tf, obj)):
        value = np.ascontiguousarray(var.numpy())
        raw = value.dtype.kind not in "biufc"
        data = value.tobytes()
        key = "v%d" % i
        arrays[key] = np.frombuffer(data, dtype=np.uint8) if raw else value
        info.append({"path": path, "name": _text(var.name), "dtype": var.dtype.name,
                     "shape": [int(d) for d in value.shape], "key": key, "raw": raw,
                     "sha256": hashlib.sha256(data).hexdigest()})
    np.savez(npz_path, **arrays)
    return info


# ---------------------------------------------------------------------------
# the Keras way: tf.keras.models.load_model (Keras 2), keras.layers.TFSMLayer (Keras 3)

def _keras_major(tf):
    try:
        import keras
        return int(_text(keras.__version__).split(".")[0])
    except Exception:
        return int(_text(getattr(tf.keras, "__version__", "2")).split(".")[0])


def _keras_step(tf, path, state, key, sig_fn, given):
    """({output key: tensor}, mode): signature `key`'s inputs through the model as Keras
    loads it. Keras 3 (TF >= 2.16): keras.layers.TFSMLayer(path, call_endpoint=key), called
    with the input (by keyword when there are several: TFSMLayer.__call__ takes one).
    Keras 2: tf.keras.models.load_model(path, compile=False), called as a Keras model when
    the signature's inputs are the model's inputs, else its signature of that key. A load
    failure is stage "keras-load"."""
    if "major" not in state:
        state["major"] = _keras_major(tf)
    keys = sorted(_text(k) for k in sig_fn.structured_outputs)
    if state["major"] >= 3:
        out, mode = _tfsm_layer_call(state, path, key, given)
        return _keras_outputs(None, out, keys), mode
    if "model" not in state:
        try:
            state["model"] = tf.keras.models.load_model(path, compile=False)
        except Exception as e:
            state["model"] = e
    model = state["model"]
    if isinstance(model, Exception):
        raise _StepError("keras-load", type(model).__name__,
                         "tf.keras.models.load_model: " + _exc_message(model))
    if not isinstance(model, tf.keras.Model):
        raise _StepError("keras-load", "TypeError", "tf.keras.models.load_model gave a %s, not a "
                         "Keras model (no Keras metadata?)" % type(model).__name__)
    names = [_text(n) for n in (getattr(model, "input_names", None) or [])]
    if sorted(names) != sorted(given):
        return model.signatures[key](**given), "tf.keras.models.load_model, its signature %s" % key
    x = given[names[0]] if len(names) == 1 else given
    return _keras_outputs(model, model(x, training=False), keys), "tf.keras.models.load_model, model call"


def _tfsm_layer_call(state, path, key, given):
    import keras
    layers = state.setdefault("layers", {})
    if key not in layers:
        try:
            layers[key] = keras.layers.TFSMLayer(path, call_endpoint=key)
        except Exception as e:
            raise _StepError("keras-load", type(e).__name__, "keras.layers.TFSMLayer: " + _exc_message(e))
    layer = layers[key]
    if len(given) == 1:
        return layer(list(given.values())[0]), "keras.layers.TFSMLayer"
    return layer.call_endpoint_fn(**given), "keras.layers.TFSMLayer endpoint, by keyword"


def _keras_outputs(model, out, keys):
    """A Keras call's result as {signature output key: tensor} (a TFSMLayer on an endpoint that is a
    tf.function rather than a signature, such as a Keras 3 export's "serve", gives a tensor)."""
    if isinstance(out, dict):
        return out
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    names = [_text(n) for n in (getattr(model, "output_names", None) or [])]
    if len(outs) == 1 and len(keys) == 1:
        return {keys[0]: outs[0]}
    if sorted(names) == keys and len(names) == len(outs):
        return dict(zip(names, outs))
    raise _StepError("run", "ValueError", "cannot match the Keras model's %d outputs %s to the "
                     "signature's outputs %s" % (len(outs), names, keys))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run a SavedModel signature or GraphDef in this TF.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--saved-model", metavar="DIR")
    src.add_argument("--graph-def", metavar="FILE")
    src.add_argument("--plan", metavar="JSON", help="run the steps of a plan (see above)")
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
    extra = {}
    try:
        if a.plan:
            results, extra = run_plan(tf, np, a)
        elif a.saved_model:
            results = run_saved_model(tf, np, a)
        else:
            results = run_graph_def(tf, np, a)
        info = _write_npz(a.outputs, results, np)
    except UsageError as e:
        _fail(2, "UsageError", _text(e))
    if extra.get("steps"):
        for step in extra["steps"].values():
            if step.get("ok"):
                step["outputs"] = dict((k, [key] + info[key]) for k, key in step["outputs"].items())
    out = {"ok": True, "tf_version": version, "outputs": info}
    out.update(extra)
    _emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
