"""Pass (upgrade): keep only what the signatures compute.

Nothing of the saver, initializers or training ops survives; lookup tables
that the init op fills are refused (their initializers are not carried into
the TF 2 object graph yet).
"""

from __future__ import annotations

from transpiler.errors import TranspileError
from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.passes.base import Context, Pass, PassLog

#: Resources a TF 1.x init op (main_op / legacy_init_op) fills before the signatures can run.
TABLE_OPS = {"HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensors",
             "MutableHashTableOfTensorsV2", "MutableDenseHashTable", "MutableDenseHashTableV2"}


class PruneToSignatures(Pass):
    name = "prune-to-signatures"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        signatures = ctx.state["signatures"]
        prune(ir, {Tensor.parse(t).node for s in signatures for t in list(s.outputs.values()) + list(s.inputs.values())})
        found = sorted(n.name for n in ir.nodes if n.op in TABLE_OPS)
        if found:
            raise TranspileError("the signatures read lookup table(s) %s, which the model's init op fills; the TF 2 "
                                 "back end does not carry table initializers yet" % names_list(found))
        return PassLog()


def names_list(names, shown: int = 8) -> str:
    names = list(names)
    more = " (+%d more)" % (len(names) - shown) if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "none"


def prune(ir: GraphDefIR, roots) -> None:
    """Keep only `roots` and what they depend on (data and control edges)."""
    import networkx as nx

    keep = set(roots)
    for root in roots:
        keep |= nx.ancestors(ir.nx, root)
    ir.nx.remove_nodes_from([n for n in list(ir.nx.nodes) if n not in keep])
