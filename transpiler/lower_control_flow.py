"""Lower functional control flow to TF 1.x dataflow control flow.

``If``/``StatelessIf`` become Switch/Merge conditionals, ``Case``/``StatelessCase``
an N-way version of the same, ``While``/``StatelessWhile`` an
Enter/Merge/Switch/LoopCond/NextIteration/Exit frame; the branch and body
functions are inlined into the graph (transpiler/inline.py). The shapes follow
TensorFlow's own lowering (lower_if_op.cc, lower_while_op.cc):

If ``c = If(pred, x)``::

    switch_pred = Switch(pred, pred); pivot_t = Identity(switch_pred:1); pivot_f = Identity(switch_pred:0)
    then body reads Switch(x, pred):1 and waits for pivot_t; else body reads :0 and waits for pivot_f
    output k = Merge(then_k, else_k); branch_executed = Merge(pivot_t, pivot_f) after both bodies' control outputs
    `c` stays as IdentityN(outputs) after branch_executed (NoOp when there are no outputs)

While ``w = While(x)``, frame named after the node, ``parallel_iterations`` from its attr::

    Enter(x) -> Merge(Enter, NextIteration) -> cond body -> LoopCond -> Switch(Merge, LoopCond)
    Switch:1 -> body (after Identity(Switch_0:1)) -> NextIteration;  Switch:0 -> Exit -> readers of w
    `w` stays as IdentityN(exits)

A loop variable the body returns unchanged (resource handles of captured
variables, loop bounds) is loop invariant: a constant Enter (``is_constant``)
with no Merge/Switch/NextIteration/Exit, and readers after the loop read the
input itself, ordered after the loop's exits.

Every inlined body node without a producer in its body waits (control edge) for
the branch pivot or the loop's Merge/Switch, so constants run in the right
frame and branch. Loops in loops and loops in branches come out right because
each lowered body is ordinary graph again, lowered on the next round.

What is lowered: functional ops the target lacks or knows without an attr the
node sets (output_shapes, parallel_iterations), ops whose functions hold such
nodes, and for TF 1.x targets every functional op that reaches the top graph
(TF 1.x lowers them itself only partly). TensorLists the target cannot take
(older signatures before TF 1.14; TF 1.8's importer does not even know them)
become dense tensors (see the TensorList section below), which needs every
loop that carries them lowered first.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from .errors import TranspileError
from .inline import (CALL_OPS, InlineFunctions, InliningError, attr_functions, check_inlinable, inline_body,
                     prune_functions)
from .ir import GraphDefIR, Node, Tensor
from .protos import attr_value_pb2, tensor_pb2, types_pb2
from .releases import Opset
from .rewrite import Firing

IF_OPS = ("If", "StatelessIf")
WHILE_OPS = ("While", "StatelessWhile")
CASE_OPS = ("Case", "StatelessCase")
CONTROL_FLOW_OPS = IF_OPS + WHILE_OPS + CASE_OPS

#: TF's default for While.parallel_iterations.
DEFAULT_PARALLEL_ITERATIONS = 10

MAX_ROUNDS = 10000


class LoweringError(TranspileError):
    """Functional control flow this pass cannot lower (the validator then names it)."""


def target_rejects(node: Node, opset: Opset) -> bool:
    """The target lacks the op, or has it without an attr this node sets to a value other than its default."""
    target = opset.op(node.op)
    if target is None:
        return True
    known = {a.name for a in target.attr}
    catalog = opset.catalog
    for attr, value in node.attrs.items():
        if attr.startswith("_") or attr in known:
            continue
        newer = catalog.first_release(node.op, attr, after=opset.release)
        found = next((a for a in catalog.op_def(node.op, newer).attr if a.name == attr), None) if newer else None
        if found is None or not found.HasField("default_value") or found.default_value != value:
            return True
    return False


def needs_lowering(node: Node, opset: Opset) -> bool:
    """Functional control flow the target cannot take as it is (op or attrs unknown to it)."""
    return node.op in CONTROL_FLOW_OPS and target_rejects(node, opset)


def lowering_required(ir: GraphDefIR, opset: Opset) -> bool:
    """Anything, anywhere (graph or function), that only lowering makes loadable."""
    return any(needs_lowering(n, opset) for _, g in ir.graphs() for n in g.nodes) or \
        tensor_lists_need_lowering(ir, opset, everywhere=True)


class LowerControlFlow:
    """Callable pass: ``LowerControlFlow(opset, force=False)(ir)``.

    Lowers functional control flow in the top graph when the target cannot run
    it as is (or always, with `force`), to a fixpoint: bodies brought in may hold
    more control flow and calls, which are lowered and inlined in turn. Then
    functions nothing references are pruned (`keep` names exceptions).
    """

    def __init__(self, opset: Opset, force: bool = False, keep: Iterable[str] = ()):
        self.opset = opset
        self.force = force
        self.keep = list(keep)
        #: names of the nodes lowered, by op.
        self.lowered: Dict[str, List[str]] = {}
        #: (function, node) -> why it was not lowered (the validator reports the node), as RulePass.refused.
        self.refused: Dict[tuple, str] = {}
        #: how many TensorList ops became dense-tensor ops.
        self.dense_lists = 0
        self.lower_every_loop = False
        #: TF 1.x runtimes lower functional ops themselves only partly (TF 1.14 refuses Case marked
        #: _lower_using_switch_merge; before TF 2.0 control flow v2 was opt-in): whatever reaches the top
        #: graph is lowered here. Inside functions they run through the function runtime, which works.
        self.tf1 = int(opset.release.split(".")[0]) < 2
        self.tainted: set = set()
        #: what happened, for the report (same form as the rules pass's log).
        self.firings: List[Firing] = []

    def wanted(self, node: Node) -> bool:
        """Lower `node`: the target rejects it, or it runs functions that hold something to lower."""
        if node.op not in CONTROL_FLOW_OPS or (None, node.name) in self.refused:
            return False
        if self.force or self.lower_every_loop or self.tf1 or needs_lowering(node, self.opset):
            return True
        return any(f in self.tainted for f in attr_functions(node.attrs.values()))

    def __call__(self, ir: GraphDefIR, opset: Optional[Opset] = None) -> None:
        # TensorLists the target cannot take must become dense, and a list carried by a functional loop
        # only becomes plain dataflow once the loop is lowered: then every loop goes.
        self.lower_every_loop = tensor_lists_need_lowering(ir, self.opset, everywhere=True)
        self.tainted = self._tainted_functions(ir)
        if any(self.wanted(n) for n in ir.nodes):
            self.lower_all(ir)
        if tensor_lists_need_lowering(ir, self.opset) or (self.force and any(n.op in LIST_OPS for n in ir.nodes)):
            try:
                dense = DenseTensorLists(ir)
                self.dense_lists = dense.run()
                self.firings.extend(Firing("tensor-list-to-dense", name, op, None, "%s -> dense tensor ops" % op)
                                    for name, op in dense.rewritten)
            except LoweringError as exc:
                for node in ir.nodes:
                    if node.op in LIST_OPS or node.op.startswith("TensorList"):
                        self.refused[(None, node.name)] = "TensorLists kept: %s" % exc

    def _tainted_functions(self, ir: GraphDefIR) -> set:
        """Functions that hold (directly or through the functions they name) a node needing lowering."""
        uses = {name: set(attr_functions(a for n in fn.nodes for a in n.attrs.values())) |
                {n.op for n in fn.nodes if n.op in ir.functions} for name, fn in ir.functions.items()}
        tainted = {name for name, fn in ir.functions.items() if any(needs_lowering(n, self.opset) for n in fn.nodes)}
        changed = True
        while changed:
            grown = {name for name, used in uses.items() if used & tainted} - tainted
            tainted |= grown
            changed = bool(grown)
        return tainted

    def lower_all(self, ir: GraphDefIR) -> None:
        inliner = InlineFunctions(self.opset, force=True)
        for _ in range(MAX_ROUNDS):
            todo = [n.name for n in ir.nodes if self.wanted(n)]
            if not todo:
                break
            for name in todo:
                if name in ir and self.wanted(ir[name]):
                    self.lower(ir, name)
            if any(n.op in CALL_OPS or n.op in ir.functions for n in ir.nodes):
                inliner.inline_graph(ir, ir, None)
        else:
            raise LoweringError("control flow lowering does not converge")
        self.firings += inliner.firings
        self.refused.update(inliner.refused)
        prune_functions(ir, self.keep)

    def lower(self, ir: GraphDefIR, name: str) -> None:
        op = ir[name].op
        try:
            if op in WHILE_OPS:
                _WhileLowering(ir, name).run()
            elif op in IF_OPS:
                _IfLowering(ir, name).run()
            else:
                _CaseLowering(ir, name).run()
        except LoweringError as exc:
            self.refused[(None, name)] = "not lowered: %s" % exc
            return
        self.lowered.setdefault(op, []).append(name)
        shape = "Enter/Merge/Switch/LoopCond/NextIteration/Exit frame" if op in WHILE_OPS else "Switch/Merge"
        self.firings.append(Firing("lower-functional-control-flow", name, op, None, "%s -> %s" % (op, shape)))


# ---------------------------------------------------------------------------
# attr helpers


def _type(dtype: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(type=dtype)


def _types(dtypes: List[int]) -> attr_value_pb2.AttrValue:
    value = attr_value_pb2.AttrValue()
    value.list.type.extend(dtypes)
    return value


def _int(i: int) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(i=i)


def _str(s: str) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(s=s.encode())


def _bool(b: bool) -> attr_value_pb2.AttrValue:
    return attr_value_pb2.AttrValue(b=b)


def _int32_const(value: int) -> Dict[str, attr_value_pb2.AttrValue]:
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    tensor.tensor_shape.SetInParent()
    tensor.int_val.append(value)
    return {"dtype": _type(types_pb2.DT_INT32), "value": attr_value_pb2.AttrValue(tensor=tensor)}


class _Lowering:
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
        self.hidden = self.ir.unique_name(self.name + "/_lowered")
        self.ir.rename(self.name, self.hidden)

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
        for i, tensor in enumerate(outputs):
            ir.replace_uses(Tensor(hidden, i), tensor)
        stale = sorted(p for p in ir.used_ports(hidden))
        if stale:
            raise TranspileError("lowering %s left readers of outputs %s" % (self.name, stale))
        control_consumers = ir.control_consumers(hidden)
        shapes = self.node.attrs.get("_output_shapes")
        ir.remove_node(hidden)
        if outputs:
            attrs = {"T": _types(dtypes)}
            if shapes is not None:
                attrs["_output_shapes"] = shapes
            ir.add_node(self.name, "IdentityN", outputs, attrs, self.device, control_inputs=keeper_control)
        else:
            ir.add_node(self.name, "NoOp", (), {}, self.device, control_inputs=keeper_control)
        for consumer in control_consumers:
            ir.add_control_input(consumer, self.name)


class _IfLowering(_Lowering):
    def run(self) -> None:
        node = self.node
        if "Tcond" in node.attrs and node.attrs["Tcond"].type != types_pb2.DT_BOOL:
            raise LoweringError("If %s: predicate of type %s (only bool is lowered)"
                                % (self.name, types_pb2.DataType.Name(node.attrs["Tcond"].type)))
        then_fn = self.function(node.attrs["then_branch"], len(self.inputs) - 1)
        else_fn = self.function(node.attrs["else_branch"], len(self.inputs) - 1)
        tin = list(node.attrs["Tin"].list.type)
        tout = list(node.attrs["Tout"].list.type)
        pred, args = self.inputs[0], self.inputs[1:]
        self.begin()
        bool_t = {"T": _type(types_pb2.DT_BOOL)}
        switch_pred = self.add("switch_pred", "Switch", [pred, pred], bool_t, control=self.control)
        pivot_f = self.add("pivot_f", "Identity", [Tensor(switch_pred, 0)], bool_t)
        pivot_t = self.add("pivot_t", "Identity", [Tensor(switch_pred, 1)], bool_t)
        switches = [self.add("switch_%d" % j, "Switch", [arg, pred], {"T": _type(tin[j])})
                    for j, arg in enumerate(args)]
        then = inline_body(self.ir, self.ir, then_fn, [Tensor(s, 1) for s in switches], self.new("then"),
                           control_inputs=[pivot_t], device=self.device)
        other = inline_body(self.ir, self.ir, else_fn, [Tensor(s, 0) for s in switches], self.new("else"),
                            control_inputs=[pivot_f], device=self.device)
        merges = [Tensor(self.add("output_%d" % k, "Merge", [t, e], {"T": _type(tout[k]), "N": _int(2)}), 0)
                  for k, (t, e) in enumerate(zip(then.outputs, other.outputs))]
        executed = self.add("branch_executed", "Merge", [Tensor(pivot_t, 0), Tensor(pivot_f, 0)],
                            {"T": _type(types_pb2.DT_BOOL), "N": _int(2)},
                            control=then.control_outputs + other.control_outputs)
        self.finish(merges, tout, [executed])


class _CaseLowering(_Lowering):
    """Case(i, x): branch k runs when clamp(i) == k, where out-of-range i picks the last branch."""

    def run(self) -> None:
        node = self.node
        branches = [self.function(attr_value_pb2.AttrValue(func=f), len(self.inputs) - 1)
                    for f in node.attrs["branches"].list.func]
        if not branches:
            raise LoweringError("Case %s has no branches" % self.name)
        tin = list(node.attrs["Tin"].list.type)
        tout = list(node.attrs["Tout"].list.type)
        index, args = self.inputs[0], self.inputs[1:]
        n = len(branches)
        self.begin()
        int_t = {"T": _type(types_pb2.DT_INT32)}
        bool_t = {"T": _type(types_pb2.DT_BOOL)}
        anchor = self.add("branch_index", "Identity", [index], int_t, control=self.control)
        zero = self.add("zero", "Const", (), _int32_const(0), control=[anchor])
        count = self.add("num_branches", "Const", (), _int32_const(n), control=[anchor])
        last = self.add("last_branch", "Const", (), _int32_const(n - 1), control=[anchor])
        ge = self.add("not_negative", "GreaterEqual", [Tensor(anchor), Tensor(zero)], int_t)
        lt = self.add("below_count", "Less", [Tensor(anchor), Tensor(count)], int_t)
        ok = self.add("in_range", "LogicalAnd", [Tensor(ge), Tensor(lt)])
        clamped = self.add("clamped_index", "Select", [Tensor(ok), Tensor(anchor), Tensor(last)], int_t)
        pivots, bodies = [], []
        for k, fn in enumerate(branches):
            ck = self.add("branch_%d/index" % k, "Const", (), _int32_const(k), control=[anchor])
            pred = Tensor(self.add("branch_%d/pred" % k, "Equal", [Tensor(clamped), Tensor(ck)], int_t))
            switch_pred = self.add("branch_%d/switch_pred" % k, "Switch", [pred, pred], bool_t)
            pivot = self.add("branch_%d/pivot" % k, "Identity", [Tensor(switch_pred, 1)], bool_t)
            switches = [self.add("branch_%d/switch_%d" % (k, j), "Switch", [arg, pred], {"T": _type(tin[j])})
                        for j, arg in enumerate(args)]
            bodies.append(inline_body(self.ir, self.ir, fn, [Tensor(s, 1) for s in switches],
                                      self.new("branch_%d/body" % k), control_inputs=[pivot], device=self.device))
            pivots.append(Tensor(pivot, 0))
        merges = [Tensor(self.add("output_%d" % m, "Merge", [b.outputs[m] for b in bodies],
                                  {"T": _type(tout[m]), "N": _int(n)}), 0) for m in range(len(tout))]
        executed = self.add("branch_executed", "Merge", pivots, {"T": _type(types_pb2.DT_BOOL), "N": _int(n)},
                            control=[c for b in bodies for c in b.control_outputs])
        self.finish(merges, tout, [executed])


class _WhileLowering(_Lowering):
    def run(self) -> None:
        node, ir = self.node, self.ir
        cond_fn = self.function(node.attrs["cond"], len(self.inputs))
        body_fn = self.function(node.attrs["body"], len(self.inputs))
        dtypes = list(node.attrs["T"].list.type)
        pi = node.attrs["parallel_iterations"].i if "parallel_iterations" in node.attrs \
            else DEFAULT_PARALLEL_ITERATIONS
        n = len(self.inputs)
        if n == 0:
            raise LoweringError("While %s has no loop variables" % self.name)
        args = [a.name for a in body_fn.header.signature.input_arg]
        outs = [a.name for a in body_fn.header.signature.output_arg]
        if len(args) != n or len(outs) != n:
            raise LoweringError("While %s: body %s does not take and return the %d loop variables"
                                % (self.name, body_fn.name, n))
        if len(cond_fn.header.signature.output_arg) != 1 or len(cond_fn.header.signature.input_arg) != n:
            raise LoweringError("While %s: cond %s does not map the %d loop variables to one predicate"
                                % (self.name, cond_fn.name, n))
        invariant = [body_fn.ret.get(outs[i]) == Tensor(args[i], None) for i in range(n)]
        if all(invariant):
            invariant = [False] * n
        self.begin()
        frame = self.name
        control = self.control
        if control:
            control = [self.add("LoopControlInputs", "NoOp", control=control)]
        enters, values = [], []
        for i, tensor in enumerate(self.inputs):
            enter = self.add("enter_%d" % i if i else "enter", "Enter", [tensor],
                             {"T": _type(dtypes[i]), "frame_name": _str(frame), "is_constant": _bool(invariant[i]),
                              "parallel_iterations": _int(pi)}, control=control)
            enters.append(enter)
        merges: Dict[int, str] = {}
        for i, enter in enumerate(enters):
            if invariant[i]:
                values.append(Tensor(enter, 0))
                continue
            merges[i] = self.add("merge_%d" % i if i else "merge", "Merge", [Tensor(enter), Tensor(enter)],
                                 {"T": _type(dtypes[i]), "N": _int(2)})
            values.append(Tensor(merges[i], 0))
        first = min(merges)
        cond = inline_body(ir, ir, cond_fn, values, self.new("cond"), control_inputs=[merges[first]],
                           device=self.device)
        loop_cond = self.add("LoopCond", "LoopCond", [cond.outputs[0]], control=cond.control_outputs)
        switches: Dict[int, str] = {}
        body_inputs = []
        for i in range(n):
            if invariant[i]:
                body_inputs.append(values[i])
                continue
            switches[i] = self.add("switch_%d" % i if i else "switch", "Switch", [values[i], Tensor(loop_cond)],
                                   {"T": _type(dtypes[i])})
            body_inputs.append(Tensor(switches[i], 1))
        pivot = self.add("loop_body_control", "Identity", [Tensor(switches[first], 1)], {"T": _type(dtypes[first])})
        body = inline_body(ir, ir, body_fn, body_inputs, self.new("body"), control_inputs=[pivot],
                           device=self.device)
        exits: Dict[int, str] = {}
        for i in sorted(switches):
            exits[i] = self.add("exit_%d" % i if i else "exit", "Exit", [Tensor(switches[i], 0)],
                                {"T": _type(dtypes[i])})
            next_it = self.add("next_iteration_%d" % i if i else "next_iteration", "NextIteration",
                               [body.outputs[i]], {"T": _type(dtypes[i])}, control=body.control_outputs)
            ir.set_inputs(merges[i], [Tensor(enters[i]), Tensor(next_it)])
        outputs = []
        after_loop = sorted(exits.values())
        for i in range(n):
            if not invariant[i]:
                outputs.append(Tensor(exits[i], 0))
            elif ir.consumers(Tensor(self.hidden, i)):
                outputs.append(Tensor(self.add("invariant_%d" % i, "Identity", [self.inputs[i]],
                                               {"T": _type(dtypes[i])}, control=after_loop)))
            else:
                outputs.append(self.inputs[i])
        self.finish(outputs, dtypes, [])


# ---------------------------------------------------------------------------
# TensorList -> dense tensors
#
# TF 2 loops carry TensorLists (DT_VARIANT): Keras RNNs read their input with
# TensorListGetItem and write their outputs with TensorListSetItem. Releases
# before TF 1.13 lack the list ops' current signatures (TensorListGetItem and
# TensorListStack gained an element_shape input) and TF 1.4/1.5 lack them
# altogether; TF 1.8's Python importer does not even know them unless
# list_ops is imported. Once loops are lowered, a list is ordinary dataflow, so
# each list tensor becomes a dense tensor of its elements, stacked on axis 0:
#
#   TensorListReserve(shape, n)      -> Fill([n] + known dims (unknown ones 0), 0)
#   TensorListFromTensor(t)          -> t
#   TensorListSetItem(l, i, x)       -> l padded to x's shape on first write; l[:i] ++ [x] ++ l[i+1:]
#   TensorListPushBack(l, x)         -> l padded ++ [x]
#   TensorListGetItem(l, i)          -> GatherV2(l, i, 0);  TensorListGather(l, ix) -> GatherV2(l, ix, 0)
#   TensorListStack(l)               -> l;  TensorListLength(l) -> Shape(l)[0]
#   TensorListElementShape(l)        -> Shape(l)[1:];  TensorListPopBack(l) -> (l[:-1], l[-1])
#
# Writes copy the list (O(n) each), so a loop writing all n elements is O(n^2)
# in element copies; TensorArrayV3 would be O(n) but refuses a second write to
# an index, which Keras does on every step for return_sequences=False.
# Enter/Merge/Switch/Exit/NextIteration/Identity/IdentityN carrying a list get
# the element dtype. Anything else reading a list refuses the whole rewrite.

LIST_MAKERS = ("TensorListReserve", "TensorListFromTensor", "EmptyTensorList")
LIST_UPDATERS = ("TensorListSetItem", "TensorListPushBack", "TensorListPopBack")
LIST_READERS = ("TensorListGetItem", "TensorListStack", "TensorListLength", "TensorListElementShape",
                "TensorListGather")
LIST_OPS = LIST_MAKERS + LIST_UPDATERS + LIST_READERS
LIST_PASS_THROUGH = ("Identity", "Enter", "Merge", "Switch", "Exit", "NextIteration", "IdentityN", "Snapshot")


def tensor_lists_need_lowering(ir: GraphDefIR, opset: Opset, everywhere: bool = False) -> bool:
    """The top graph (or, `everywhere`, any function) uses a TensorList op the target lacks or knows
    with other inputs."""
    catalog = opset.catalog
    graphs = [g for _, g in ir.graphs()] if everywhere else [ir]
    for op in {n.op for g in graphs for n in g.nodes if n.op.startswith("TensorList") or n.op == "EmptyTensorList"}:
        target = opset.op(op)
        last = catalog.last_release(op)
        source = catalog.op_def(op, last) if last else None
        if target is None or source is None or \
                [a.name for a in target.input_arg] != [a.name for a in source.input_arg]:
            return True
    return False


def _const_ints(ir: GraphDefIR, tensor: Tensor) -> Optional[List[int]]:
    """The values of a Const int32/int64 tensor (None when not a Const)."""
    if tensor.node not in ir or ir[tensor.node].op != "Const":
        return None
    import numpy as np

    proto = ir[tensor.node].attrs["value"].tensor
    dtype = {types_pb2.DT_INT32: np.int32, types_pb2.DT_INT64: np.int64}.get(proto.dtype)
    if dtype is None:
        return None
    shape = [d.size for d in proto.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype=dtype).tolist()
    else:
        values = list(proto.int_val if proto.dtype == types_pb2.DT_INT32 else proto.int64_val)
        values = (values + values[-1:] * count)[:count] if values else [0] * count
    return values if shape else values[:1]


def _const_attrs(dtype: int, values, shape) -> Dict[str, attr_value_pb2.AttrValue]:
    from .attrs import dtype_name, make_tensor

    tensor = make_tensor({"dtype": dtype_name(dtype), "shape": shape, "values": values})
    return {"dtype": _type(dtype), "value": attr_value_pb2.AttrValue(tensor=tensor)}


def _known_rank(ir: GraphDefIR, tensor: Tensor) -> Optional[int]:
    """The rank its producer's `_output_shapes` records for `tensor` (TF 2 function bodies keep them)."""
    if tensor.node not in ir or not isinstance(tensor.port, int):
        return None
    shapes = ir[tensor.node].attrs.get("_output_shapes")
    if shapes is None or tensor.port >= len(shapes.list.shape):
        return None
    shape = shapes.list.shape[tensor.port]
    return None if shape.unknown_rank else len(shape.dim)


