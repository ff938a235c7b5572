"""Unfreeze: a frozen graph's weight constants become variables again.

`freeze_graph` / `convert_variables_to_constants` replace each variable ``X``
with a Const ``X`` and keep its reader (``X/read`` for reference variables; an
Identity in place of ``X/Read/ReadVariableOp`` for resource variables). This
pass turns chosen float Consts back into variables (``VariableV2`` nodes of the
same name, so every consumer stays wired) and hands their values to the back
end, which writes them as a checkpoint:

- by default, the Consts that were variables (read through ``NAME/read`` or
  ``NAME/Read/ReadVariableOp``) and every float Const of at least
  ``min_size`` elements;
- with ``pattern`` (a regex on node names) and/or ``names``, exactly those.

Consts feeding the mean/variance inputs of FusedBatchNorm* become
non-trainable (they are moving statistics, not weights).
"""

from __future__ import annotations

import dataclasses
import re
from typing import List

from transpiler.errors import TranspileError
from transpiler.options import DEFAULT_UNFREEZE_MIN_SIZE, UnfreezeOptions
from transpiler.ir.graph import Graph, GraphDefIR, Tensor
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.prune import names_list
from transpiler.io.protos import attr_value_pb2, tensor_pb2, types_pb2

FLOAT_TYPES = (types_pb2.DT_FLOAT, types_pb2.DT_HALF, types_pb2.DT_DOUBLE, types_pb2.DT_BFLOAT16)

DEFAULT_MIN_SIZE = DEFAULT_UNFREEZE_MIN_SIZE

#: Freezing turns a resource variable's ReadVariableOp readers into Identity nodes of the same name.
_READ_VARIABLE = re.compile(r"(^|/)ReadVariableOp(_\d+)?$")

#: (op, input index) pairs that read moving statistics.
_STATISTICS = {(op, i) for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3") for i in (3, 4)}
_STATISTICS |= {("BatchNormWithGlobalNormalization", 1), ("BatchNormWithGlobalNormalization", 2)}


@dataclasses.dataclass
class Unfrozen:
    """One Const turned into a variable."""

    name: str
    dtype: int
    shape: List[int]
    value: tensor_pb2.TensorProto
    trainable: bool


def unfreeze(graph: Graph, options: UnfreezeOptions) -> List[Unfrozen]:
    """Replace the chosen Consts of `graph` with VariableV2 nodes; their values, in graph order."""
    chosen = select(graph, options)
    done = []
    for name in chosen:
        node = graph[name]
        value = node.attrs["value"].tensor
        shape = [d.size for d in value.tensor_shape.dim]
        trainable = not any((graph[c].op, i) in _STATISTICS for c, i in _readers(graph, name))
        proto = tensor_pb2.TensorProto()
        proto.CopyFrom(value)
        shape_attr = attr_value_pb2.AttrValue()
        for d in shape:
            shape_attr.shape.dim.add().size = d
        node.op = "VariableV2"
        node.attrs = {"dtype": node.attrs["dtype"], "shape": shape_attr,
                      "container": attr_value_pb2.AttrValue(s=b""), "shared_name": attr_value_pb2.AttrValue(s=b"")}
        done.append(Unfrozen(name, value.dtype, shape, proto, trainable))
    return done


def _readers(graph: Graph, name: str) -> List[tuple]:
    """(node, input index) pairs reading `name`, looking through Identity nodes."""
    found, todo, seen = [], [name], set()
    while todo:
        current = todo.pop()
        for consumer, index in graph.consumers(Tensor(current, 0)):
            if graph[consumer].op == "Identity" and consumer not in seen:
                seen.add(consumer)
                todo.append(consumer)
            else:
                found.append((consumer, index))
    return found


def select(graph: Graph, options: UnfreezeOptions) -> List[str]:
    """Names of the Consts to unfreeze (see the module docstring)."""
    consts = {n.name: n for n in graph.nodes if n.op == "Const" and "value" in n.attrs}
    if options.pattern or options.names:
        try:
            regex = re.compile(options.pattern) if options.pattern else None
        except re.error as exc:
            raise TranspileError("--unfreeze-pattern %r is not a valid regular expression: %s"
                                 % (options.pattern, exc)) from None
        missing = [n for n in options.names if n not in consts]
        if missing:
            raise TranspileError("--unfreeze-names: no Const named %s in the graph" % ", ".join(missing))
        picked = [n for n in consts if (regex and regex.search(n)) or n in options.names]
        not_float = [n for n in picked if consts[n].attrs["value"].tensor.dtype not in FLOAT_TYPES]
        if not_float and options.names:
            listed = [n for n in not_float if n in options.names]
            if listed:
                raise TranspileError("--unfreeze-names: %s is not a float constant" % ", ".join(listed))
        return [n for n in picked if n not in not_float]
    return [n for n, node in consts.items() if _is_weight(graph, node, options.min_size)]


def _is_weight(graph: Graph, node, min_size: int) -> bool:
    value = node.attrs["value"].tensor
    if value.dtype not in FLOAT_TYPES or not value.tensor_shape.dim:
        return False
    readers = [c for c, _ in graph.consumers(Tensor(node.name, 0))]
    if readers and all(graph[r].op == "Identity" and (r == node.name + "/read" or _READ_VARIABLE.search(r))
                       for r in readers):
        return True
    size = 1
    for d in value.tensor_shape.dim:
        size *= d.size
    return size >= min_size



class Unfreeze(Pass):
    """--unfreeze: the chosen Consts become variables; ``ctx.state["unfrozen"]`` holds their values."""

    name = "unfreeze"

    def applies(self, ctx: Context) -> bool:
        return ctx.options.unfreeze is not None

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        done = unfreeze(ir, ctx.options.unfreeze)
        ctx.state["unfrozen"] = done
        log.notes.append("unfroze %d constant(s) into variables: %s" % (len(done), names_list([u.name for u in done])))
        if not done:
            log.notes.append("--unfreeze found no weight constants (see --unfreeze-pattern / --unfreeze-names)")
        return log
