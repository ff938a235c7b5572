"""Pass: drop library functions nothing in the graph reaches (TF 1.x targets).

A TF 2 SavedModel's library also holds functions only its object graph names:
training and restore variants of Keras layers, whose bodies may use ops or
attr values the target lacks (FusedBatchNormV3 ``exponential_avg_factor`` in
training functions). TF 1.x loaders never read the object graph, so for them
such functions are dead weight that would only block validation. TF 2.x
targets keep them: their loader looks them up by name.
"""

from __future__ import annotations

from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.inliner import prune_functions


class PruneFunctions(Pass):
    name = "prune-functions"

    def applies(self, ctx: Context) -> bool:
        return ctx.opset.is_tf1

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        dropped = prune_functions(ir)
        log = PassLog()
        if dropped:
            log.notes.append("dropped %d function(s) nothing in the graph calls (TF %s does not read the object "
                             "graph that names them)" % (len(dropped), ctx.opset.short))
        return log
