"""TF 1.x names for a TF 2 checkpoint: the saver graph and the checkpoint keys.

A TF 2 SavedModel keeps variables under object paths
(``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``). After inlining,
its save and restore functions are plain SaveV2/RestoreV2 nodes whose key
lists are Consts, and every key can be followed to the variable it fills
(RestoreV2 -> Identity* -> AssignVariableOp(handle)) or reads
(VarHandleOp -> ReadVariableOp -> Identity* -> SaveV2). The variable's own
name (its ``shared_name``) becomes the key, so TF 1.x ``tf.train.Saver``,
``NewCheckpointReader`` and ``init_from_checkpoint`` users see ``dense/kernel``.
"""

from __future__ import annotations

import itertools
import re
from typing import Dict, Iterator, List, Optional, Tuple

from transpiler.errors import TranspileError
from transpiler.ir.attrs import make_attr
from transpiler.ir.graph import GraphDefIR, Node, Tensor
from transpiler.ir.values import const_value, look_through
from transpiler.passes.base import Context, Pass, PassLog

#: Ops that pass a tensor through unchanged on the way between a saver op and a variable.
_PASS_THROUGH = ("Identity", "IdentityN")
#: Resource and reference variables, and the ops that fill them.
HANDLE_OPS = ("VarHandleOp", "VariableV2", "Variable")
ASSIGN_OPS = ("AssignVariableOp", "Assign")
_OBJECT_KEY = "/.ATTRIBUTES/"


class CheckpointNames(Pass):
    """Rename object-based checkpoint keys to TF 1.x variable names in the saver graph (TF 1.x targets).

    Its log's ``checkpoint_keys`` is {old key: new key} for the checkpoint
    writer; empty for graphs whose checkpoint is already name-based.
    """

    name = "checkpoint-names"

    def __init__(self, var_map: Optional[Dict[str, str]] = None):
        self.var_map = dict(var_map or {})
        self.mapping: Dict[str, str] = {}

    def applies(self, ctx: Context) -> bool:
        return ctx.opset.is_tf1

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        self.rename(ir)
        return PassLog(checkpoint_keys=dict(self.mapping))

    def rename(self, ir: GraphDefIR) -> None:
        savers = ir.nodes_by_op("SaveV2", "RestoreV2")
        keys = {node.name: _keys(ir, node) for node in savers}
        if not any(_OBJECT_KEY in k for names in keys.values() for k in names or ()):
            return
        handles = {}
        for node in savers:
            for key, handle in zip(keys[node.name] or (), _variables_of(ir, node)):
                if handle is not None:
                    handles.setdefault(key, handle)
        self.mapping = self._names(handles)
        for node in savers:
            if keys[node.name]:
                _set_keys(ir, node, [self.mapping.get(k, k) for k in keys[node.name]])
        # The saver nodes stay the same objects, in the same order, through these edits (no rename, no
        # removal): the restores among them are what another scan of every node would find.
        restores = [node for node in savers if node.op == "RestoreV2"]
        for node in restores:
            _drop_unread(ir, node, [k not in self.mapping for k in keys[node.name] or ()])
        # The written checkpoint holds every key a restore op still reads: one no variable takes (TF 2.0's
        # separate RestoreV2 of _CHECKPOINTABLE_OBJECT_GRAPH) keeps its name. (SaveV2's keys are written
        # by the save op itself.)
        renamed = set(self.mapping.values())
        for node in restores:
            for key in _keys(ir, node) or ():
                if key not in renamed:
                    self.mapping.setdefault(key, key)

    def _names(self, handles: Dict[str, Node]) -> Dict[str, str]:
        """Key -> TF 1.x name: --var-map first, else the variable's name, with a `_N` suffix
        that TF added only to dodge an unrestored duplicate dropped again."""
        names = {key: self.var_map.get(key) or self.var_map.get(_name(h)) or _name(h) for key, h in handles.items()}
        taken = set(names.values())
        for key in sorted(names):
            base = re.sub(r"_\d+$", "", names[key])
            if base not in taken and key not in self.var_map:
                taken.discard(names[key])
                taken.add(base)
                names[key] = base
        return names


def _name(handle: Node) -> str:
    shared = handle.attrs.get("shared_name")
    return shared.s.decode() if shared is not None and shared.s else handle.name


