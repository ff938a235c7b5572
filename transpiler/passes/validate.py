"""Check a graph, function bodies included, against a target release's opset.

Each problem names the node, its op, what the target lacks and the release
that introduced the missing piece, so a user (or a rule author) knows what
blocks loading and why.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional

from transpiler.ir import values
from transpiler.ir.graph import Graph, GraphDefIR, Node
from transpiler.io.protos import op_def_pb2, types_pb2
from transpiler.knowledge import opdefs
from transpiler.knowledge.releases import Opset


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason the target release would refuse the graph."""

    # unknown-op | unknown-attr | missing-attr | type-not-allowed | arity | input-rank | deprecated-op | graph-version
    # | kernel-behaviour (convert only: a rule refused an op the target computes differently)
    # | checkpoint-format, meta-graph (check only: checkpoint files, a producer version the target cannot read)
    kind: str
    op: str
    node: str
    detail: str
    function: Optional[str] = None
    introduced: Optional[str] = None
    #: minor releases just before `introduced` that the opset data lacks ("2.2-2.4"): it may be one of them
    unknown_before: Optional[str] = None

    @property
    def where(self) -> str:
        return "%s/%s" % (self.function, self.node) if self.function else self.node

    @property
    def reason(self) -> str:
        """What is wrong, without the node: problems with the same reason group together."""
        if self.introduced and self.unknown_before:
            return "%s (first in TF %s of the known releases; TF %s, not in the opset data, may have it)" % (
                self.detail, self.introduced, self.unknown_before)
        if self.introduced:
            return "%s (first in TF %s)" % (self.detail, self.introduced)
        return self.detail


def producer_ops(meta_graph) -> Optional[op_def_pb2.OpList]:
    """The OpDefs the producer declared (MetaGraphDef.meta_info_def.stripped_op_list), if any."""
    info = meta_graph.meta_info_def if meta_graph is not None else None
    return info.stripped_op_list if info is not None and info.HasField("stripped_op_list") else None


def validate(ir: GraphDefIR, opset: Opset, producer_ops: Optional[op_def_pb2.OpList] = None,
             as_written: bool = True) -> List[Problem]:
    """Every problem in `ir` for `opset`; `as_written=False` judges the graph as it is (`check`), not as
    the writer will stamp it.

    `producer_ops` is the model's ``stripped_op_list``: TF 1.x's importer drops
    an attr unknown to it when the producer's OpDef declares the attr with the
    same value as default, so such attrs do not block loading.
    """
    tolerated = {op.name: op for op in producer_ops.op} if producer_ops else {}
    problems = list(_check_versions(ir, opset))
    producer = ir.header.versions.producer
    if as_written:  # the writer lowers the producer to the target's
        producer = min(producer, opset.graph_def_version)
    facts: Dict[str, Optional[_OpFacts]] = {}
    for function, graph in ir.graphs():
        for node in graph.nodes:
            if node.op not in ir.functions:
                if node.op not in facts:
                    op_def = opset.op(node.op)
                    importable = op_def is not None and not opset.importer_refuses(node.op)
                    facts[node.op] = _OpFacts(op_def, opset, producer) if importable else None
                found = facts[node.op]
                if found is None or not found.clean(graph, node, function is None):
                    problems.extend(_check_node(graph, node, opset, function, tolerated if function is None else {},
                                                producer, found.known if found is not None else None))
    return problems


