"""Which functional ops (calls, If/Case/While, TensorLists) a target cannot take as they are.

Shared by the inliner pass (inline when something must be lowered) and the
lowering passes, so that both decide the same way.
"""

from __future__ import annotations

from typing import Iterable

from transpiler.ir.graph import GraphDefIR, Node
from transpiler.knowledge import opdefs
from transpiler.knowledge.releases import Opset

#: Ops that call the function named by their `f` attr.
CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")

IF_OPS = ("If", "StatelessIf")
WHILE_OPS = ("While", "StatelessWhile")
CASE_OPS = ("Case", "StatelessCase")
CONTROL_FLOW_OPS = IF_OPS + WHILE_OPS + CASE_OPS

LIST_MAKERS = ("TensorListReserve", "TensorListFromTensor", "EmptyTensorList")
LIST_UPDATERS = ("TensorListSetItem", "TensorListPushBack", "TensorListPopBack")
LIST_READERS = ("TensorListGetItem", "TensorListStack", "TensorListLength", "TensorListElementShape",
                "TensorListGather")
LIST_OPS = LIST_MAKERS + LIST_UPDATERS + LIST_READERS
LIST_PASS_THROUGH = ("Identity", "Enter", "Merge", "Switch", "Exit", "NextIteration", "IdentityN", "Snapshot")



def target_rejects(node: Node, opset: Opset) -> bool:
    """The target lacks the op, or has it without an attr this node sets to a value other than its default."""
    return opdefs.target_rejects(node.op, node.attrs, opset)


def needs_lowering(node: Node, opset: Opset) -> bool:
    """Functional control flow the target cannot take as it is (op or attrs unknown to it)."""
    return node.op in CONTROL_FLOW_OPS and target_rejects(node, opset)


def lowering_required(ir: GraphDefIR, opset: Opset) -> bool:
    """Anything, anywhere (graph or function), that only lowering makes loadable."""
    return any(needs_lowering(n, opset) for _, g in ir.graphs() for n in g.nodes) or \
        tensor_lists_need_lowering(ir, opset, everywhere=True)


def tensor_lists_need_lowering(ir: GraphDefIR, opset: Opset, everywhere: bool = False) -> bool:
    """The top graph (or, `everywhere`, any function) uses a TensorList op the target lacks or knows
    with other inputs."""
    catalog = opset.catalog
    graphs = [g for _, g in ir.graphs()] if everywhere else [ir]
    for op in {n.op for g in graphs for n in g.nodes if n.op.startswith("TensorList") or n.op == "EmptyTensorList"}:
        target = opset.op(op)
        source = opdefs.newest_op_def(op, catalog)
        if target is None or source is None or \
                [a.name for a in target.input_arg] != [a.name for a in source.input_arg]:
            return True
    return False


def attr_functions(values) -> Iterable[str]:
    for value in values:
        kind = value.WhichOneof("value")
        if kind == "func":
            yield value.func.name
            yield from attr_functions(value.func.attr.values())
        elif kind == "list":
            for f in value.list.func:
                yield f.name
                yield from attr_functions(f.attr.values())
