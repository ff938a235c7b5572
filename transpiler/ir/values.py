"""Reading values out of the graph: Consts (through Identity), recorded shapes.

No TF runtime: TensorProtos are decoded with numpy.
"""

from __future__ import annotations

from typing import Optional

from transpiler.ir.attrs import plain
from transpiler.ir.graph import Graph, Node, Tensor

#: A Const stored as fewer values than its shape holds is expanded only up to this size.
MAX_FILLED_ELEMENTS = 1 << 22


def producer(graph: Graph, tensor: Tensor) -> Optional[Node]:
    """The node behind `tensor`, looking through Identity (None for function arguments)."""
    seen = set()
    while tensor.node in graph and tensor.node not in seen:
        seen.add(tensor.node)
        node = graph[tensor.node]
        if node.is_arg:
            return None
        if node.op != "Identity":
            return node
        inputs = graph.inputs(node.name)
        if not inputs:
            return None
        tensor = inputs[0]
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
    """TensorProto -> plain Python value (numbers, str for decodable strings), no TF runtime."""
    import numpy as np

    from transpiler.ir.attrs import dtype_name

    name = dtype_name(proto.dtype)
    shape = [d.size for d in proto.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    np_types = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64,
                "DT_INT16": np.int16, "DT_INT8": np.int8, "DT_UINT8": np.uint8, "DT_UINT16": np.uint16,
                "DT_UINT32": np.uint32, "DT_UINT64": np.uint64, "DT_BOOL": np.bool_, "DT_HALF": np.float16}
    fields = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT64": "int64_val", "DT_BOOL": "bool_val",
              "DT_UINT32": "uint32_val", "DT_UINT64": "uint64_val", "DT_HALF": "half_val"}
    if name == "DT_STRING":
        values = [_text(v) for v in proto.string_val]
        array = np.empty(len(values), dtype=object)
        array[:] = values
    elif name in np_types:
        dtype = np_types[name]
        if proto.tensor_content:
            array = np.frombuffer(proto.tensor_content, dtype=dtype)
        elif name == "DT_HALF":
            array = np.array(list(proto.half_val), dtype=np.uint16).view(np.float16)
        else:
            array = np.array(list(getattr(proto, fields.get(name, "int_val"))), dtype=dtype)
    else:
        return None
    if array.size == 0 and count:
        return None
    if array.size != count:  # TF repeats the last value to fill the shape
        if count > MAX_FILLED_ELEMENTS:
            return None  # a question about the graph never materialises a huge tensor
        array = np.concatenate([array, np.repeat(array[-1:], count - array.size)]) if array.size else array
    array = array.reshape(shape)
    return array.tolist() if shape else array.reshape(-1)[0].item() if array.dtype != object else array.reshape(-1)[0]


def _text(value: bytes):
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