def _keys(ir: GraphDefIR, node: Node) -> Optional[list]:
    value = const_value(ir, ir.inputs(node.name)[1])
    return [str(v) for v in value] if isinstance(value, list) else None


def _set_keys(ir: GraphDefIR, node: Node, keys: list, slices: Optional[list] = None) -> None:
    """Point the saver op at fresh Consts of `keys` (and `slices`): the old Consts may be shared."""
    old = ir.inputs(node.name)
    new = [old[0], _string_const(ir, node.name + "/tensor_names_tf1", keys, ir[old[1].node])]
    new.append(_string_const(ir, node.name + "/shape_and_slices_tf1", slices, ir[old[2].node]) if slices else old[2])
    ir.set_inputs(node.name, new + old[3:])


def _string_const(ir: GraphDefIR, base: str, values: list, like: Node) -> Tensor:
    name = ir.unique_name(base)
    value = {"dtype": "DT_STRING", "shape": [len(values)], "values": values}
    ir.add_node(name, "Const", attrs={"dtype": make_attr("type", "DT_STRING"), "value": make_attr("tensor", value)},
                device=like.device, control_inputs=ir.control_inputs(like.name))
    return Tensor(name, 0)


def _drop_unread(ir: GraphDefIR, node: Node, droppable: list) -> None:
    """Remove RestoreV2 outputs that fill no variable and that nothing reads (the TF 2 object graph)."""
    drop = [i for i, d in enumerate(droppable) if d and not ir.consumers(Tensor(node.name, i))]
    if not drop or len(drop) == len(droppable):
        return
    keep = [i for i in range(len(droppable)) if i not in drop]
    keys, slices = (const_value(ir, t) for t in ir.inputs(node.name)[1:3])
    if not (isinstance(keys, list) and isinstance(slices, list) and len(keys) == len(slices) == len(droppable)):
        raise TranspileError("not a valid graph: %s %s: tensor_names and shape_and_slices must be 1-D string "
                             "Consts with one entry per restored tensor" % (node.op, node.name))
    _set_keys(ir, node, [keys[i] for i in keep], [slices[i] for i in keep])
    dtypes = node.attrs["dtypes"].list.type
    node.attrs["dtypes"] = make_attr("list(type)", [dtypes[i] for i in keep])
    for new, old in enumerate(keep):
        if new != old:
            ir.replace_uses(Tensor(node.name, old), Tensor(node.name, new))


def restored_variables(ir: GraphDefIR) -> Dict[str, str]:
    """{variable node name: checkpoint key} for every variable a RestoreV2 fills."""
    found = {}
    for node in ir.nodes_by_op("RestoreV2"):
        for key, handle in zip(_keys(ir, node) or (), _variables_of(ir, node)):
            if handle is not None:
                found.setdefault(handle.name, key)
    return found


def _variables_of(ir: GraphDefIR, node: Node) -> Iterator[Optional[Node]]:
    """The VarHandleOp that each key of a SaveV2/RestoreV2 node reads or fills (None where there is none),
    in key order. The node's inputs and readers are listed once, not once per key: a saver of N
    variables has N inputs or N outputs, and per-key queries would make this quadratic."""
    if node.op == "SaveV2":
        for tensor in ir.inputs(node.name)[3:]:
            yield _handle_upstream(ir, tensor)
        return
    by_port = ir.consumers_by_port(node.name)
    for index in itertools.count():
        yield _assigned(ir, by_port.get(index, []))


def _assigned(ir: GraphDefIR, consumers: List[Tuple[str, int]]) -> Optional[Node]:
    """The variable that the first assign op among `consumers` (through pass-through ops) fills."""
    for name, _ in consumers:
        for consumer in _downstream_from(ir, ir[name]):
            if consumer.op in ASSIGN_OPS:
                return _handle_upstream(ir, ir.inputs(consumer.name)[0])
    return None


def _downstream_from(ir: GraphDefIR, node: Node) -> Iterator[Node]:
    """`node`, or the first non-pass-through readers behind it when it passes its input through."""
    if node.op not in _PASS_THROUGH:
        yield node
        return
    for name, _ in ir.consumers(Tensor(node.name, 0)):
        yield from _downstream_from(ir, ir[name])


def _handle_upstream(ir: GraphDefIR, tensor: Tensor) -> Optional[Node]:
    node = look_through(ir, tensor, _PASS_THROUGH + ("ReadVariableOp",))
    return node if node is not None and node.op in HANDLE_OPS else None
