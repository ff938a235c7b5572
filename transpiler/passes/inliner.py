"""The one inliner: copy a function body into a graph in place of a call.

Used by the InlineCalls pass (StatefulPartitionedCall / PartitionedCall /
direct calls) and by the control flow builders (branch and loop bodies),
following TF's inline_function_utils.cc:

* body nodes are named ``<prefix>/<body node>`` (made unique deterministically);
* arguments become the given input tensors; readers of the call's outputs
  read the body's result tensors directly;
* control inputs gate the whole body through a NoOp ``<prefix>/input_control_node``
  (each body node without a producer in the body gets a control edge from it).
  A body node with no inputs at all is anchored to the call (an Identity of
  its first input when there are no control inputs), so constants inlined
  into a while frame or a cond branch stay in that frame;
* for a call node, its name stays fetchable: an ``IdentityN`` (``NoOp`` when it
  has no outputs) named like the call reads the results and waits for the
  body's control outputs (``control_ret``);
* a body node without a device takes the call's device; ``_class`` colocation
  names follow the renaming.

It also answers which functions the graph still references, and prunes the rest,
and refuses recursive functions before anything is inlined (check_no_recursion).
"""

from __future__ import annotations

import dataclasses
import graphlib
from typing import Dict, Iterable, List, Optional, Set

from transpiler.errors import TranspileError
from transpiler.io.protos import attr_value_pb2, op_def_pb2
from transpiler.ir.attrs import type_attr
from transpiler.ir.graph import Function, Graph, GraphDefIR, Node, Tensor
from transpiler.knowledge import opdefs
from transpiler.passes.functional import CALL_OPS, attr_functions


class InliningError(TranspileError):
    """A call that cannot be inlined (polymorphic, unknown or recursive callee)."""


@dataclasses.dataclass
class InlinedBody:
    """What `inline_body` made: the results in the host's terms and the body's control outputs."""

    outputs: List[Tensor]
    control_outputs: List[str]
    names: Dict[str, str]
    gate: Optional[str]


def op_def_for(ir: GraphDefIR, op: str) -> Optional[op_def_pb2.OpDef]:
    """A library function's signature, or the newest known OpDef of `op`."""
    if op in ir.functions:
        return ir.functions[op].header.signature
    return opdefs.newest_op_def(op)


def callee(ir: GraphDefIR, node) -> Optional[str]:
    """The function a call node runs, or None for an ordinary node."""
    if node.op in CALL_OPS:
        f = node.attrs.get("f")
        return f.func.name if f is not None and f.func.name in ir.functions else None
    return node.op if node.op in ir.functions else None


def referenced_functions(ir: GraphDefIR, roots: Iterable[str] = ()) -> Set[str]:
    """Functions reachable from the top graph (and `roots`): called, named in func attrs, or their gradients."""
    gradients = {g.function_name: g.gradient_func for g in ir.header.library.gradient}
    seen: Set[str] = set()
    todo = list(_functions_used_by(ir, ir)) + list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in ir.functions:
            continue
        seen.add(name)
        todo.extend(_functions_used_by(ir, ir.functions[name]))
        todo.extend(attr_functions(ir.functions[name].header.attr.values()))
        if name in gradients:
            todo.append(gradients[name])
    return seen


def check_no_recursion(ir: GraphDefIR, roots: Iterable[str] = ()) -> None:
    """Raise InliningError naming the functions when one reachable from the top graph (or `roots`) runs
    itself, directly or through others: inlining would never end. Edges are calls (call ops' `f`,
    direct calls) and every func attr (If/While bodies are inlined when lowered)."""
    calls = {name: [used for used in _functions_used_by(ir, fn) if used in ir.functions]
             for name, fn in ir.functions.items()}
    sources = sorted({f for f in list(_functions_used_by(ir, ir)) + list(roots) if f in calls})
    try:  # the stdlib's check first: networkx (a fifth of a second to import) only to name a cycle found
        graphlib.TopologicalSorter(calls).prepare()
    except graphlib.CycleError:
        _refuse_cycle(calls, sources)