class _OpFacts:
    """What validating a node of one op needs of the target's OpDef, read once per op: most nodes have no
    problem, and reading the OpDef's protos again for each of them was most of validating a big graph."""

    def __init__(self, op_def: op_def_pb2.OpDef, opset: Opset, producer: int):
        self.op_def, self.opset, self.producer = op_def, opset, producer
        #: Whether the target's shape function for the op refuses some input rank (`_rank_problems`).
        self.checks_ranks = bool(opset.refused_ranks(op_def.name))
        #: The target's attr defs by name (what _check_node takes).
        self.known = {a.name: a for a in op_def.attr}
        #: (name, has a default, allowed types or None, a list(type)) of every attr the OpDef declares.
        self.attrs = [(a.name, a.HasField("default_value"),
                       frozenset(a.allowed_values.list.type) if a.type in ("type", "list(type)") else None,
                       a.type == "list(type)") for a in op_def.attr]
        #: The inputs it takes when no attr decides how many (None: ask expected_inputs per node).
        fixed = all(not (arg.number_attr or arg.type_list_attr) for arg in op_def.input_arg)
        self.fixed_inputs = len(op_def.input_arg) if fixed else None
        deprecated_at = op_def.deprecation.version
        self.deprecated = bool(deprecated_at) and producer >= deprecated_at

    def clean(self, graph: Graph, node: Node, top_level: bool) -> bool:
        """True only when `node` has no problem: _check_node would yield nothing (False: ask it).
        `top_level`: the node is in the graph, not a function body (whose shapes TF checks at run time)."""
        attrs, known = node.attrs, self.known
        if self.deprecated or not all(name in known or name.startswith("_") for name in attrs):
            return False
        for name, has_default, allowed, is_list in self.attrs:
            value = attrs.get(name)
            if value is None:
                if not has_default:
                    return False
            elif allowed and not _types_in(value, allowed, is_list):
                return False
        expected = self.fixed_inputs if self.fixed_inputs is not None else opdefs.expected_inputs(self.op_def, attrs)
        if expected is not None and expected != graph.data_input_count(node.name):
            return False
        return not (top_level and self.checks_ranks
                    and next(_rank_problems(graph, node, self.op_def, self.opset, self.producer), None))


def _types_in(value, allowed: frozenset, is_list: bool) -> bool:
    """_type_allowed for an attr of type `type` (`list(type)` when `is_list`) with a non-empty allowed list."""
    if value.WhichOneof("value") == "placeholder":
        return True
    return all(t in allowed for t in value.list.type) if is_list else value.type in allowed


def _check_versions(ir: GraphDefIR, opset: Opset) -> Iterator[Problem]:
    min_consumer = ir.header.versions.min_consumer
    if min_consumer > opset.graph_def_version:
        yield Problem("graph-version", "-", "-", "GraphDef requires consumer version %d, TF %s is %d"
                      % (min_consumer, opset.short, opset.graph_def_version))


