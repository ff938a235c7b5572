"""Node order of a written GraphDef, for the releases whose importer reads it in order.

TF 1.4-1.7 import a GraphDef in Python (``importer.import_graph_def``; TF 1.8
switched to the C API by default): every op is made first without inputs, then,
node by node in file order, given its inputs and its shapes. A shape function
that wants an input's value (Reshape's shape, Fill's dims, Tile's multiples,
...) asks ``tensor_util.constant_value``, which looks through Cast, Range,
ConcatV2, StridedSlice, Fill and the like into *their* inputs: when such a
producer comes later in the file it has no inputs yet, and the import dies with
``IndexError: list index out of range``. Rewrites append their nodes, so a
consumer of a rewritten node can precede its replacement; for these releases
the writer lists producers first, as TF's own writers do.
"""

from __future__ import annotations

import networkx as nx

from transpiler.io.protos import graph_pb2
from transpiler.knowledge.releases import Opset, version_key

#: The first release whose Python API imports graphs through the C API (TF_C_API_GRAPH_CONSTRUCTION
#: defaults to "1" in 1.8's ops.py), which makes every op with its inputs before reading shapes.
C_API_IMPORTER_SINCE = "1.8.0"

#: A while loop's back edge (NextIteration -> Merge) is the one cycle a valid graph has; TF's own
#: writers list the Merge first, so the sort ignores the edges leaving NextIteration.
_BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})


def needs_producers_first(opset: Opset) -> bool:
    """True when `opset`'s release imports graphs in Python, in file order."""
    return version_key(opset.release) < version_key(C_API_IMPORTER_SINCE)


def producers_first(graph_def: graph_pb2.GraphDef) -> bool:
    """Reorder `graph_def.node` in place so that every node follows its inputs (data and control),
    while-loop back edges aside. Stable: ties keep the file order, so a graph already in that order
    is left byte for byte as it was. Returns whether anything moved; a graph with another cycle
    (invalid for any release) is left as it is."""
    position = {node.name: i for i, node in enumerate(graph_def.node)}
    order = nx.DiGraph()
    order.add_nodes_from(range(len(graph_def.node)))
    for i, node in enumerate(graph_def.node):
        for text in node.input:
            source = position.get(text.lstrip("^").split(":")[0])
            if source is not None and graph_def.node[source].op not in _BACK_EDGE_OPS:
                order.add_edge(source, i)
    try:
        sorted_positions = list(nx.lexicographical_topological_sort(order))
    except nx.NetworkXUnfeasible:
        return False
    if sorted_positions == list(range(len(graph_def.node))):
        return False
    nodes = [graph_def.node[i] for i in sorted_positions]
    kept = graph_pb2.GraphDef()
    kept.node.extend(nodes)  # copies: the originals go with ClearField
    graph_def.ClearField("node")
    graph_def.node.extend(kept.node)
    return True
