"""Inputs for verification: built from a signature, or read from the user's file.

Generated inputs are deterministic (seeded by the tensor's name), so the
reference and the target see the same arrays and a rerun sees them again.
Unknown dims become 1 (it broadcasts against anything); floats are drawn
from [0.5, 1.5) and scalar floats are 1.0 (a keep_prob fed 1.0 keeps dropout
deterministic); integers are 0/1 (safe as labels and indices); a string that
feeds ParseExample is a batch of tf.Examples holding every feature it parses.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from transpiler.errors import TranspileError
from transpiler.ir.values import NP_TYPES, tensor_value

#: ParseExample's feature kinds by the dtype it parses them to.
_FEATURE_KINDS = {"DT_FLOAT": "float", "DT_INT64": "int64", "DT_STRING": "bytes"}
_PARSE_OPS = ("ParseExample", "ParseExampleV2", "ParseSingleExample")
#: numpy dtype of each TF dtype an input may have (strings as object arrays of bytes).
_NP_TYPES = dict(NP_TYPES, DT_STRING="object")

Features = Dict[str, Tuple[str, List[int]]]


def example_features(graph_def) -> Features:
    """{feature key: (kind "float"|"int64"|"bytes", shape)} that the graph's ParseExample ops read
    (function bodies too), for building tf.Example inputs."""
    from transpiler.ir.attrs import dtype_name

    scopes = [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]
    feats: Features = {}
    for nodes in scopes:
        by_name = {n.name: n for n in nodes}
        for n in nodes:
            if n.op not in _PARSE_OPS:
                continue
            tdense = [_FEATURE_KINDS.get(dtype_name(t), "float") for t in n.attr["Tdense"].list.type]
            shapes = [[max(d.size, 1) for d in s.dim] for s in n.attr["dense_shapes"].list.shape]
            stypes = [_FEATURE_KINDS.get(dtype_name(t), "float") for t in n.attr["sparse_types"].list.type]
            skeys, dkeys = _parse_keys(n, by_name)
            for k, t, s in zip(dkeys, tdense, shapes):
                feats.setdefault(k, (t, s))
            for k, t in zip(skeys, stypes):
                feats.setdefault(k, (t, [1]))
    return feats


def _parse_keys(node, by_name) -> Tuple[List[str], List[str]]:
    """(sparse keys, dense keys) of a ParseExample-family node: Const inputs or attrs, by op version."""
    data = [i for i in node.input if not i.startswith("^")]

    def consts(inputs):
        out = []
        for inp in inputs:
            src = by_name.get(inp.split(":")[0])
            value = tensor_value(src.attr["value"].tensor) if src is not None and src.op == "Const" else None
            values = value if isinstance(value, list) else [] if value is None else [value]
            out += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
        return out

    if node.op == "ParseExample":
        ns, nd = node.attr["Nsparse"].i, node.attr["Ndense"].i
        return consts(data[2:2 + ns]), consts(data[2 + ns:2 + ns + nd])
    if node.op == "ParseExampleV2":
        return consts(data[2:3]), consts(data[3:4])
    return ([k.decode() for k in node.attr["sparse_keys"].list.s],
            [k.decode() for k in node.attr["dense_keys"].list.s])


def make_examples(features: Features, values) -> "object":
    """One serialized tf.train.Example per value; every feature holds prod(shape) copies of the value."""
    import numpy as np

    from transpiler.io.protos import example_pb2

    out = []
    for v in values:
        ex = example_pb2.Example()
        for key, (kind, shape) in sorted(features.items()):
            n = math.prod(shape) if shape else 1
            f = ex.features.feature[key]
            if kind == "float":
                f.float_list.value.extend([float(v)] * n)
            elif kind == "int64":
                f.int64_list.value.extend([int(v)] * n)
            else:
                f.bytes_list.value.extend([str(v).encode()] * n)
        out.append(ex.SerializeToString())
    return np.array(out, dtype=object)


def generated_value(seed_key: str, dtype: str, shape: Optional[list], features: Optional[Features] = None):
    """A deterministic input for a tensor of `dtype` (DT_*) and `shape` (None: unknown rank)."""
    import numpy as np

    np_type = _NP_TYPES.get(dtype.replace("_REF", ""), "float32")
    if np_type == "object" and features and not shape:
        shape = [-1]   # ParseExample wants a batch; a pre-2016 Placeholder shape {} means "unknown"
    dims = [] if shape is None else [1 if (d is None or d < 0) else int(d) for d in shape]
    n = math.prod(dims) if dims else 1
    if np_type == "object":
        if features:
            return make_examples(features, [1.0 + i for i in range(n)]).reshape(dims)
        return np.array([b"a"] * n, dtype=object).reshape(dims)
    if np_type == "bool":
        return np.zeros(dims, np.bool_)
    if np.issubdtype(np.dtype(np_type), np.integer):
        return (np.arange(n) % 2).astype(np_type).reshape(dims)
    if not dims:
        return np.array(1.0, np_type)
    rs = np.random.RandomState(zlib.crc32(seed_key.encode()) & 0x7fffffff)
    return rs.uniform(0.5, 1.5, size=dims).round(3).astype(np_type)


def read_inputs_file(path: Path) -> Dict[str, object]:
    """The user's inputs: an .npz, or JSON {key: nested list}; a key is an input key (fed to every
    signature with that input) or "SIGNATURE/KEY". Values are cast to the input's dtype later."""
    import numpy as np

    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(str(path), allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TranspileError("--inputs-file %s: cannot read it (%s)" % (path, str(exc).splitlines()[0])) from None
    if not isinstance(data, dict):
        raise TranspileError("--inputs-file %s: expected a JSON object {input key: values}" % path)
    flat: Dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):   # {"signature": {"input": values}}
            flat.update({"%s/%s" % (key, k): np.asarray(v) for k, v in value.items()})
        else:
            flat[key] = np.asarray(value)
    return flat


def user_value(given: Mapping[str, object], signature: str, key: str, tensor: str, dtype: str):
    """The user's array for one input (None if not given), cast to the input's dtype."""
    import numpy as np

    for name in ("%s/%s" % (signature, key), key, tensor, tensor.split(":")[0]):
        if name in given:
            value = np.asarray(given[name])
            np_type = _NP_TYPES.get(dtype.replace("_REF", ""))
            if np_type and np_type != "object" and value.dtype != np.dtype(np_type):
                value = value.astype(np_type)
            return value
    return None