def _check_node(graph: Graph, node: Node, opset: Opset, function: Optional[str], tolerated: dict,
                producer: int, known: Optional[dict]) -> Iterator[Problem]:
    """The problems of one node; `known` is the target's attr defs of its op by name (None: no such op)."""
    def problem(kind: str, detail: str, introduced: Optional[str] = None) -> Problem:
        gap = opset.catalog.missing_before(introduced) if introduced else []
        unknown = (gap[0] if len(gap) == 1 else "%s-%s" % (gap[0], gap[-1])) if gap else None
        return Problem(kind, node.op, node.name, detail, function, introduced, unknown)

    op_def = opset.op(node.op)
    catalog = opset.catalog
    if op_def is not None and opset.importer_refuses(node.op):
        yield problem("unknown-op", "op registered in C++ only: TF %s's GraphDef importer, which looks ops up "
                      "in its Python registry, refuses it ('No op named %s')" % (opset.short, node.op))
        return
    if op_def is None:
        first = catalog.first_release(node.op, after=opset.release)
        last = catalog.last_release(node.op)
        if first:
            yield problem("unknown-op", "op not in TF %s" % opset.short, first)
        elif last:
            yield problem("unknown-op", "op removed before TF %s (last in TF %s)" % (opset.short, last))
        elif catalog.contrib_releases(node.op):
            contrib = catalog.contrib_releases(node.op)
            yield problem("unknown-op", "tf.contrib op (registered by `import tensorflow.contrib` in TF %s-%s), "
                          "not in TF %s" % (contrib[0], contrib[-1], opset.short))
        else:
            yield problem("unknown-op", "op unknown to every known release (a custom op?)")
        return
    for name, value in node.attrs.items():
        if name.startswith("_") or name in known or _dropped_by_importer(tolerated, node.op, name, value):
            continue
        newer = catalog.first_release(node.op, name, after=opset.release)
        at_default = opdefs.is_default(catalog.op_def(node.op, newer) if newer else None, name, value)
        note = ", value is its default" if at_default else ", value is not its default"
        yield problem("unknown-attr", "attr '%s' unknown to TF %s%s" % (name, opset.short, note if newer else ""), newer)
    for attr in op_def.attr:
        value = node.attrs.get(attr.name)
        if value is None and not attr.HasField("default_value"):
            yield problem("missing-attr", "attr '%s' required by TF %s is missing" % (attr.name, opset.short))
        elif value is not None and not _type_allowed(attr, value):
            yield problem("type-not-allowed", "attr '%s' type not allowed in TF %s" % (attr.name, opset.short))
    expected = opdefs.expected_inputs(op_def, node.attrs)
    got = graph.data_input_count(node.name)
    if expected is not None and expected != got:
        yield problem("arity", "%d inputs, TF %s expects %d" % (got, opset.short, expected))
    elif function is None:  # function bodies are shape-checked when they run, not when the graph loads
        for detail in _rank_problems(graph, node, op_def, opset, producer):
            yield problem("input-rank", detail)
    # TF refuses a deprecated op by the graph's producer version (which the writer never raises), not its own
    deprecated_at = op_def.deprecation.version
    if deprecated_at and producer >= deprecated_at:
        yield problem("deprecated-op", "op removed at GraphDef version %d: %s" % (deprecated_at, op_def.deprecation.explanation))


def _rank_problems(graph: Graph, node: Node, op_def: op_def_pb2.OpDef, opset: Opset,
                   producer: int) -> Iterator[str]:
    """Inputs whose rank is fixed (a Const, a Placeholder's shape) at a rank the target's shape function
    for the op refuses whatever the node's attrs are (opsets.json `refused_ranks`): loading would fail."""
    refused = opset.refused_ranks(node.op)
    if not refused:
        return
    inputs = graph.inputs(node.name)
    position = 0
    for arg in op_def.input_arg:
        count = opdefs.arg_count_or_one(arg, op_def, node.attrs)
        if arg.name in refused and count == 1 and position < len(inputs) \
                and not _value_may_decide(graph, inputs[position]):
            rank = values.static_rank(graph, inputs[position], producer)
            if rank in refused[arg.name]:
                yield ("input '%s' (%s) has rank %d, which TF %s's shape function for %s refuses"
                       % (arg.name, inputs[position], rank, opset.short, node.op))
        position += count


#: Integer dtypes: shape functions read the values of integer inputs (shapes, axes, sizes).
_INTEGER_TYPES = frozenset({types_pb2.DT_INT32, types_pb2.DT_INT64})


def _value_may_decide(graph: Graph, tensor) -> bool:
    """Whether `tensor` is an integer Const, whose value a shape function may read: the probe fed
    Placeholders (values unknown), and a value can make a rank it refused acceptable (TensorListReserve
    takes a scalar element_shape of -1 for "unknown"), so such a rank is not held against a Const."""
    node = values.producer(graph, tensor)
    return node is not None and node.op == "Const" and node.attrs.get("dtype") is not None \
        and node.attrs["dtype"].type in _INTEGER_TYPES


def _dropped_by_importer(tolerated: dict, op: str, attr: str, value) -> bool:
    return opdefs.is_default(tolerated.get(op), attr, value)


def _type_allowed(attr: op_def_pb2.OpDef.AttrDef, value) -> bool:
    allowed = set(attr.allowed_values.list.type)
    if attr.type not in ("type", "list(type)") or not allowed or value.WhichOneof("value") == "placeholder":
        return True
    types = [value.type] if attr.type == "type" else list(value.list.type)
    return all(t in allowed for t in types)
