"""Pass: lower functional control flow (If/Case/While) to TF 1.x dataflow control flow.

``If``/``StatelessIf`` and ``Case``/``StatelessCase`` become Switch/Merge
conditionals (lower_cond.py), ``While``/``StatelessWhile`` an
Enter/Merge/Switch/LoopCond/NextIteration/Exit frame (lower_while.py); branch
and body functions are inlined by the one inliner (inliner.py). Loops in loops
and loops in branches come out right because each lowered body is ordinary
graph again, lowered on the next round.

What is lowered: functional ops the target lacks or knows without an attr the
node sets (output_shapes, parallel_iterations), ops whose functions hold such
nodes, and for TF 1.x targets every functional op that reaches the top graph
(TF 1.x lowers them itself only partly). When TensorLists must become dense
(dense_tensor_lists.py, the next pass), every loop is lowered, since a list
carried by a functional loop is only plain dataflow once the loop is.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from transpiler.engine.rule_pass import Firing
from transpiler.ir.graph import GraphDefIR, Node
from transpiler.knowledge.releases import Opset
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.builders import LoweringError
from transpiler.passes.functional import (CALL_OPS, CONTROL_FLOW_OPS, IF_OPS, WHILE_OPS, attr_functions,
                                          needs_lowering, tensor_lists_need_lowering)
from transpiler.passes.inline_calls import InlineCalls, saved_object_functions
from transpiler.passes.inliner import prune_functions
from transpiler.passes.lower_cond import CaseLowering, IfLowering
from transpiler.passes.lower_while import WhileLowering

#: Functional op -> the builder that lowers it.
BUILDERS = {**{op: IfLowering for op in IF_OPS}, **{op: WhileLowering for op in WHILE_OPS},
            **{op: CaseLowering for op in ("Case", "StatelessCase")}}

MAX_ROUNDS = 10000


class LowerControlFlow(Pass):
    """Lower functional control flow in the top graph when the target cannot run it as is.

    To a fixpoint: bodies brought in may hold more control flow and calls,
    which are lowered (BUILDERS) and inlined in turn. Then functions nothing
    references are pruned, except those a TF 2 target's object graph names.
    `force` lowers everything (tests).
    """

    name = "lower-control-flow"

    def __init__(self, force: bool = False):
        self.force = force
        self.keep: List[str] = []
        self.opset: Optional[Opset] = None
        #: names of the nodes lowered, by op.
        self.lowered: Dict[str, List[str]] = {}
        #: (function, node) -> why it was not lowered (the validator reports the node), as RulePass.refused.
        self.refused: Dict[tuple, str] = {}
        self.lower_every_loop = False
        self.tf1 = False
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

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        self.opset = ctx.opset
        self.keep = saved_object_functions(ctx.meta_graph, ctx.opset)
        #: TF 1.x runtimes lower functional ops themselves only partly (TF 1.14 refuses Case marked
        #: _lower_using_switch_merge; before TF 2.0 control flow v2 was opt-in): whatever reaches the top
        #: graph is lowered here. Inside functions they run through the function runtime, which works.
        self.tf1 = ctx.opset.is_tf1
        # TensorLists the target cannot take must become dense (the next pass), and a list carried by a
        # functional loop only becomes plain dataflow once the loop is lowered: then every loop goes.
        self.lower_every_loop = tensor_lists_need_lowering(ir, self.opset, everywhere=True)
        self.tainted = self._tainted_functions(ir)
        if any(self.wanted(n) for n in ir.nodes):
            self.lower_all(ir)
        return PassLog(firings=self.firings, refusals=self.refused)

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
        inliner = InlineCalls(force=True)
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
        self.firings += inliner.log.firings
        self.refused.update(inliner.log.refusals)
        prune_functions(ir, self.keep)

    def lower(self, ir: GraphDefIR, name: str) -> None:
        op = ir[name].op
        try:
            BUILDERS[op](ir, name).run()
        except LoweringError as exc:
            self.refused[(None, name)] = "not lowered: %s" % exc
            return
        self.lowered.setdefault(op, []).append(name)
        shape = "Enter/Merge/Switch/LoopCond/NextIteration/Exit frame" if op in WHILE_OPS else "Switch/Merge"
        self.firings.append(Firing("lower-functional-control-flow", name, op, None, "%s -> %s" % (op, shape)))
