"""Pass (upgrade): where each TF 1.x variable's value comes from, read before pruning.

The saver's SaveV2/SaveSlices/Save nodes give each variable its checkpoint key
and slice; initializers give the Const a variable the saver leaves out is set
from (e.g. an asset path). Pruning to the signatures drops both, so this runs
first and leaves ``ctx.state["saver_keys"]`` and ``ctx.state["initial_values"]``.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.ir.values import const_value, look_through, producer
from transpiler.passes.base import Context, Pass, PassLog

#: Variable ops and whether they hold a resource handle (else a reference).
VARIABLE_OPS = {"VariableV2": False, "Variable": False, "VarHandleOp": True}


class RecordVariables(Pass):
    name = "record-variables"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        ctx.state["saver_keys"] = saver_keys(ir)
        ctx.state["initial_values"] = initial_values(ir)
        return PassLog()


def saver_keys(ir: GraphDefIR) -> Dict[str, Tuple[str, str]]:
    """Variable node -> (checkpoint key, slice spec), from the saver's SaveV2/SaveSlices/Save nodes."""
    keys: Dict[str, Tuple[str, str]] = {}
    for node in ir.nodes:
        if node.op not in ("SaveV2", "SaveSlices", "Save"):
            continue
        inputs = ir.inputs(node.name)
        names = const_value(ir, inputs[1])
        slices = const_value(ir, inputs[2]) if node.op != "Save" else None
        first = 2 if node.op == "Save" else 3
        if not isinstance(names, list):
            continue
        slices = slices if isinstance(slices, list) else [""] * len(names)
        for name, spec, tensor in zip(names, slices, inputs[first:]):
            var = _variable_behind(ir, tensor)
            if var is not None:
                keys.setdefault(var, (_text(name), _text(spec)))
    return keys


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _variable_behind(ir: GraphDefIR, tensor: Tensor) -> Optional[str]:
    """The variable node a saved tensor reads (through Identity / ReadVariableOp / read snapshots)."""
    node = look_through(ir, tensor, ("Identity", "ReadVariableOp", "RefIdentity"))
    return node.name if node is not None and node.op in VARIABLE_OPS else None


def trainable_names(mg) -> Optional[set]:
    """Variable node names in the `trainable_variables` collection (None when there is no such collection)."""
    collection = mg.collection_def.get("trainable_variables") if mg.collection_def else None
    if collection is None or not collection.HasField("bytes_list"):
        return None
    return {_variable_def_name(raw).split(":")[0] for raw in collection.bytes_list.value}


def _variable_def_name(raw: bytes) -> str:
    """VariableDef.variable_name (field 1) read from the wire format: VariableDef is not among protos.py's classes."""
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(raw, pos)
        elif wire == 2:
            length, pos = _varint(raw, pos)
            if field == 1:
                return raw[pos:pos + length].decode("utf-8", "replace")
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            break
    return ""


def _varint(raw: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def initial_values(ir: GraphDefIR) -> Dict[str, object]:
    """Variable node -> the Const its initializer assigns (TensorProto), for variables the saver leaves out."""
    found = {}
    for node in ir.nodes:
        if node.op in ("Assign", "AssignVariableOp"):
            inputs = ir.inputs(node.name)
            var = _variable_behind(ir, inputs[0]) if len(inputs) == 2 else None
            value = producer(ir, inputs[1]) if var else None
            if value is not None and value.op == "Const" and var not in found:
                found[var] = value.attrs["value"].tensor
    return found
