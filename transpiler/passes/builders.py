"""Builders for rewrites that replace one node by several, in TF's named steps.

Every such rewrite (lowering If/Case/While, dense TensorLists) goes
"hide, build, rewire, remove": move the original out of the way under a
hidden name (``begin``), add the new nodes under ``<name>/...`` (``add``),
point the readers of each output at its replacement and give the original's
name to a keeper node (``finish``), so signatures and control consumers still
resolve. ``Lowering`` is that sequence; the attr helpers build AttrValues.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from transpiler.errors import TranspileError
from transpiler.io.protos import attr_value_pb2, tensor_pb2, types_pb2
from transpiler.ir.attrs import type_attr
from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.passes.inliner import InliningError, check_inlinable


class LoweringError(TranspileError):
    """Functional control flow (or a TensorList) this pass cannot lower (the validator then names it)."""


def int32_const(value: int) -> Dict[str, attr_value_pb2.AttrValue]:
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    tensor.tensor_shape.SetInParent()
    tensor.int_val.append(value)
    return {"dtype": type_attr(types_pb2.DT_INT32), "value": attr_value_pb2.AttrValue(tensor=tensor)}


class Lowering:
    """Shared plumbing: the node being lowered, fresh names under it, the final name keeper."""

    def __init__(self, ir: GraphDefIR, name: str):
        self.ir = ir
        self.name = name
        node = ir[name]
        self.node = node
        self.device = node.device
        self.inputs = ir.inputs(name)
        self.control = ir.control_inputs(name)
        self.hidden: Optional[str] = None

    def function(self, attr, n_inputs: int) -> "object":
        """The branch/body function, checked to inline with `n_inputs` inputs (before anything changes)."""
        fname = attr.func.name
        if fname not in self.ir.functions:
            raise LoweringError("%s %s: function %s is not in the library" % (self.node.op, self.name, fname))
        try:
            check_inlinable(self.ir, self.ir.functions[fname], n_inputs)
        except InliningError as exc:
            raise LoweringError(str(exc)) from None
        return self.ir.functions[fname]

    def begin(self) -> None:
        """Move the original out of the way so its name can go to the keeper node."""
        self.hidden = self.ir.hide(self.name, "lowered")

    def new(self, suffix: str) -> str:
        return self.ir.unique_name("%s/%s" % (self.name, suffix))

    def add(self, suffix: str, op: str, inputs=(), attrs=None, control=(), device: Optional[str] = None) -> str:
        name = self.new(suffix)
        self.ir.add_node(name, op, list(inputs), attrs or {}, self.device if device is None else device,
                         control_inputs=list(control))
        return name

    def finish(self, outputs: List[Tensor], dtypes: List[int], keeper_control: List[str]) -> None:
        """Readers of output i read outputs[i]; the original name becomes IdentityN (or NoOp)."""
        ir, hidden = self.ir, self.hidden
        stale = sorted(p for p in ir.used_ports(hidden) if not (isinstance(p, int) and p < len(outputs)))
        if stale:
            raise TranspileError("lowering %s left readers of outputs %s" % (self.name, stale))
        ir.add_name_keeper(self.name, outputs, dtypes, self.device, keeper_control, self.node.attrs.get("_output_shapes"))
        ir.replace_node(hidden, dict(enumerate(outputs)), control_output=self.name)
