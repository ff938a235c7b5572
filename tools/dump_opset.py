#!/usr/bin/env python
"""Dump the running TensorFlow's op registry (and CPU/other kernels) as JSON.

Runs inside any TensorFlow from 1.4 to 2.x, under Python 2.7 or 3:

    python dump_opset.py [--out FILE] [--contrib]

Output (stdout unless --out):

    {"tf_version": "1.8.0", "graph_def_version": 26,
     "graph_def_version_min_consumer": 0, "graph_def_version_min_producer": 0,
     "op_list_method": "...",                       # which C API gave the list
     "ops": {name: OpDef as a dict},                # the whole C++ op registry
     "kernels": {op: [device types]} or null,
     "kernels_method": "listed" | "probed" | null,
     "contrib_ops": {name: OpDef} or null}          # only with --contrib

"ops" is the full C++ registry after a plain `import tensorflow` (from
TF_GetAllOpList, so ops without Python wrappers are included).  OpDefs are
json_format.MessageToDict(preserving_proto_field_name=True) with the doc
text removed (summary, description of ops/args/attrs) and the
experimental_full_type annotations of TF 2.x dropped.

Kernels: TF >= 1.12 lists them (TF_GetAllRegisteredKernels -> KernelList;
"listed", every device type).  Older releases can only be probed: one NodeDef
per op on /device:CPU:0, trying type-attr assignments (float first, then the
allowed types) with TryFindKernelClass ("probed", CPU only; an op counts as
having a CPU kernel if any tried assignment finds one).  --probe forces
probing where listing exists too (used to check the probe against the list).

--contrib additionally imports tensorflow.contrib (TF 1.x) and records the
ops it registers on top of the core registry as "contrib_ops".

No f-strings: this must stay Python 2.7 compatible.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, op_def_pb2, types_pb2  # noqa: E402

V1 = tf.compat.v1 if hasattr(tf, "compat") and hasattr(tf.compat, "v1") else tf

_DOC_FIELDS = ("summary", "description")
_ARG_DROP = ("description", "experimental_full_type")
_ATTR_DROP = ("description",)


def _c_api_modules():
    mods = []
    for name in ("tensorflow.python.client.pywrap_tf_session",
                 "tensorflow.python.pywrap_tensorflow",
                 "tensorflow.python.pywrap_tensorflow_internal"):
        try:
            __import__(name)
            mods.append(sys.modules[name])
        except Exception:
            pass
    return mods


def op_list():
    """(OpList proto of the whole C++ registry, name of the API used)."""
    for m in _c_api_modules():
        if hasattr(m, "TF_GetAllOpList") and hasattr(m, "TF_GetBuffer"):
            buf = m.TF_GetAllOpList()
            try:
                data = m.TF_GetBuffer(buf)
            finally:
                m.TF_DeleteBuffer(buf)
            ol = op_def_pb2.OpList()
            ol.ParseFromString(data)
            return ol, m.__name__.split(".")[-1] + ".TF_GetAllOpList"
    # Last resort (not expected for 1.4+): ops known to Python.
    from tensorflow.python.framework import op_def_registry
    reg = op_def_registry.get_registered_ops()
    ol = op_def_pb2.OpList()
    for name in sorted(reg):
        ol.op.add().CopyFrom(reg[name])
    return ol, "op_def_registry.get_registered_ops"


def strip_op(op):
    d = json_format.MessageToDict(op, preserving_proto_field_name=True)
    for k in _DOC_FIELDS + ("experimental_full_type",):
        d.pop(k, None)
    for key in ("input_arg", "output_arg"):
        for arg in d.get(key, ()):
            for k in _ARG_DROP:
                arg.pop(k, None)
    for attr in d.get("attr", ()):
        for k in _ATTR_DROP:
            attr.pop(k, None)
    return d


def listed_kernels():
    """{op: sorted device types} from the kernel registry, or None if unavailable."""
    kl = None
    try:
        from tensorflow.python.framework import kernels
        kl = kernels.get_all_registered_kernels()
    except Exception:
        for m in _c_api_modules():
            if hasattr(m, "TF_GetAllRegisteredKernels"):
                try:
                    from tensorflow.core.framework import kernel_def_pb2
                    from tensorflow.python.framework import c_api_util
                    with c_api_util.tf_buffer() as buf:
                        m.TF_GetAllRegisteredKernels(buf)
                        data = m.TF_GetBuffer(buf)
                    kl = kernel_def_pb2.KernelList()
                    kl.ParseFromString(data)
                    break
                except Exception:
                    kl = None
    if kl is None:
        return None
    out = {}
    for k in kl.kernel:
        out.setdefault(k.op, set()).add(k.device_type)
    return dict((op, sorted(devs)) for op, devs in out.items())


_CANDIDATES = [types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_INT64,
               types_pb2.DT_DOUBLE, types_pb2.DT_BOOL, types_pb2.DT_STRING,
               types_pb2.DT_HALF, types_pb2.DT_UINT8, types_pb2.DT_INT8,
               types_pb2.DT_INT16, types_pb2.DT_UINT16, types_pb2.DT_COMPLEX64,
               types_pb2.DT_COMPLEX128, types_pb2.DT_BFLOAT16, types_pb2.DT_RESOURCE,
               types_pb2.DT_QINT8, types_pb2.DT_QUINT8, types_pb2.DT_QINT32,
               types_pb2.DT_QINT16, types_pb2.DT_QUINT16]
for _n in ("DT_VARIANT", "DT_UINT32", "DT_UINT64"):
    if hasattr(types_pb2, _n):
        _CANDIDATES.append(getattr(types_pb2, _n))


def _allowed(attr):
    if attr.HasField("allowed_values"):
        return list(attr.allowed_values.list.type)
    return []


def _set(asg, a, v):
    if a.type == "type":
        asg[a.name] = v
    else:
        n = a.minimum if a.has_minimum and a.minimum > 0 else 1
        asg[a.name] = [v] * n


def _assignments(op, limit=400):
    """Type-attr assignments to try, cheapest first: {attr name: type or [types]}
    dicts; None means "only the OpDef's defaults" (TryFindKernelClass adds them)."""
    type_attrs = [a for a in op.attr if a.type in ("type", "list(type)")]
    if not type_attrs:
        return [{}]
    order = list(_CANDIDATES)
    for a in type_attrs:
        for t in _allowed(a):
            if t not in order:
                order.append(t)
    tries = []

    def add(asg):
        if asg not in tries:
            tries.append(asg)

    for t in order:
        # every type attr = t (or its first allowed type) ...
        asg = {}
        for a in type_attrs:
            allowed = _allowed(a)
            _set(asg, a, t if (not allowed or t in allowed) else allowed[0])
        add(asg)
        # ... or attrs with a default keep it and the others get t
        asg = {}
        for a in type_attrs:
            allowed = _allowed(a)
            if a.HasField("default_value") and a.type == "type":
                continue
            _set(asg, a, t if (not allowed or t in allowed) else allowed[0])
        add(asg)
    add(None)
    # Mixed types (e.g. quantized ops: Tinput=quint8, out_type=qint32): the
    # cartesian product of the allowed types, while it stays small.
    choices = [_allowed(a) or order for a in type_attrs]
    total = 1
    for c in choices:
        total *= len(c)
    if len(type_attrs) > 1 and total <= limit:
        combos = [[]]
        for c in choices:
            combos = [x + [t] for x in combos for t in c]
        for combo in combos:
            asg = {}
            for a, t in zip(type_attrs, combo):
                _set(asg, a, t)
            add(asg)
    return tries


def probed_cpu_kernels(ops):
    """{op: ["CPU"]} for ops where TryFindKernelClass finds a CPU kernel."""
    finder = None
    for m in _c_api_modules():
        if hasattr(m, "TryFindKernelClass"):
            finder = m.TryFindKernelClass
            break
    if finder is None:
        return None
    out = {}
    for op in ops:
        for asg in _assignments(op):
            nd = node_def_pb2.NodeDef(name="probe", op=op.name, device="/device:CPU:0")
            for name, v in (asg or {}).items():
                if isinstance(v, list):
                    nd.attr[name].CopyFrom(attr_value_pb2.AttrValue(
                        list=attr_value_pb2.AttrValue.ListValue(type=v)))
                else:
                    nd.attr[name].CopyFrom(attr_value_pb2.AttrValue(type=v))
            try:
                cls = finder(nd.SerializeToString())
            except Exception:
                cls = ""
            if cls:
                out[op.name] = ["CPU"]
                break
    return out


def _tf_version():
    v = getattr(tf, "__version__", None)
    if not v and hasattr(tf, "version"):
        v = tf.version.VERSION
    return v


def dump(contrib=False, probe=False):
    core, method = op_list()
    core_names = set(o.name for o in core.op)
    result = {
        "tf_version": _tf_version(),
        "python": sys.version.split()[0],
        "graph_def_version": V1.GRAPH_DEF_VERSION,
        "graph_def_version_min_consumer": getattr(V1, "GRAPH_DEF_VERSION_MIN_CONSUMER", None),
        "graph_def_version_min_producer": getattr(V1, "GRAPH_DEF_VERSION_MIN_PRODUCER", None),
        "op_list_method": method,
        "ops": dict((o.name, strip_op(o)) for o in core.op),
        "contrib_ops": None,
    }
    all_ops = list(core.op)
    if contrib:
        try:
            import tensorflow.contrib  # noqa: F401
            for name in dir(tensorflow.contrib):    # touch lazily loaded submodules
                try:
                    getattr(tensorflow.contrib, name)
                except Exception:
                    pass
            full, _ = op_list()
            extra = [o for o in full.op if o.name not in core_names]
            result["contrib_ops"] = dict((o.name, strip_op(o)) for o in extra)
            all_ops += extra
        except Exception as e:
            result["contrib_error"] = "%s: %s" % (type(e).__name__, e)
    kernels = None if probe else listed_kernels()
    if kernels is not None:
        result["kernels"], result["kernels_method"] = kernels, "listed"
    else:
        kernels = probed_cpu_kernels(all_ops)
        result["kernels"] = kernels
        result["kernels_method"] = "probed" if kernels is not None else None
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dump this TensorFlow's op registry as JSON.")
    ap.add_argument("--out", help="write here instead of stdout")
    ap.add_argument("--contrib", action="store_true", help="also import tf.contrib (TF 1.x)")
    ap.add_argument("--probe", action="store_true",
                    help="probe CPU kernels with TryFindKernelClass even if they can be listed")
    a = ap.parse_args(argv)
    result = dump(contrib=a.contrib, probe=a.probe)
    text = json.dumps(result, sort_keys=True, indent=None, separators=(",", ":"))
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.rename(tmp, a.out)
    else:
        sys.stdout.write(text + "\n")
    sys.stderr.write("TF %s: %d ops%s, kernels %s (%s)\n" % (
        result["tf_version"], len(result["ops"]),
        "" if result["contrib_ops"] is None else " + %d contrib" % len(result["contrib_ops"]),
        result["kernels_method"],
        "n/a" if result["kernels"] is None else "%d ops" % len(result["kernels"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
