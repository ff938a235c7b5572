"""Inline function calls: StatefulPartitionedCall, PartitionedCall and direct calls.

A TF 2 SavedModel keeps its computation in the function library, reached
through ``StatefulPartitionedCall`` nodes; TF 1.x before 1.10 has no such op
(and before 1.13 not with ``config_proto``).
This pass replaces each call by a copy of the callee's body, recursively:

* body nodes are named ``<call>/<body node>`` (made unique deterministically);
* arguments become the call's input tensors; readers of the call's outputs
  read the body's result tensors directly;
* the call's control inputs gate the whole body through a NoOp
  ``<call>/input_control_node`` (each body node without a producer in the
  body gets a control edge from it). A body node with no inputs at all is
  always anchored to the call (an Identity of its first input when it has no
  control inputs), so constants inlined into a while frame or a cond branch
  stay in that frame;
* the call's name stays fetchable: an ``IdentityN`` (or ``NoOp`` when it has no
  outputs) named like the call reads the results and waits for the body's
  control outputs (``control_ret``), so signatures (``StatefulPartitionedCall:0``),
  ``saver_def`` (``StatefulPartitionedCall_1:0``, restore op names) and control
  consumers of the call still resolve;
* a body node without a device takes the call's device; ``_class`` colocation
  names follow the renaming.

Call nodes vanish, and with them their function-only attrs (``config_proto``,
``executor_type``, ``_XlaMustCompile``, ...). Functions nothing references any
more are pruned; functions named by ``func`` attrs (If/While branches) stay
until control flow is lowered.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Set, Tuple

from .errors import TranspileError
from .ir import Function, Graph, GraphDefIR, Tensor
from .protos import attr_value_pb2, op_def_pb2
from .releases import Opset, catalog
from .rewrite import Firing, output_ports

#: Ops that call the function named by their `f` attr.
CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")

#: Ops TF 2.x puts only into the traced save function of a SavedModel, with their stand-in for
#: older targets. DisableCopyOnRead (TF 2.12+) only stops copy-on-read of the variable being saved;
#: a NoOp in its place keeps the control edges that order the save.
SAVE_ONLY_OPS = {"DisableCopyOnRead": "NoOp"}

#: A guard against recursive functions.
MAX_INLINED_CALLS = 100000


class InliningError(TranspileError):
    """A call that cannot be inlined (polymorphic or unknown callee)."""


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
    cat = catalog()
    last = cat.last_release(op)
    return cat.op_def(op, last) if last else None


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


def _functions_used_by(ir: GraphDefIR, graph: Graph) -> Iterable[str]:
    for node in graph.nodes:
        if node.op in ir.functions:
            yield node.op
        yield from attr_functions(node.attrs.values())


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


def prune_functions(ir: GraphDefIR, keep: Iterable[str] = ()) -> List[str]:
    """Drop functions nothing references; returns their names."""
    used = referenced_functions(ir, keep)
    dropped = sorted(name for name in ir.functions if name not in used)
    for name in dropped:
        del ir.functions[name]
    if dropped and ir.header.HasField("library"):
        kept = [g for g in ir.header.library.gradient if g.function_name in ir.functions]
        del ir.header.library.gradient[:]
        ir.header.library.gradient.extend(kept)
    return dropped


class InlineFunctions:
    """Callable pass: ``InlineFunctions(opset, force=False)(ir)``.

    Inlines every call (graph and function bodies) when `force`, when the
    target lacks a call op the model uses or rejects an attr it sets
    (StatefulPartitionedCall's config_proto before TF 1.13), or when
    functional control flow or TensorLists must be lowered for the target
    (lowering works on the top graph). Before that, save-only ops the target
    lacks (DisableCopyOnRead) become NoOps wherever they are.
    `keep` names functions to keep even when nothing calls them (a TF 2
    SavedModel's object graph refers to its concrete functions).
    """

    def __init__(self, opset: Opset, force: bool = False, keep: Iterable[str] = ()):
        self.opset = opset
        self.force = force
        self.keep = list(keep)
        #: (function or None, call node) for every call inlined, in order.
        self.inlined: List[Tuple[Optional[str], str]] = []
        self.pruned: List[str] = []
        #: (function or None, node, op) of save-only ops replaced.
        self.replaced: List[Tuple[Optional[str], str, str]] = []
        #: what happened, for the report (same form as the rules pass's log).
        self.firings: List[Firing] = []
        #: (function or None, node) -> why it was not inlined (the validator reports the node).
        self.refused: Dict[Tuple[Optional[str], str], str] = {}

    def needed(self, ir: GraphDefIR) -> bool:
        """Forced; or a call op the target lacks or knows without an attr set here (config_proto before
        TF 1.13); or something only lowering fixes (lowering works on the top graph)."""
        from .lower_control_flow import lowering_required, target_rejects

        if self.force:
            return True
        if any(node.op in CALL_OPS and target_rejects(node, self.opset) for _, g in ir.graphs() for node in g.nodes):
            return True
        return lowering_required(ir, self.opset)

    def __call__(self, ir: GraphDefIR, opset: Optional[Opset] = None) -> None:
        self.replace_save_only_ops(ir)
        if not self.needed(ir):
            return
        self.inline_graph(ir, ir, None)
        self.pruned += prune_functions(ir, self.keep)
        for name in sorted(ir.functions):
            self.inline_graph(ir, ir.functions[name], name)
        self.pruned += prune_functions(ir, self.keep)

    def replace_save_only_ops(self, ir: GraphDefIR) -> None:
        """DisableCopyOnRead -> NoOp (same name, same control edges) where the target lacks it."""
        for where, graph in ir.graphs():
            for node in graph.nodes_by_op(*SAVE_ONLY_OPS):
                if self.opset.has_op(node.op):
                    continue
                graph.set_inputs(node.name, [], graph.control_inputs(node.name))
                self.replaced.append((where, node.name, node.op))
                self.firings.append(Firing("save-only-op-to-noop", node.name, node.op, where,
                                           "%s -> %s" % (node.op, SAVE_ONLY_OPS[node.op])))
                node.op, node.attrs = SAVE_ONLY_OPS[node.op], {k: v for k, v in node.attrs.items()
                                                               if k == "_output_shapes"}

    def inline_graph(self, ir: GraphDefIR, graph: Graph, where: Optional[str]) -> int:
        """Inline every call in `graph`, including calls the inlined bodies bring; returns how many."""
        count = 0
        while True:
            calls = [n.name for n in graph.nodes if callee(ir, n) is not None and callee(ir, n) != where
                     and (where, n.name) not in self.refused]
            if not calls:
                return count
            for name in calls:
                op, function = graph[name].op, callee(ir, graph[name])
                try:
                    inline_call(ir, graph, name)
                except InliningError as exc:
                    self.refused[(where, name)] = str(exc)
                    continue
                self.inlined.append((where, name))
                self.firings.append(Firing("inline-function-call", name, op, where, "inlined " + function))
                count += 1
                if count > MAX_INLINED_CALLS:
                    raise InliningError("more than %d calls inlined in %s: recursive functions?"
                                        % (MAX_INLINED_CALLS, where or "the graph"))


# ---------------------------------------------------------------------------
# the mechanics, shared with lower_control_flow.py


def inline_call(ir: GraphDefIR, graph: Graph, name: str) -> None:
    """Replace call node `name` in `graph` by its callee's body; the name stays as IdentityN/NoOp."""
    node = graph[name]
    fn = ir.functions[callee(ir, node)]
    inputs = graph.inputs(name)
    control = graph.control_inputs(name)
    out_types = _output_types(fn)
    call_ports = output_ports(op_def_for(ir, node.op), node, graph.in_function)
    attrs_shapes = node.attrs.get("_output_shapes")
    device = node.device
    hidden = graph.unique_name(name + "/_inlined_call")
    graph.rename(name, hidden)
    try:
        body = inline_body(ir, graph, fn, inputs, name, control_inputs=control, device=device,
                           anchor_sources=True)
    except InliningError:
        graph.rename(hidden, name)  # inline_body checks before it changes anything
        raise
    for i, port in enumerate(call_ports[:len(body.outputs)]):
        graph.replace_uses(Tensor(hidden, port), body.outputs[i])
    leftover = [t for t in graph.used_ports(hidden)]
    if leftover:
        raise InliningError("call %s: outputs %s have no result in %s" % (name, leftover, fn.name))
    control_consumers = graph.control_consumers(hidden)
    graph.remove_node(hidden)
    keeper_control = list(body.control_outputs) + ([body.gate] if body.gate else [])
    if body.outputs:
        attrs = {"T": _type_list(out_types)}
        if attrs_shapes is not None:
            attrs["_output_shapes"] = attrs_shapes
        graph.add_node(name, "IdentityN", body.outputs, attrs, device, control_inputs=_dedup(keeper_control))
    else:
        graph.add_node(name, "NoOp", (), {}, device, control_inputs=_dedup(keeper_control))
    for consumer in control_consumers:
        graph.add_control_input(consumer, name)


def check_inlinable(ir: GraphDefIR, fn: Function, n_inputs: int) -> Dict[str, list]:
    """Raise InliningError unless `fn` can be inlined with `n_inputs` inputs; its body's output ports by node."""
    args = list(fn.header.signature.input_arg)
    outs = list(fn.header.signature.output_arg)
    if any(a.number_attr or a.type_list_attr or a.type_attr for a in args + outs):
        raise InliningError("cannot inline %s: polymorphic signature" % fn.name)
    if n_inputs != len(args):
        raise InliningError("cannot inline %s: %d inputs for %d arguments" % (fn.name, n_inputs, len(args)))
    arg_names = {a.name for a in args}
    ports: Dict[str, list] = {}
    for n in fn.nodes:
        op_def = op_def_for(ir, n.op)
        if op_def is None:
            raise InliningError("cannot inline %s: op %s of %s is unknown" % (fn.name, n.op, n.name))
        ports[n.name] = output_ports(op_def, n, True)
    for t in [t for n in fn.nodes for t in fn.inputs(n.name)] + list(fn.ret.values()):
        known = t.node in arg_names if t.node not in ports else (t.port is None or t.port in ports[t.node])
        if not known:
            raise InliningError("cannot inline %s: %s names no tensor of the body" % (fn.name, t))
    missing = [a.name for a in outs if a.name not in fn.ret]
    if missing:
        raise InliningError("cannot inline %s: no result for %s" % (fn.name, ", ".join(missing)))
    return ports


def inline_body(ir: GraphDefIR, graph: Graph, fn: Function, inputs: List[Tensor], prefix: str,
                control_inputs: Iterable[str] = (), device: str = "", anchor_sources: bool = True,
                gate_name: str = "input_control_node") -> InlinedBody:
    """Copy `fn`'s body into `graph` under `prefix/`, reading `inputs` for its arguments.

    With control inputs, a NoOp `prefix/input_control_node` waits for them and
    every body node without a producer in the body waits for the NoOp. Without
    them, when `anchor_sources`, body nodes with no inputs at all wait for an
    Identity of the first input, so they run in the caller's frame and branch.
    """
    args = list(fn.header.signature.input_arg)
    ports_cache = check_inlinable(ir, fn, len(inputs))
    arg_map = {a.name: t for a, t in zip(args, inputs)}
    body_nodes = list(fn.nodes)
    taken: Set[str] = set()

    def fresh(base: str) -> str:
        name, i = base, 0
        while graph.nx.has_node(name) or name in taken:
            i += 1
            name = "%s_%d" % (base, i)
        taken.add(name)
        return name

    names = {n.name: fresh("%s/%s" % (prefix, n.name)) for n in body_nodes}
    data_in = {n.name: fn.inputs(n.name) for n in body_nodes}
    control_in = {n.name: fn.control_inputs(n.name) for n in body_nodes}
    control_inputs = _dedup(control_inputs)
    sources = {n.name for n in body_nodes if not data_in[n.name] and not control_in[n.name]}
    gate = None
    if control_inputs:
        gate = fresh("%s/%s" % (prefix, gate_name))
        graph.add_node(gate, "NoOp", (), {}, device, control_inputs=control_inputs)
    elif anchor_sources and sources and inputs:
        gate = fresh("%s/%s" % (prefix, gate_name))
        graph.add_node(gate, "Identity", [inputs[0]], {"T": _type(_arg_type(args[0]))}, device)

    def host_tensor(t: Tensor) -> Tensor:
        if t.node not in names:
            return arg_map[t.node]
        ports = ports_cache[t.node]
        port = ports[0] if t.port is None else t.port
        return Tensor(names[t.node], port if graph.in_function else ports.index(port))

    for n in body_nodes:
        attrs = dict(n.attrs)
        if "_class" in attrs:
            colocation = _rename_colocation(attrs.pop("_class"), names)
            if colocation is not None:
                attrs["_class"] = colocation
        extra = None
        if n.extra is not None:
            extra = type(n.extra)()
            extra.CopyFrom(n.extra)
        data = [host_tensor(t) for t in data_in[n.name]]
        ctrl = [names[c] if c in names else arg_map[c].node for c in control_in[n.name]
                if c in names or c in arg_map]
        internal = any(t.node in names for t in data_in[n.name]) or any(c in names for c in control_in[n.name])
        if gate is not None and not internal and (control_inputs or n.name in sources):
            ctrl.append(gate)
        # inputs may name body nodes added later: networkx holds the edge until the node arrives
        graph.add_node(names[n.name], n.op, data, attrs, n.device or device, control_inputs=_dedup(ctrl), extra=extra)
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


def _type(dtype: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(type=dtype)


def _type_list(dtypes: List[int]) -> attr_value_pb2.AttrValue:
    value = attr_value_pb2.AttrValue()
    value.list.type.extend(dtypes)
    return value


def _dedup(names: Iterable[str]) -> List[str]:
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


def saved_object_functions(meta_graph, opset: Opset) -> List[str]:
    """Functions a TF 2 loader of the output looks up by name (the SavedModel object graph).

    Only TF 2.x targets read the object graph; for TF 1.x they need not survive.
    """
    if int(opset.release.split(".")[0]) < 2 or not meta_graph.HasField("object_graph_def"):
        return []
    return sorted(meta_graph.object_graph_def.concrete_functions)
