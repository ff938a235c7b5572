"""Pass: Optionals of functional-cond gradients -> the tensors they wrap, for targets without them.

TF 2's cond_v2 hands each branch intermediate a gradient needs out of the If
as an Optional (DT_VARIANT): OptionalFromValue(x) in the branch that computed
it, OptionalNone in the other, and the gradient's own If unwraps it with
OptionalGetValue. TF 1.4-1.10 lack the Optional ops. Once the Ifs are lowered
to Switch/Merge, an Optional is ordinary dataflow from its makers through
Identity/Switch/Merge/Enter/Exit to OptionalGetValue, so each one becomes the
tensor itself:

  OptionalFromValue(x)  -> Identity(x)            (GetValue of it is x: exact)
  OptionalNone          -> Const 0 of the type    (only the branch not taken makes it; its value is never read)
  OptionalGetValue(o)   -> Identity(o)
  Identity/Switch/Merge/Enter/Exit/NextIteration/Snapshot carrying it get the component's dtype.

A group of connected Optionals is rewritten only when every maker and reader
holds one component of one dtype and nothing else reads it (OptionalHasValue,
a function call, a dataset); otherwise it is left alone and the validator
names the ops.
"""

from __future__ import annotations

from typing import Dict, Optional, Set, Tuple

from transpiler.engine.rule_pass import Firing
from transpiler.io.protos import attr_value_pb2, types_pb2
from transpiler.ir.attrs import dtype_name, make_tensor, type_attr, types_attr
from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.passes.base import Context, Pass, PassLog

MAKERS = ("OptionalFromValue", "OptionalNone")
READER = "OptionalGetValue"
PASS_THROUGH = ("Identity", "Enter", "Merge", "Switch", "Exit", "NextIteration", "Snapshot")


class DenseOptionals(Pass):
    name = "dense-optionals"

    def applies(self, ctx: Context) -> bool:
        return not ctx.opset.has_op("OptionalFromValue")

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        for where, graph in ir.graphs():
            seen: Set[str] = set()
            for maker in graph.nodes_by_op(*MAKERS):
                if maker.name in seen:
                    continue
                group, ports, dtype = _group(graph, maker.name)
                seen |= group
                if dtype is None:
                    continue
                for name in sorted(group):
                    node = graph[name]
                    old = node.op
                    if old == "OptionalNone":
                        zero = "" if dtype == types_pb2.DT_STRING else (False if dtype == types_pb2.DT_BOOL else 0)
                        tensor = make_tensor({"dtype": dtype_name(dtype), "shape": [], "values": [zero]})
                        node.op, node.attrs = "Const", {"dtype": type_attr(dtype),
                                                        "value": attr_value_pb2.AttrValue(tensor=tensor)}
                    elif old in PASS_THROUGH:
                        node.attrs = dict(node.attrs, T=type_attr(dtype))
                        node.attrs.pop("_output_shapes", None)
                    else:
                        node.op, node.attrs = "Identity", {"T": type_attr(dtype)}
                    if old in MAKERS or old == READER:
                        log.firings.append(Firing("optional-to-value", name, old, where,
                                                  "%s -> %s of the wrapped tensor" % (old, node.op)))
                for name, used in ports.items():
                    node = graph[name]
                    types = list(node.attrs["T"].list.type)
                    for i in used:
                        types[i] = dtype
                    node.attrs = dict(node.attrs, T=types_attr(types))
                    node.attrs.pop("_output_shapes", None)
        return log


def _variant_ports(op: str) -> Tuple[int, ...]:
    return (0, 1) if op == "Switch" else (0,)


def _group(graph, start: str) -> Tuple[Set[str], Dict[str, Set[int]], Optional[int]]:
    """The Optionals connected to maker `start`, the IdentityN ports (name keepers of lowered Ifs) they pass
    through, and their one component dtype (None: not rewritable)."""
    group: Set[str] = set()
    ports: Dict[str, Set[int]] = {}
    todo, dtypes, ok = [start], set(), True

    def back(tensor: Tensor) -> None:  # the producer of an Optional tensor
        while graph[tensor.node].op == "IdentityN":
            ports.setdefault(tensor.node, set()).add(tensor.port)
            tensor = graph.inputs(tensor.node)[tensor.port]
        todo.append(tensor.node)

    def forward(tensor: Tensor) -> bool:  # the readers of an Optional tensor; False if one cannot be rewritten
        fine = True
        for consumer, index in graph.consumers(tensor):
            op = graph[consumer].op
            if op == "IdentityN":
                ports.setdefault(consumer, set()).add(index)
                fine = forward(Tensor(consumer, index)) and fine
            elif op == READER or (op in PASS_THROUGH and not (op == "Switch" and index == 1)):
                todo.append(consumer)
            else:
                fine = False
        return fine

    while todo:
        name = todo.pop()
        if name in group:
            continue
        group.add(name)
        node = graph[name]
        if node.op == "OptionalFromValue" or node.op == READER:
            types = list(node.attrs["Toutput_types" if node.op != READER else "output_types"].list.type)
            ok = ok and len(types) == 1
            dtypes.update(types)
        if node.op == READER or node.op in PASS_THROUGH:  # back to where the Optional comes from
            inputs = graph.inputs(name)
            for tensor in inputs[:1] if node.op in ("Switch", READER) else inputs:
                back(tensor)
        if node.op != READER:
            for port in _variant_ports(node.op):
                ok = forward(Tensor(name, port)) and ok
    for name in group:
        node = graph[name]
        if node.op in PASS_THROUGH:
            ok = ok and "T" in node.attrs and node.attrs["T"].type == types_pb2.DT_VARIANT
        elif node.op not in MAKERS and node.op != READER:
            ok = False
    for name, used in ports.items():
        types = graph[name].attrs["T"].list.type
        ok = ok and all(types[i] == types_pb2.DT_VARIANT for i in used)
    return group, ports, (dtypes.pop() if ok and len(dtypes) == 1 else None)
