"""Builder: While/StatelessWhile -> an Enter/Merge/Switch/LoopCond/NextIteration/Exit frame.

The shape follows TensorFlow's own lowering (lower_while_op.cc). For
``w = While(x)``, frame named after the node, ``parallel_iterations`` from its attr::

    Enter(x) -> Merge(Enter, NextIteration) -> cond body -> LoopCond -> Switch(Merge, LoopCond)
    Switch:1 -> body (after Identity(Switch_0:1)) -> NextIteration;  Switch:0 -> Exit -> readers of w
    `w` stays as IdentityN(exits)

A loop variable the body returns unchanged (resource handles of captured
variables, loop bounds) is loop invariant: a constant Enter (``is_constant``)
with no Merge/Switch/NextIteration/Exit, and readers after the loop read the
input itself, ordered after the loop's exits. Every inlined body node without
a producer in its body waits (control edge) for the loop's Merge/Switch, so
constants run in the right frame.
"""

from __future__ import annotations

from typing import Dict

from transpiler.ir.graph import Tensor
from transpiler.ir.attrs import bool_attr, int_attr, str_attr, type_attr
from transpiler.passes.builders import Lowering, LoweringError
from transpiler.passes.inliner import inline_body

#: TF's default for While.parallel_iterations.
DEFAULT_PARALLEL_ITERATIONS = 10


class WhileLowering(Lowering):
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
                             {"T": type_attr(dtypes[i]), "frame_name": str_attr(frame), "is_constant": bool_attr(invariant[i]),
                              "parallel_iterations": int_attr(pi)}, control=control)
            enters.append(enter)
        merges: Dict[int, str] = {}
        for i, enter in enumerate(enters):
            if invariant[i]:
                values.append(Tensor(enter, 0))
                continue
            merges[i] = self.add("merge_%d" % i if i else "merge", "Merge", [Tensor(enter), Tensor(enter)],
                                 {"T": type_attr(dtypes[i]), "N": int_attr(2)})
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
                                   {"T": type_attr(dtypes[i])})
            body_inputs.append(Tensor(switches[i], 1))
        pivot = self.add("loop_body_control", "Identity", [Tensor(switches[first], 1)], {"T": type_attr(dtypes[first])})
        body = inline_body(ir, ir, body_fn, body_inputs, self.new("body"), control_inputs=[pivot],
                           device=self.device)
        exits: Dict[int, str] = {}
        for i in sorted(switches):
            exits[i] = self.add("exit_%d" % i if i else "exit", "Exit", [Tensor(switches[i], 0)],
                                {"T": type_attr(dtypes[i])})
            next_it = self.add("next_iteration_%d" % i if i else "next_iteration", "NextIteration",
                               [body.outputs[i]], {"T": type_attr(dtypes[i])}, control=body.control_outputs)
            ir.set_inputs(merges[i], [Tensor(enters[i]), Tensor(next_it)])
        outputs = []
        after_loop = sorted(exits.values())
        for i in range(n):
            if not invariant[i]:
                outputs.append(Tensor(exits[i], 0))
            elif ir.consumers(Tensor(self.hidden, i)):
                outputs.append(Tensor(self.add("invariant_%d" % i, "Identity", [self.inputs[i]],
                                               {"T": type_attr(dtypes[i])}, control=after_loop)))
            else:
                outputs.append(self.inputs[i])
        self.finish(outputs, dtypes, [])