def _refuse_cycle(calls: Dict[str, List[str]], sources: List[str]) -> None:
    """The InliningError naming the first call cycle reached from `sources`, in call order (f -> g -> f);
    nothing when no cycle is reached from them (a recursive function nothing calls is never inlined)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_edges_from((name, used) for name, callees in calls.items() for used in callees)
    reached = [name for name in sources if name in graph]
    try:
        cycle = nx.find_cycle(graph, source=reached) if reached else []
    except nx.NetworkXNoCycle:
        return
    if cycle:
        names = [caller for caller, _ in cycle] + [cycle[0][0]]
        raise InliningError("recursive functions cannot be inlined: %s" % " -> ".join(names))


def _functions_used_by(ir: GraphDefIR, graph: Graph) -> Iterable[str]:
    """Functions `graph`'s nodes call or name in func attrs, in node and attr order (with repeats)."""
    functions = ir.functions
    for node in graph.nodes:
        if node.op in functions:
            yield node.op
        for value in node.attrs.values():
            # attr_functions of one value, asked only of the few that can name a function: most attrs are
            # types and shapes, and a generator per node was most of this scan over every body
            kind = value.WhichOneof("value")
            if kind == "func" or kind == "list" and value.list.func:
                yield from attr_functions((value,))



def prune_functions(ir: GraphDefIR, keep: Iterable[str] = ()) -> List[str]:
    """Drop functions nothing references; returns their names."""
    if not ir.functions:  # nothing to drop: spare the scan of every node (the graph after inlining)
        return []
    used = referenced_functions(ir, keep)
    dropped = sorted(name for name in ir.functions if name not in used)
    for name in dropped:
        del ir.functions[name]
    if dropped and ir.header.HasField("library"):
        kept = [g for g in ir.header.library.gradient if g.function_name in ir.functions]
        del ir.header.library.gradient[:]
        ir.header.library.gradient.extend(kept)
    return dropped


def inline_call(ir: GraphDefIR, graph: Graph, name: str, bodies: Optional["Bodies"] = None) -> None:
    """Replace call node `name` in `graph` by its callee's body; the name stays as IdentityN/NoOp.
    `bodies` (see Bodies) saves reading a callee again that an earlier call of the same pass read."""
    node = graph[name]
    fn = ir.functions[callee(ir, node)]
    inputs = graph.inputs(name)
    control = graph.control_inputs(name)
    out_types = _output_types(fn)
    call_ports = opdefs.output_ports(op_def_for(ir, node.op), node.attrs, graph.in_function)
    attrs_shapes = node.attrs.get("_output_shapes")
    device = node.device
    hidden = graph.hide(name, "inlined_call")
    try:
        body = inline_body(ir, graph, fn, inputs, name, control_inputs=control, device=device,
                           anchor_sources=True, bodies=bodies)
    except InliningError:
        graph.rename(hidden, name)  # inline_body checks before it changes anything
        raise
    results = dict(zip(call_ports, body.outputs))
    leftover = sorted(p for p in graph.used_ports(hidden) if p not in results)
    if leftover:
        raise InliningError("call %s: outputs %s have no result in %s" % (name, leftover, fn.name))
    keeper_control = list(body.control_outputs) + ([body.gate] if body.gate else [])
    graph.add_name_keeper(name, body.outputs, out_types, device, _dedup(keeper_control), attrs_shapes)
    graph.replace_node(hidden, results, control_output=name)


def check_inlinable(ir: GraphDefIR, fn: Function, n_inputs: int) -> Dict[str, list]:
    """Raise InliningError unless `fn` can be inlined with `n_inputs` inputs; its body's output ports by node."""
    return _check_body(ir, fn, n_inputs, _read_body(fn))


@dataclasses.dataclass
class _Body:
    """A function body's nodes and their inputs, read once: checking a body and copying it both need them."""

    nodes: List[Node]
    data_in: Dict[str, List[Tensor]]
    control_in: Dict[str, List[str]]


