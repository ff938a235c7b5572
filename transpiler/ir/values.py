"""Reading values out of the graph: Consts (through Identity), recorded shapes.

No TF runtime: TensorProtos are decoded with numpy.
"""

from __future__ import annotations

import math
from typing import Collection, Optional

from transpiler.ir.attrs import plain
from transpiler.ir.graph import Graph, Node, Tensor

#: Elements a value read out of the graph may have: a question about the graph never materialises a
#: huge tensor (a Const may claim any shape; TF repeats its last value to fill it).
MAX_ELEMENTS = 1 << 22
#: Bytes of the strings of one DT_STRING tensor read out of the graph.
MAX_STRING_BYTES = 1 << 24

#: numpy dtype of each plain TF dtype.
NP_TYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_INT32": "int32", "DT_INT64": "int64",
             "DT_INT16": "int16", "DT_INT8": "int8", "DT_UINT8": "uint8", "DT_UINT16": "uint16",
             "DT_UINT32": "uint32", "DT_UINT64": "uint64", "DT_BOOL": "bool", "DT_HALF": "float16"}
#: The TensorProto field of each dtype's values (int_val for the rest).
_FIELDS = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT64": "int64_val", "DT_BOOL": "bool_val",
           "DT_UINT32": "uint32_val", "DT_UINT64": "uint64_val", "DT_HALF": "half_val"}


def look_through(graph: Graph, tensor: Tensor, through: Collection[str]) -> Optional[Node]:
    """The first node behind `tensor` whose op is not in `through`, following each pass-through op's
    input (IdentityN's by the port read); None for a function argument, a cycle or a missing input."""
    seen = set()
    while tensor.node in graph and tensor.node not in seen:
        seen.add(tensor.node)
        node = graph[tensor.node]
        if node.is_arg:
            return None
        if node.op not in through:
            return node
        inputs = graph.inputs(node.name)
        index = tensor.port if node.op == "IdentityN" and isinstance(tensor.port, int) else 0
        if index >= len(inputs):
            return None
        tensor = inputs[index]
    return None


def producer(graph: Graph, tensor: Tensor) -> Optional[Node]:
    """The node behind `tensor`, looking through Identity (None for function arguments)."""
    return look_through(graph, tensor, ("Identity",))


#: The first GraphDef version whose Placeholders read an empty `shape` as a scalar; older graphs
#: meant "any shape" by it (TF's Placeholder shape function keeps that reading for them).
PLACEHOLDER_SCALAR_SHAPE_SINCE = 22


def static_rank(graph: Graph, tensor: Tensor, graph_version: int) -> Optional[int]:
    """The rank TF's shape inference is sure to give `tensor` on import: a Const's, or a Placeholder's
    fixed `shape` attr (through Identity); None when nothing fixes it. `graph_version` is the GraphDef
    producer version the graph is loaded with."""
    node = producer(graph, tensor)
    if node is None:
        return None
    if node.op == "Const" and "value" in node.attrs:
        return len(node.attrs["value"].tensor.tensor_shape.dim)
    if node.op == "Placeholder" and "shape" in node.attrs and node.attrs["shape"].HasField("shape"):
        shape = node.attrs["shape"].shape
        if shape.unknown_rank or (not shape.dim and graph_version < PLACEHOLDER_SCALAR_SHAPE_SINCE):
            return None
        return len(shape.dim)
    return None


def const_value(graph: Graph, tensor: Tensor):
    """The value of a Const behind `tensor` as plain Python (scalar or nested list), or None."""
    node = producer(graph, tensor)
    if node is None or node.op != "Const" or "value" not in node.attrs:
        return None
    try:
        return tensor_value(node.attrs["value"].tensor)
    except (ValueError, TypeError):
        return None


def known_shape(graph: Graph, tensor: Tensor) -> Optional[list]:
    """The tensor's shape from its producer's `_output_shapes` (graph-mode exports keep them), or None."""
    if tensor.node not in graph or not isinstance(tensor.port, int):
        return None
    shapes = plain(graph[tensor.node].attrs["_output_shapes"]) if "_output_shapes" in graph[tensor.node].attrs else None
    return shapes[tensor.port] if shapes and tensor.port < len(shapes) else None


def tensor_value(proto):
    """TensorProto -> plain Python value (numbers, str for decodable strings), no TF runtime.

    None when the dtype is not a plain number, bool or string, when the proto holds no values for a
    non-empty shape, or when the shape or the stored values exceed MAX_ELEMENTS (MAX_STRING_BYTES).
    """
    from transpiler.ir.attrs import dtype_name

    name = dtype_name(proto.dtype)
    shape = [d.size for d in proto.tensor_shape.dim]
    count = math.prod(shape)  # Python ints: a claimed 2**31 x 2**31 does not overflow
    if count > MAX_ELEMENTS or min(shape, default=0) < 0 or (name not in NP_TYPES and name != "DT_STRING"):
        return None
    if name == "DT_STRING" and len(shape) <= 1:
        return _string_value(proto, shape, count)
    import numpy as np  # here: a check or a rename of a saver's keys need not load it (a third of a second)

    array = _stored_values(proto, name)
    if array is None or array.size > count or (array.size == 0 and count):
        return None
    if array.size != count:  # TF repeats the last value to fill the shape
        array = np.concatenate([array, np.repeat(array[-1:], count - array.size)]) if array.size else array
    array = array.reshape(shape)
    return array.tolist() if shape else array.reshape(-1)[0].item() if array.dtype != object else array.reshape(-1)[0]


def _string_value(proto, shape: list, count: int):
    """tensor_value of a DT_STRING scalar or vector (a saver's key list), in plain Python, as the numpy
    path gives it: the last value repeated to fill the shape; None when too few or too many are stored."""
    values = proto.string_val
    if len(values) > count or (not values and count) or sum(map(len, values)) > MAX_STRING_BYTES:
        return None
    items = [_text(v) for v in values]
    items += items[-1:] * (count - len(items))
    return items if shape else items[0]


def _stored_values(proto, name: str):
    """The values `proto` stores, as a flat numpy array, or None when there are more than MAX_ELEMENTS."""
    import numpy as np

    if name == "DT_STRING":
        if len(proto.string_val) > MAX_ELEMENTS or sum(map(len, proto.string_val)) > MAX_STRING_BYTES:
            return None
        array = np.empty(len(proto.string_val), dtype=object)
        array[:] = [_text(v) for v in proto.string_val]
        return array
    dtype = np.dtype(NP_TYPES[name])
    if proto.tensor_content:
        if len(proto.tensor_content) > MAX_ELEMENTS * dtype.itemsize:
            return None
        return np.frombuffer(proto.tensor_content, dtype=dtype)
    field = getattr(proto, _FIELDS.get(name, "int_val"))
    if len(field) > MAX_ELEMENTS:
        return None
    if name == "DT_HALF":
        return np.array(list(field), dtype=np.uint16).view(np.float16)
    return np.array(list(field), dtype=dtype)


def _text(value: bytes):
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


