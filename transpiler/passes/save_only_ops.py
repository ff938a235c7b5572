"""Pass: ops TF 2.x puts only into a SavedModel's traced save function, replaced for older targets.

DisableCopyOnRead (TF 2.12+) only stops copy-on-read of the variable being
saved; a NoOp in its place (same name, same control edges) keeps the control
edges that order the save.
"""

from __future__ import annotations

from transpiler.engine.rule_pass import Firing
from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog

#: Save-only op -> its stand-in.
SAVE_ONLY_OPS = {"DisableCopyOnRead": "NoOp"}


class SaveOnlyOps(Pass):
    name = "save-only-ops"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        for where, graph in ir.graphs():
            for node in graph.nodes_by_op(*SAVE_ONLY_OPS):
                if ctx.opset.has_op(node.op):
                    continue
                graph.set_inputs(node.name, [], graph.control_inputs(node.name))
                log.firings.append(Firing("save-only-op-to-noop", node.name, node.op, where,
                                          "%s -> %s" % (node.op, SAVE_ONLY_OPS[node.op])))
                node.op, node.attrs = SAVE_ONLY_OPS[node.op], {k: v for k, v in node.attrs.items()
                                                               if k == "_output_shapes"}
        return log