def _read_body(fn: Function) -> _Body:
    nodes = list(fn.nodes)
    return _Body(nodes, {n.name: fn.inputs(n.name) for n in nodes}, {n.name: fn.control_inputs(n.name) for n in nodes})


class Bodies:
    """Function bodies read and checked (`_read_body`, `_check_body`) once for many calls.

    A function called from several places (a Keras model's `__call__` behind each of its signatures)
    was read and checked again for each call, a fifth of inlining it. The owner says when a body
    changes (`forget`); a function replaced by another object of the same name is read again anyway.
    Only successful checks are kept: a body that cannot be inlined is refused again at each call.
    """

    def __init__(self) -> None:
        self._read: Dict[str, tuple] = {}

    def read(self, ir: GraphDefIR, fn: Function, n_inputs: int) -> tuple:
        """(body, its output ports by node) of `fn`, checked for a call with `n_inputs` inputs."""
        found = self._read.get(fn.name)
        if found is None or found[0] is not fn:
            body = _read_body(fn)
            found = self._read[fn.name] = (fn, body, _check_body(ir, fn, n_inputs, body))
        else:
            _check_arity(fn, n_inputs)  # the rest of the check does not depend on the call
        return found[1], found[2]

    def forget(self, name: Optional[str]) -> None:
        """Function `name`'s body has changed (or may have): read it again when it is next inlined."""
        self._read.pop(name, None)


def _check_arity(fn: Function, n_inputs: int) -> None:
    """Raise InliningError unless `fn` has a monomorphic signature taking `n_inputs` inputs."""
    args = list(fn.header.signature.input_arg)
    outs = list(fn.header.signature.output_arg)
    if any(a.number_attr or a.type_list_attr or a.type_attr for a in args + outs):
        raise InliningError("cannot inline %s: polymorphic signature" % fn.name)
    if n_inputs != len(args):
        raise InliningError("cannot inline %s: %d inputs for %d arguments" % (fn.name, n_inputs, len(args)))


def _check_body(ir: GraphDefIR, fn: Function, n_inputs: int, body: _Body) -> Dict[str, list]:
    """check_inlinable of `fn`, read as `body`."""
    _check_arity(fn, n_inputs)
    args = fn.header.signature.input_arg
    outs = fn.header.signature.output_arg
    arg_names = {a.name for a in args}
    ports = _body_ports(ir, fn, body.nodes)
    for t in [t for n in body.nodes for t in body.data_in[n.name]] + list(fn.ret.values()):
        known = t.node in arg_names if t.node not in ports else (t.port is None or t.port in ports[t.node])
        if not known:
            raise InliningError("cannot inline %s: %s names no tensor of the body" % (fn.name, t))
    missing = [a.name for a in outs if a.name not in fn.ret]
    if missing:
        raise InliningError("cannot inline %s: no result for %s" % (fn.name, ", ".join(missing)))
    return ports


def _body_ports(ir: GraphDefIR, fn: Function, nodes: List[Node]) -> Dict[str, list]:
    """Each body node's output ports. An op none of whose outputs an attr sizes (no number_attr or
    type_list_attr) has the same ports on every node: its OpDef is asked once per body, not per node.
    The lists are shared between nodes: read them, never change them."""
    ports: Dict[str, list] = {}
    fixed: Dict[str, list] = {}
    for n in nodes:
        known = fixed.get(n.op)
        if known is None:
            op_def = op_def_for(ir, n.op)
            if op_def is None:
                raise InliningError("cannot inline %s: op %s of %s is unknown" % (fn.name, n.op, n.name))
            known = opdefs.output_ports(op_def, n.attrs, True)
            if not any(a.number_attr or a.type_list_attr for a in op_def.output_arg):
                fixed[n.op] = known
        ports[n.name] = known
    return ports