class DenseTensorLists:
    """Rewrite TensorList ops of the top graph into dense tensors (see above); all or nothing."""

    def __init__(self, ir: GraphDefIR):
        self.ir = ir
        #: list tensor -> element dtype
        self.lists: Dict[Tensor, int] = {}
        self.pass_through: Dict[str, Dict[int, int]] = {}
        #: (node, op) of every TensorList node rewritten (or dropped, when unused).
        self.rewritten: List[tuple] = []

    # ---- analysis ----------------------------------------------------------
    def analyze(self) -> None:
        ir = self.ir
        self.unused = [n.name for n in ir.nodes if n.op in LIST_OPS and not ir.nx.out_degree(n.name)]
        family: Dict[str, str] = {}  # list op -> its family (the maker it descends from), union-find

        def find(name: str) -> str:
            while family[name] != name:
                name = family[name]
            return name

        todo = []
        for node in ir.nodes:
            if node.name in self.unused:
                continue
            if node.op in LIST_MAKERS:
                family[node.name] = node.name
                todo.append((Tensor(node.name, 0), node.attrs["element_dtype"].type, node.name))
            elif (node.op.startswith("TensorList") or node.op == "EmptyTensorList") and node.op not in LIST_OPS:
                raise LoweringError("%s (%s): no dense form of this TensorList op" % (node.name, node.op))
        origin: Dict[Tensor, str] = {}
        while todo:
            tensor, dtype, fam = todo.pop()
            if tensor in self.lists:
                if self.lists[tensor] != dtype:
                    raise LoweringError("%s carries lists of two element types" % tensor)
                family[find(fam)] = find(origin[tensor])
                continue
            self.lists[tensor] = dtype
            origin[tensor] = fam
            for consumer, index in ir.consumers(tensor):
                node = ir[consumer]
                if node.op in LIST_OPS and index == 0 and node.op not in LIST_MAKERS:
                    if "element_dtype" in node.attrs and node.attrs["element_dtype"].type != dtype:
                        raise LoweringError("%s reads a list of another element type" % consumer)
                    family.setdefault(consumer, fam)
                    if node.op in LIST_UPDATERS:
                        todo.append((Tensor(consumer, 0), dtype, fam))
                    continue
                if node.op not in LIST_PASS_THROUGH or (node.op == "Switch" and index != 0):
                    raise LoweringError("%s (%s) reads TensorList %s" % (consumer, node.op, tensor))
                ports = {"Switch": [0, 1], "IdentityN": [index]}.get(node.op, [0])
                self.pass_through.setdefault(consumer, {})
                for port in ports:
                    self.pass_through[consumer][port] = dtype
                    todo.append((Tensor(consumer, port), dtype, fam))
        for name in self.pass_through:
            node = ir[name]
            for i, t in enumerate(ir.inputs(name)):
                if self._input_is_variant(node, i) and t not in self.lists:
                    raise LoweringError("%s (%s) mixes a TensorList with another variant %s" % (name, node.op, t))
        ranks: Dict[str, set] = {}
        for node in ir.nodes:
            if node.op not in LIST_OPS or node.name in self.unused:
                continue
            if node.name not in family:
                raise LoweringError("%s (%s) reads a TensorList made outside the graph" % (node.name, node.op))
            if node.op == "TensorListSetItem" and "resize_if_index_out_of_bounds" in node.attrs and \
                    node.attrs["resize_if_index_out_of_bounds"].b:
                raise LoweringError("%s: resize_if_index_out_of_bounds has no dense form" % node.name)
            rank = self._element_rank(node)
            if rank is not None:
                ranks.setdefault(find(node.name), set()).add(rank)
        makers: Dict[str, List[str]] = {}
        for node in ir.nodes:
            if node.op in LIST_MAKERS and node.name not in self.unused:
                makers.setdefault(find(node.name), []).append(node.name)
        for node in ir.nodes:
            # the declared element shape, which Shape(list)[1:] only equals when it is fully known
            if node.op == "TensorListElementShape" and node.name not in self.unused:
                for maker in makers.get(find(node.name), []):
                    shape = ir.inputs(maker)[1 if ir[maker].op == "TensorListFromTensor" else 0]
                    dims = _const_ints(ir, shape)
                    if dims is None or not ir[shape.node].attrs["value"].tensor.tensor_shape.dim or \
                            any(d < 0 for d in dims):
                        raise LoweringError("%s: the element shape of %s is not fully known" % (node.name, maker))
        self.ranks: Dict[str, int] = {}
        for node in ir.nodes:
            if node.op in ("TensorListReserve", "EmptyTensorList") and node.name not in self.unused:
                found = ranks.get(find(node.name), set())
                if len(found) != 1:
                    raise LoweringError("%s: element rank %s" % (
                        node.name, "unknown (no 1-D Const element shape, no written shapes)" if not found
                        else "differs between writes: %s" % sorted(found)))
                self.ranks[node.name] = found.pop()

    def _element_rank(self, node: Node) -> Optional[int]:
        """What `node` tells about the rank of its list's elements (const element shapes, `_output_shapes`)."""
        ir = self.ir
        inputs = ir.inputs(node.name)
        shape_input = {"TensorListReserve": 0, "EmptyTensorList": 0, "TensorListFromTensor": 1,
                       "TensorListGetItem": 2, "TensorListStack": 1, "TensorListGather": 2}.get(node.op)
        if shape_input is not None and shape_input < len(inputs):
            const = inputs[shape_input]
            dims = _const_ints(ir, const)
            if dims is not None and ir[const.node].attrs["value"].tensor.tensor_shape.dim:
                return len(dims)
        item = {"TensorListSetItem": 2, "TensorListPushBack": 1, "TensorListFromTensor": 0}.get(node.op)
        shape = _known_rank(ir, inputs[item]) if item is not None else None
        if shape is not None:
            return shape - (1 if node.op == "TensorListFromTensor" else 0)
        if node.op == "TensorListGetItem":
            return _known_rank(ir, Tensor(node.name, 0))
        if node.op == "TensorListStack":
            rank = _known_rank(ir, Tensor(node.name, 0))
            return rank - 1 if rank else None
        return None

    def _input_is_variant(self, node: Node, index: int) -> bool:
        if node.op == "IdentityN":
            return node.attrs["T"].list.type[index] == types_pb2.DT_VARIANT
        if node.op == "Switch" and index == 1:
            return False
        if node.op in ("Merge",) or index == 0:
            return node.attrs.get("T") is not None and node.attrs["T"].type == types_pb2.DT_VARIANT
        return False

    # ---- rewriting ---------------------------------------------------------
    def run(self) -> int:
        self.analyze()
        ir = self.ir
        for name, ports in self.pass_through.items():
            node = ir[name]
            if node.op == "IdentityN":
                types = list(node.attrs["T"].list.type)
                for port, dtype in ports.items():
                    types[port] = dtype
                node.attrs["T"] = _types(types)
            else:
                node.attrs["T"] = _type(next(iter(ports.values())))
            node.attrs.pop("_output_shapes", None)
        for name in self.unused:  # nothing reads them: no dense form needed
            self.rewritten.append((name, ir[name].op))
            ir.remove_node(name)
        dtypes = {}
        for node in [n for n in ir.nodes if n.op in LIST_OPS]:  # element types, before any input moves
            dtypes[node.name] = node.attrs["element_dtype"].type if node.op in LIST_MAKERS \
                else self.lists[ir.inputs(node.name)[0]]
        for node in [n for n in ir.nodes if n.op in LIST_OPS]:
            self.rewritten.append((node.name, node.op))
            getattr(self, "_" + node.op)(_ListRewrite(ir, node.name, dtypes[node.name]))
        return len(self.rewritten)

    def _TensorListReserve(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[1], types_pb2.DT_INT32)
        rw.finish([rw.fill_list(Tensor(anchor), self._dims(rw), anchor)])

    def _EmptyTensorList(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[1], types_pb2.DT_INT32)
        zero = rw.const("zero_elements", types_pb2.DT_INT32, [0], [], anchor)
        rw.finish([rw.fill_list(Tensor(zero), self._dims(rw), anchor)])

    def _dims(self, rw: "_ListRewrite") -> List[int]:
        """Element dims of a new list: the known ones, 0 for the rest (grown by the first write)."""
        const = rw.inputs[0]
        dims = _const_ints(rw.ir, const)
        if dims is not None and rw.ir[const.node].attrs["value"].tensor.tensor_shape.dim:
            return [max(int(d), 0) for d in dims]
        return [0] * self.ranks[rw.name]

    def _TensorListFromTensor(self, rw: "_ListRewrite") -> None:
        rw.finish([Tensor(rw.add(None, "Identity", [rw.inputs[0]], {"T": _type(rw.dtype)}, rw.control))])

    def _TensorListSetItem(self, rw: "_ListRewrite") -> None:
        lst, index, item = rw.inputs[:3]
        anchor = rw.anchor(lst, rw.dtype)
        padded = rw.pad_to_item(Tensor(anchor), item, anchor)
        item_shape = rw.shape(item)
        minus_one = rw.const("minus_one", types_pb2.DT_INT32, [-1], [], anchor)
        one = rw.const("one", types_pb2.DT_INT32, [1], [], anchor)
        index_1d = rw.as_vector(index, anchor)
        rest = rw.add("rest_dims", "Fill", [Tensor(rw.shape(Tensor(item_shape), types_pb2.DT_INT32)),
                                            Tensor(minus_one)],
                      {"T": _type(types_pb2.DT_INT32)})
        head_size = rw.concat("head_size", [index_1d, Tensor(rest)], types_pb2.DT_INT32, anchor)
        zeros = rw.add("origin", "ZerosLike", [Tensor(rw.shape(padded))], {"T": _type(types_pb2.DT_INT32)})
        head = rw.add("head", "Slice", [padded, Tensor(zeros), Tensor(head_size)],
                      {"T": _type(rw.dtype), "Index": _type(types_pb2.DT_INT32)})
        next_index = rw.add("next_index", "Add", [index_1d, Tensor(one)], {"T": _type(types_pb2.DT_INT32)})
        tail_begin = rw.concat("tail_begin", [Tensor(next_index), Tensor(rw.add(
            "item_origin", "ZerosLike", [Tensor(item_shape)], {"T": _type(types_pb2.DT_INT32)}))],
            types_pb2.DT_INT32, anchor)
        all_dims = rw.add("all_dims", "Fill", [Tensor(rw.shape(Tensor(rw.shape(padded)), types_pb2.DT_INT32)),
                                               Tensor(minus_one)],
                          {"T": _type(types_pb2.DT_INT32)})
        tail = rw.add("tail", "Slice", [padded, Tensor(tail_begin), Tensor(all_dims)],
                      {"T": _type(rw.dtype), "Index": _type(types_pb2.DT_INT32)})
        row = rw.expand(item, anchor)
        rw.finish([rw.concat(None, [Tensor(head), row, Tensor(tail)], rw.dtype, anchor)])

    def _TensorListPushBack(self, rw: "_ListRewrite") -> None:
        lst, item = rw.inputs[:2]
        anchor = rw.anchor(lst, rw.dtype)
        padded = rw.pad_to_item(Tensor(anchor), item, anchor)
        rw.finish([rw.concat(None, [padded, rw.expand(item, anchor)], rw.dtype, anchor)])

    def _TensorListPopBack(self, rw: "_ListRewrite") -> None:
        lst = rw.inputs[0]
        anchor = rw.anchor(lst, rw.dtype)
        length = rw.length(Tensor(anchor), anchor)
        one = rw.const("one", types_pb2.DT_INT32, [1], [], anchor)
        last = rw.add("last_index", "Sub", [Tensor(length), Tensor(one)], {"T": _type(types_pb2.DT_INT32)})
        item = rw.gather(Tensor(anchor), Tensor(last), anchor, "item")
        minus_one = rw.const("minus_one", types_pb2.DT_INT32, [-1], [], anchor)
        rank = rw.shape(Tensor(rw.shape(Tensor(anchor))), types_pb2.DT_INT32)
        rest_rank = rw.add("rest_rank", "Sub", [Tensor(rank), Tensor(one)], {"T": _type(types_pb2.DT_INT32)})
        rest = rw.add("rest_dims", "Fill", [Tensor(rest_rank), Tensor(minus_one)], {"T": _type(types_pb2.DT_INT32)})
        size = rw.concat("size", [rw.as_vector(Tensor(last), anchor), Tensor(rest)], types_pb2.DT_INT32, anchor)
        zeros = rw.add("origin", "ZerosLike", [Tensor(rw.shape(Tensor(anchor)))], {"T": _type(types_pb2.DT_INT32)})
        kept = rw.add(None, "Slice", [Tensor(anchor), Tensor(zeros), Tensor(size)],
                      {"T": _type(rw.dtype), "Index": _type(types_pb2.DT_INT32)})
        rw.finish([Tensor(kept), Tensor(item)])

    def _TensorListGetItem(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        rw.finish([Tensor(rw.gather(Tensor(anchor), rw.inputs[1], anchor, None))])

    _TensorListGather = _TensorListGetItem

    def _TensorListStack(self, rw: "_ListRewrite") -> None:
        rw.finish([Tensor(rw.add(None, "Identity", [rw.inputs[0]], {"T": _type(rw.dtype)}, rw.control))])

    def _TensorListLength(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        rw.finish([Tensor(rw.length(Tensor(anchor), anchor, final=True))])

    def _TensorListElementShape(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        out = rw.node.attrs["shape_type"].type
        shape = rw.add("list_shape", "Shape", [Tensor(anchor)], {"T": _type(rw.dtype), "out_type": _type(out)})
        begin = rw.const("begin", types_pb2.DT_INT32, [1], [1], anchor)
        end = rw.const("end", types_pb2.DT_INT32, [0], [1], anchor)
        rw.finish([Tensor(rw.add(None, "StridedSlice", [Tensor(shape), Tensor(begin), Tensor(end), Tensor(begin)],
                                 {"T": _type(out), "Index": _type(types_pb2.DT_INT32), "end_mask": _int(1)}))])


class _ListRewrite:
    """Builds the dense replacement of one TensorList node; the last node added takes its name."""

    def __init__(self, ir: GraphDefIR, name: str, dtype: int):
        self.ir = ir
        self.name = name
        self.node = ir[name]
        self.inputs = ir.inputs(name)
        self.control = ir.control_inputs(name)
        self.device = self.node.device
        self.dtype = dtype
        self.hidden = ir.unique_name(name + "/_tensor_list")
        ir.rename(name, self.hidden)

    def add(self, suffix: Optional[str], op: str, inputs, attrs, control=()) -> str:
        name = self.name if suffix is None else self.ir.unique_name("%s/%s" % (self.name, suffix))
        self.ir.add_node(name, op, list(inputs), attrs, self.device, control_inputs=list(control))
        return name

    def anchor(self, tensor: Tensor, dtype: int) -> str:
        """An Identity of an input: the frame/branch context for this rewrite's constants."""
        return self.add("list_input", "Identity", [tensor], {"T": _type(dtype)}, self.control)

    def const(self, suffix: str, dtype: int, values, shape, anchor: str) -> str:
        return self.add(suffix, "Const", (), _const_attrs(dtype, values, shape), [anchor])

    def shape(self, tensor: Tensor, dtype: Optional[int] = None) -> str:
        """Shape (int32) of `tensor`, which holds list elements unless `dtype` says otherwise."""
        dtype = self.dtype if dtype is None else dtype
        return self.add("shape", "Shape", [tensor], {"T": _type(dtype), "out_type": _type(types_pb2.DT_INT32)})

    def concat(self, suffix: Optional[str], values: List[Tensor], dtype: int, anchor: str) -> str:
        axis = self.const("axis", types_pb2.DT_INT32, [0], [], anchor)
        return self.add(suffix, "ConcatV2", list(values) + [Tensor(axis)],
                        {"T": _type(dtype), "N": _int(len(values)), "Tidx": _type(types_pb2.DT_INT32)})

    def as_vector(self, scalar: Tensor, anchor: str) -> Tensor:
        shape = self.const("vector_shape", types_pb2.DT_INT32, [1], [1], anchor)
        return Tensor(self.add("as_vector", "Reshape", [scalar, Tensor(shape)],
                               {"T": _type(types_pb2.DT_INT32), "Tshape": _type(types_pb2.DT_INT32)}))

    def expand(self, item: Tensor, anchor: str) -> Tensor:
        axis = self.const("row_axis", types_pb2.DT_INT32, [0], [], anchor)
        return Tensor(self.add("row", "ExpandDims", [item, Tensor(axis)],
                               {"T": _type(self.dtype), "Tdim": _type(types_pb2.DT_INT32)}))

    def gather(self, lst: Tensor, index: Tensor, anchor: str, suffix: Optional[str]) -> str:
        axis = self.const("gather_axis", types_pb2.DT_INT32, [0], [], anchor)
        return self.add(suffix, "GatherV2", [lst, index, Tensor(axis)],
                        {"Tparams": _type(self.dtype), "Tindices": _type(types_pb2.DT_INT32),
                         "Taxis": _type(types_pb2.DT_INT32)})

    def length(self, lst: Tensor, anchor: str, final: bool = False) -> str:
        shape = self.add("list_shape", "Shape", [lst], {"T": _type(self.dtype), "out_type": _type(types_pb2.DT_INT32)})
        begin = self.const("begin", types_pb2.DT_INT32, [0], [1], anchor)
        end = self.const("end", types_pb2.DT_INT32, [1], [1], anchor)
        return self.add(None if final else "length", "StridedSlice", [Tensor(shape), Tensor(begin), Tensor(end),
                                                                      Tensor(end)],
                        {"T": _type(types_pb2.DT_INT32), "Index": _type(types_pb2.DT_INT32),
                         "shrink_axis_mask": _int(1)})

    def fill_list(self, count: Tensor, dims: List[int], anchor: str) -> Tensor:
        from .attrs import dtype_name

        count_1d = self.as_vector(count, anchor)
        known = self.const("element_dims", types_pb2.DT_INT32, dims, [len(dims)], anchor)
        shape = self.concat("list_dims", [count_1d, Tensor(known)], types_pb2.DT_INT32, anchor)
        zero_value = False if dtype_name(self.dtype) == "DT_BOOL" else ("" if dtype_name(self.dtype) == "DT_STRING"
                                                                        else 0)
        zero = self.const("zero", self.dtype, [zero_value], [], anchor)
        return Tensor(self.add(None, "Fill", [Tensor(shape), Tensor(zero)], {"T": _type(self.dtype)}))

    def pad_to_item(self, lst: Tensor, item: Tensor, anchor: str) -> Tensor:
        """`lst` with its element dims grown to `item`'s (a list not yet written has 0 for unknown dims)."""
        list_shape = self.shape(lst)
        begin = self.const("dims_begin", types_pb2.DT_INT32, [1], [1], anchor)
        end = self.const("dims_end", types_pb2.DT_INT32, [0], [1], anchor)
        element_dims = self.add("element_dims", "StridedSlice", [Tensor(list_shape), Tensor(begin), Tensor(end),
                                                                 Tensor(begin)],
                                {"T": _type(types_pb2.DT_INT32), "Index": _type(types_pb2.DT_INT32),
                                 "end_mask": _int(1)})
        grow = self.add("grow", "Sub", [Tensor(self.shape(item)), Tensor(element_dims)],
                        {"T": _type(types_pb2.DT_INT32)})
        no_growth = self.const("no_growth", types_pb2.DT_INT32, [0], [1], anchor)
        after = self.concat("pad_after", [Tensor(no_growth), Tensor(grow)], types_pb2.DT_INT32, anchor)
        before = self.add("pad_before", "ZerosLike", [Tensor(after)], {"T": _type(types_pb2.DT_INT32)})
        paddings = self.add("paddings", "Pack", [Tensor(before), Tensor(after)],
                            {"T": _type(types_pb2.DT_INT32), "N": _int(2), "axis": _int(1)})
        return Tensor(self.add("padded", "Pad", [lst, Tensor(paddings)],
                               {"T": _type(self.dtype), "Tpaddings": _type(types_pb2.DT_INT32)}))

    def finish(self, outputs: List[Tensor]) -> None:
        ir, hidden = self.ir, self.hidden
        for i, tensor in enumerate(outputs):
            ir.replace_uses(Tensor(hidden, i), tensor)
        control_consumers = ir.control_consumers(hidden)
        ir.remove_node(hidden)
        keeper = self.name if self.name in ir else outputs[0].node
        for consumer in control_consumers:
            ir.add_control_input(consumer, keeper)
