"""AttrValue <-> plain values, typed by the OpDef, so rules can be written as YAML.

Rules and templates say ``T: DT_FLOAT``, ``alpha: 0.2`` or
``value: {dtype: DT_FLOAT, shape: [], values: [0.2]}``; the OpDef's attr type
decides which AttrValue field that becomes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from transpiler.io.protos import attr_value_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

#: TensorProto field holding values of each dtype.
_TENSOR_FIELDS = {
    "DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val", "DT_INT16": "int_val",
    "DT_INT8": "int_val", "DT_UINT8": "int_val", "DT_UINT16": "int_val", "DT_INT64": "int64_val",
    "DT_UINT32": "uint32_val", "DT_UINT64": "uint64_val", "DT_BOOL": "bool_val", "DT_STRING": "string_val",
    "DT_HALF": "half_val", "DT_BFLOAT16": "half_val", "DT_COMPLEX64": "scomplex_val",
}

_SCALAR_FIELDS = {"int": "i", "float": "f", "bool": "b", "string": "s", "type": "type", "shape": "shape",
                  "tensor": "tensor", "func": "func"}


def value_field(attr_type: str) -> Optional[str]:
    """The AttrValue field (of its `value` oneof) holding an attr of OpDef type `attr_type`: "list" for the
    list types, None for a type this table does not know."""
    return "list" if attr_type.startswith("list(") else _SCALAR_FIELDS.get(attr_type)


class AttrError(ValueError):
    """A value that does not fit the attr's type."""


def dtype_enum(value: Any) -> int:
    """`DT_FLOAT`, `float32` or the enum number -> DataType number."""
    if isinstance(value, int):
        return value
    name = str(value).upper()
    name = name if name.startswith("DT_") else "DT_" + {"FLOAT32": "FLOAT", "FLOAT64": "DOUBLE"}.get(name, name)
    try:
        return types_pb2.DataType.Value(name)
    except ValueError:
        raise AttrError("unknown dtype %r" % value) from None


def dtype_name(value: int) -> str:
    """The DataType's name (`DT_FLOAT`); ValueError for a number no DataType has. Kept once found: plain attrs
    of every node a rule fires on ask it, and the enum wrapper's lookup costs a microsecond."""
    found = _DTYPE_NAMES.get(value)
    if found is None:
        found = _DTYPE_NAMES[value] = types_pb2.DataType.Name(value)
    return found


_DTYPE_NAMES: Dict[int, str] = {}


def make_shape(dims: Optional[list]) -> tensor_shape_pb2.TensorShapeProto:
    shape = tensor_shape_pb2.TensorShapeProto()
    if dims is None:
        shape.unknown_rank = True
    else:
        for d in dims:
            shape.dim.add().size = -1 if d is None else int(d)
    return shape


def make_tensor(spec: dict) -> tensor_pb2.TensorProto:
    """`{dtype, shape, values}` -> TensorProto (values repeated to fill the shape as TF does)."""
    if isinstance(spec, tensor_pb2.TensorProto):
        return spec
    tensor = tensor_pb2.TensorProto(dtype=dtype_enum(spec.get("dtype", "DT_FLOAT")))
    tensor.tensor_shape.CopyFrom(make_shape(spec.get("shape", [])))
    name = dtype_name(tensor.dtype)
    field = _TENSOR_FIELDS.get(name)
    if field is None:
        raise AttrError("cannot write %s tensors in a rule" % name)
    values = spec.get("values", [])
    values = values if isinstance(values, (list, tuple)) else [values]
    if name == "DT_STRING":
        values = [v.encode() if isinstance(v, str) else v for v in values]
    elif name in ("DT_HALF", "DT_BFLOAT16"):
        values = [_half_bits(v, name) for v in values]
    getattr(tensor, field).extend(values)
    return tensor


def _half_bits(value: float, name: str) -> int:
    import numpy as np

    if name == "DT_HALF":
        return int(np.array(value, np.float16).view(np.uint16))
    return int(np.array(value, np.float32).view(np.uint32)) >> 16


def plain_key(value: Any) -> Any:
    """A hashable stand-in for plain data (what YAML and `plain` give), equal only for values that make the
    same attr and render alike (types and -0.0 kept); TypeError for anything else."""
    kind = type(value)
    if kind is float:
        return "float", repr(value)
    if kind in (str, int, bool) or value is None:
        return kind.__name__, value
    if kind in (list, tuple):
        return kind.__name__, tuple(plain_key(v) for v in value)
    if kind is dict:
        return "dict", tuple((plain_key(k), plain_key(v)) for k, v in value.items())
    raise TypeError("not plain data")


def make_attr(attr_type: str, value: Any) -> attr_value_pb2.AttrValue:
    """A plain value -> AttrValue of the OpDef type `attr_type` (e.g. `type`, `list(int)`)."""
    if isinstance(value, attr_value_pb2.AttrValue):
        return value
    av = attr_value_pb2.AttrValue()
    try:
        if attr_type.startswith("list("):
            inner = attr_type[5:-1]
            av.list.SetInParent()
            field = getattr(av.list, _SCALAR_FIELDS[inner])
            items = [_scalar(inner, v) for v in value]
            if inner in ("shape", "tensor", "func"):
                for item in items:
                    field.add().CopyFrom(item)
            else:
                field.extend(items)
        else:
            field = _SCALAR_FIELDS[attr_type]
            item = _scalar(attr_type, value)
            if attr_type in ("shape", "tensor", "func"):
                getattr(av, field).CopyFrom(item)
            else:
                setattr(av, field, item)
    except (TypeError, ValueError, KeyError) as exc:
        raise AttrError("%r is not a valid %s (%s)" % (value, attr_type, exc)) from None
    return av


def _scalar(attr_type: str, value: Any):
    if attr_type == "type":
        return dtype_enum(value)
    if attr_type == "shape":
        return make_shape(value)
    if attr_type == "tensor":
        return make_tensor(value)
    if attr_type == "string":
        return value.encode() if isinstance(value, str) else bytes(value)
    if attr_type == "func":
        return attr_value_pb2.NameAttrList(name=value) if isinstance(value, str) else value
    if attr_type == "bool":
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    return {"int": int, "float": float}[attr_type](value)


def plain(av: attr_value_pb2.AttrValue) -> Any:
    """AttrValue -> a plain value for templates and reports (dtypes by name, shapes as lists)."""
    kind = av.WhichOneof("value")
    if kind == "list":
        for field in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            items = getattr(av.list, field)
            if len(items):
                return [_plain_scalar(field, x) for x in items]
        return []
    return None if kind is None else _plain_scalar(kind, getattr(av, kind))


def _plain_scalar(kind: str, value: Any) -> Any:
    if kind == "type":
        return dtype_name(value)
    if kind == "s":
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if kind == "shape":
        return None if value.unknown_rank else [d.size for d in value.dim]
    if kind == "func":
        return value.name
    if kind == "tensor":
        return value
    return value


# ---- AttrValues for builders (no OpDef lookup needed) ----


def type_attr(dtype: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(type=dtype)


def types_attr(dtypes: List[int]) -> attr_value_pb2.AttrValue:
    value = attr_value_pb2.AttrValue()
    value.list.type.extend(dtypes)
    return value


def int_attr(i: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(i=i)


def str_attr(s: str) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(s=s.encode())


def bool_attr(b: bool) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(b=b)
