"""Builders: If/StatelessIf and Case/StatelessCase -> Switch/Merge conditionals.

The shapes follow TensorFlow's own lowering (lower_if_op.cc, lower_case_op.cc).

If ``c = If(pred, x)``::

    switch_pred = Switch(pred, pred); pivot_t = Identity(switch_pred:1); pivot_f = Identity(switch_pred:0)
    then body reads Switch(x, pred):1 and waits for pivot_t; else body reads :0 and waits for pivot_f
    output k = Merge(then_k, else_k); branch_executed = Merge(pivot_t, pivot_f) after both bodies' control outputs
    `c` stays as IdentityN(outputs) after branch_executed (NoOp when there are no outputs)

Case ``Case(i, x)`` is the N-way version: branch k runs when clamp(i) == k,
where an out-of-range i picks the last branch. Bodies are inlined by the one
inliner (inliner.py).
"""

from __future__ import annotations

from transpiler.io.protos import attr_value_pb2, types_pb2
from transpiler.ir.graph import Tensor
from transpiler.ir.attrs import int_attr, type_attr
from transpiler.passes.builders import Lowering, LoweringError, int32_const
from transpiler.passes.inliner import inline_body


class IfLowering(Lowering):
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
        bool_t = {"T": type_attr(types_pb2.DT_BOOL)}
        switch_pred = self.add("switch_pred", "Switch", [pred, pred], bool_t, control=self.control)
        pivot_f = self.add("pivot_f", "Identity", [Tensor(switch_pred, 0)], bool_t)
        pivot_t = self.add("pivot_t", "Identity", [Tensor(switch_pred, 1)], bool_t)
        switches = [self.add("switch_%d" % j, "Switch", [arg, pred], {"T": type_attr(tin[j])})
                    for j, arg in enumerate(args)]
        then = inline_body(self.ir, self.ir, then_fn, [Tensor(s, 1) for s in switches], self.new("then"),
                           control_inputs=[pivot_t], device=self.device)
        other = inline_body(self.ir, self.ir, else_fn, [Tensor(s, 0) for s in switches], self.new("else"),
                            control_inputs=[pivot_f], device=self.device)
        merges = [Tensor(self.add("output_%d" % k, "Merge", [t, e], {"T": type_attr(tout[k]), "N": int_attr(2)}), 0)
                  for k, (t, e) in enumerate(zip(then.outputs, other.outputs))]
        executed = self.add("branch_executed", "Merge", [Tensor(pivot_t, 0), Tensor(pivot_f, 0)],
                            {"T": type_attr(types_pb2.DT_BOOL), "N": int_attr(2)},
                            control=then.control_outputs + other.control_outputs)
        self.finish(merges, tout, [executed])


class CaseLowering(Lowering):
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
        int_t = {"T": type_attr(types_pb2.DT_INT32)}
        bool_t = {"T": type_attr(types_pb2.DT_BOOL)}
        anchor = self.add("branch_index", "Identity", [index], int_t, control=self.control)
        zero = self.add("zero", "Const", (), int32_const(0), control=[anchor])
        count = self.add("num_branches", "Const", (), int32_const(n), control=[anchor])
        last = self.add("last_branch", "Const", (), int32_const(n - 1), control=[anchor])
        ge = self.add("not_negative", "GreaterEqual", [Tensor(anchor), Tensor(zero)], int_t)
        lt = self.add("below_count", "Less", [Tensor(anchor), Tensor(count)], int_t)
        ok = self.add("in_range", "LogicalAnd", [Tensor(ge), Tensor(lt)])
        clamped = self.add("clamped_index", "Select", [Tensor(ok), Tensor(anchor), Tensor(last)], int_t)
        pivots, bodies = [], []
        for k, fn in enumerate(branches):
            ck = self.add("branch_%d/index" % k, "Const", (), int32_const(k), control=[anchor])
            pred = Tensor(self.add("branch_%d/pred" % k, "Equal", [Tensor(clamped), Tensor(ck)], int_t))
            switch_pred = self.add("branch_%d/switch_pred" % k, "Switch", [pred, pred], bool_t)
            pivot = self.add("branch_%d/pivot" % k, "Identity", [Tensor(switch_pred, 1)], bool_t)
            switches = [self.add("branch_%d/switch_%d" % (k, j), "Switch", [arg, pred], {"T": type_attr(tin[j])})
                        for j, arg in enumerate(args)]
            bodies.append(inline_body(self.ir, self.ir, fn, [Tensor(s, 1) for s in switches],
                                      self.new("branch_%d/body" % k), control_inputs=[pivot], device=self.device))
            pivots.append(Tensor(pivot, 0))
        merges = [Tensor(self.add("output_%d" % m, "Merge", [b.outputs[m] for b in bodies],
                                  {"T": type_attr(tout[m]), "N": int_attr(n)}), 0) for m in range(len(tout))]
        executed = self.add("branch_executed", "Merge", pivots, {"T": type_attr(types_pb2.DT_BOOL), "N": int_attr(n)},
                            control=[c for b in bodies for c in b.control_outputs])
        self.finish(merges, tout, [executed])
