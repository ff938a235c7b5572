"""Pass: inline function calls (StatefulPartitionedCall, PartitionedCall, direct calls).

A TF 2 SavedModel keeps its computation in the function library, reached
through ``StatefulPartitionedCall`` nodes; TF 1.x before 1.10 has no such op
(and before 1.13 not with ``config_proto``). Call nodes vanish (the inliner
keeps their names fetchable), and with them their function-only attrs
(``config_proto``, ``executor_type``, ``_XlaMustCompile``, ...). Functions
nothing references any more are pruned; functions named by ``func`` attrs
(If/While branches) stay until control flow is lowered.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from transpiler.engine.rule_pass import Firing
from transpiler.ir.graph import Graph, GraphDefIR
from transpiler.knowledge.releases import Opset
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.functional import CALL_OPS, lowering_required, target_rejects
from transpiler.passes.inliner import Bodies, InliningError, callee, check_no_recursion, inline_call, prune_functions

#: A guard against call trees too big to inline (recursion is refused before: check_no_recursion).
MAX_INLINED_CALLS = 100000


class InlineCalls(Pass):
    """Inline every call (graph and function bodies) when the target needs it.

    That is: with --inline-functions (`force`), when the target lacks a call
    op the model uses or rejects an attr it sets (StatefulPartitionedCall's
    config_proto before TF 1.13), or when functional control flow or
    TensorLists must be lowered for the target (lowering works on the top
    graph). Functions a TF 2 target's object graph names are kept even when
    nothing calls them any more (`keep`, default: from the context).
    """

    name = "inline-calls"

    def __init__(self, force: Optional[bool] = None, keep: Optional[Iterable[str]] = None):
        self.force = force
        self.keep = None if keep is None else list(keep)
        #: (function or None, call node) for every call inlined, in order.
        self.inlined: List[Tuple[Optional[str], str]] = []
        self.pruned: List[str] = []
        self.log = PassLog()
        #: Callee bodies read once for all their calls in this pass.
        self.bodies = Bodies()

    def needed(self, ir: GraphDefIR, opset: Opset) -> bool:
        """Forced; or a call op the target lacks or knows without an attr set here (config_proto before
        TF 1.13); or something only lowering fixes (lowering works on the top graph)."""
        if self.force:
            return True
        if any(node.op in CALL_OPS and target_rejects(node, opset) for _, g in ir.graphs() for node in g.nodes):
            return True
        return lowering_required(ir, opset)

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        if self.force is None:
            self.force = ctx.options.inline_functions
        keep = self.keep if self.keep is not None else saved_object_functions(ctx.meta_graph, ctx.opset)
        if not self.needed(ir, ctx.opset):
            return self.log
        check_no_recursion(ir, keep)  # f -> g -> f would inline forever
        self.inline_graph(ir, ir, None)
        self.pruned += prune_functions(ir, keep)
        for name in sorted(ir.functions):
            self.inline_graph(ir, ir.functions[name], name)
        self.pruned += prune_functions(ir, keep)
        self.bodies = Bodies()  # the bodies read would stay alive with the pass (10 MiB of BERT's peak)
        return self.log

    def inline_graph(self, ir: GraphDefIR, graph: Graph, where: Optional[str]) -> int:
        """Inline every call in `graph`, including calls the inlined bodies bring; returns how many."""
        count = 0
        refused = self.log.refusals
        while True:
            calls = [n.name for n in graph.nodes if callee(ir, n) not in (None, where) and (where, n.name) not in refused]
            if not calls:
                return count
            for name in calls:
                op, function = graph[name].op, callee(ir, graph[name])
                try:
                    inline_call(ir, graph, name, self.bodies)
                except InliningError as exc:
                    refused[(where, name)] = str(exc)
                    continue
                self.bodies.forget(where)  # a function inlined into is another body now
                self.inlined.append((where, name))
                self.log.firings.append(Firing("inline-function-call", name, op, where, "inlined " + function))
                count += 1
                if count > MAX_INLINED_CALLS:
                    raise InliningError("more than %d calls inlined in %s"
                                        % (MAX_INLINED_CALLS, where or "the graph"))


def saved_object_functions(meta_graph, opset: Opset) -> List[str]:
    """Functions a TF 2 loader of the output looks up by name (the SavedModel object graph).

    Only TF 2.x targets read the object graph; for TF 1.x they need not survive.
    """
    if opset.is_tf1 or meta_graph is None or not meta_graph.HasField("object_graph_def"):
        return []
    return sorted(meta_graph.object_graph_def.concrete_functions)