def inline_body(ir: GraphDefIR, graph: Graph, fn: Function, inputs: List[Tensor], prefix: str,
                control_inputs: Iterable[str] = (), device: str = "", anchor_sources: bool = True,
                gate_name: str = "input_control_node", bodies: Optional[Bodies] = None) -> InlinedBody:
    """Copy `fn`'s body into `graph` under `prefix/`, reading `inputs` for its arguments.

    With control inputs, a NoOp `prefix/input_control_node` waits for them and
    every body node without a producer in the body waits for the NoOp. Without
    them, when `anchor_sources`, body nodes with no inputs at all wait for an
    Identity of the first input, so they run in the caller's frame and branch.
    `bodies` keeps `fn`'s body as read for later calls (`graph` must not be one of its functions).
    """
    args = list(fn.header.signature.input_arg)
    body, ports_cache = (bodies or Bodies()).read(ir, fn, len(inputs))
    arg_map = {a.name: t for a, t in zip(args, inputs)}
    body_nodes = body.nodes
    taken: Set[str] = set()

    def fresh(base: str) -> str:
        name, i = base, 0
        while graph.has_name(name) or name in taken:
            i += 1
            name = "%s_%d" % (base, i)
        taken.add(name)
        return name

    names = {n.name: fresh("%s/%s" % (prefix, n.name)) for n in body_nodes}
    data_in, control_in = body.data_in, body.control_in
    control_inputs = _dedup(control_inputs)
    sources = {n.name for n in body_nodes if not data_in[n.name] and not control_in[n.name]}
    gate = None
    if control_inputs:
        gate = fresh("%s/%s" % (prefix, gate_name))
        graph.add_node(gate, "NoOp", (), {}, device, control_inputs=control_inputs)
    elif anchor_sources and sources and inputs:
        gate = fresh("%s/%s" % (prefix, gate_name))
        graph.add_node(gate, "Identity", [inputs[0]], {"T": type_attr(_arg_type(args[0]))}, device)

    def host_tensor(t: Tensor) -> Tensor:
        if t.node not in names:
            return arg_map[t.node]
        ports = ports_cache[t.node]
        port = ports[0] if t.port is None else t.port
        return Tensor(names[t.node], port if graph.in_function else ports.index(port))

    for n in body_nodes:
        attrs = n.attrs  # add_node copies it; a copy of our own only when _class changes
        if "_class" in attrs:
            attrs = dict(attrs)
            colocation = _rename_colocation(attrs.pop("_class"), names)
            if colocation is not None:
                attrs["_class"] = colocation
        extra = None
        if n.extra is not None:
            extra = type(n.extra)()
            extra.CopyFrom(n.extra)
        node_data, node_control = data_in[n.name], control_in[n.name]
        data = [host_tensor(t) for t in node_data]
        ctrl = [names[c] if c in names else arg_map[c].node for c in node_control if c in names or c in arg_map]
        if gate is not None and (control_inputs or n.name in sources) and not (
                any(t.node in names for t in node_data) or any(c in names for c in node_control)):
            ctrl.append(gate)  # no producer in the body: the gate orders it
        # inputs may name body nodes added later: networkx holds the edge until the node arrives
        graph.add_node(names[n.name], n.op, data, attrs, n.device or device,
                       control_inputs=_dedup(ctrl) if len(ctrl) > 1 else ctrl, extra=extra)
    outputs = [host_tensor(fn.ret[arg.name]) for arg in fn.header.signature.output_arg]
    control_outputs = [names[c] for _, c in sorted(fn.control_ret.items()) if c in names]  # map order varies
    return InlinedBody(outputs, _dedup(control_outputs), names, gate)


def _rename_colocation(value, names: Dict[str, str]):
    kept = []
    for entry in value.list.s:
        text = entry.decode()
        if text.startswith("loc:@"):
            target = text[len("loc:@"):]
            if target in names:
                kept.append(("loc:@" + names[target]).encode())
        else:
            kept.append(entry)
    if not kept:
        return None
    new = attr_value_pb2.AttrValue()
    new.list.s.extend(kept)
    return new


def _arg_type(arg) -> int:
    if arg.type_attr:
        raise InliningError("polymorphic argument %s" % arg.name)
    return arg.type


def _output_types(fn: Function) -> List[int]:
    return [_arg_type(a) for a in fn.header.signature.output_arg]


def _dedup(names: Iterable[str]) -> List[str]:
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out
