"""Pass: the rules of rules/*.yaml (and the user's --rules files), to a fixpoint.

A fresh RulePass for every graph: its memory of which rule emitted which
node is keyed by (function, node), which is only unique within one graph.
"""

from __future__ import annotations

from transpiler.engine.rule_pass import RulePass
from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.validate import producer_ops


class Rules(Pass):
    name = "rules"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        declared = producer_ops(ctx.meta_graph)
        rules = RulePass(list(ctx.rules), ctx.opset, ctx.options.rule_options(),
                         {op.name: op for op in declared.op} if declared is not None else None)
        rules(ir)
        return PassLog(firings=list(rules.fired), refusals=dict(rules.refused),
                       behaviour_refusals=dict(rules.behaviour_refused))
