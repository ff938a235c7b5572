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

import heapq
from typing import List, Optional

from transpiler.io.protos import graph_pb2
from transpiler.ir.graph import Graph, Node
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
    while-loop back edges aside. Stable: ties keep the file order (the lexicographically smallest
    topological order of the file positions), so a graph already in that order is left byte for byte
    as it was. Returns whether anything moved; a graph with another cycle (invalid for any release)
    is left as it is."""
    nodes = graph_def.node
    names = [node.name for node in nodes]
    position = {name: i for i, name in enumerate(names)}
    sources = [[position.get(text.lstrip("^").split(":")[0]) for text in node.input] for node in nodes]
    order = _sorted_positions(sources, [node.op for node in nodes])
    if order is None:
        return False
    if len(set(names)) == len(names):  # the usual case: sorted in place, no node copied
        rank = {names[p]: r for r, p in enumerate(order)}
        nodes.sort(key=lambda node: rank[node.name])
        return True
    kept = graph_pb2.GraphDef()
    kept.node.extend(nodes[i] for i in order)  # copies: the originals go with ClearField
    graph_def.ClearField("node")
    graph_def.node.extend(kept.node)
    return True


def producers_first_order(graph: Graph) -> Optional[List[Node]]:
    """The nodes of `graph` in the order `producers_first` gives the GraphDef it lowers to (whose file order is
    `graph.nodes`), or None when that is `graph.nodes` itself or there is a cycle. Read off the IR's edges: the
    lowered GraphDef's input strings are not parsed again, nor its nodes sorted (a fifth of writing a big graph)."""
    nodes = list(graph.nodes)
    names = [node.name for node in nodes]
    where = dict(zip(names, range(len(names)))).get
    producers = graph.producer_names
    sources = [list(map(where, producers(name))) for name in names]  # map: no Python step per edge
    order = _sorted_positions(sources, [node.op for node in nodes])
    return None if order is None else [nodes[i] for i in order]


def _sorted_positions(sources: List[List[Optional[int]]], ops: List[str]) -> Optional[List[int]]:
    """The positions in producers-first order (smallest position first among the ready ones, what networkx's
    lexicographical_topological_sort gives), or None when that is the given order or there is a cycle.
    `sources[i]` are the positions node i reads (None: no node); `ops[i]` is its op. Plain lists and a heap:
    a networkx graph of the positions cost more than the rest of writing."""
    count = len(sources)
    back = {i for i, op in enumerate(ops) if op in _BACK_EDGE_OPS}
    successors: List[Optional[List[int]]] = [None] * count
    waiting = [0] * count
    moved = False
    for i, read in enumerate(sources):
        for source in read:
            if source is None or source in back:
                continue
            moved = moved or source >= i
            if successors[source] is None:
                successors[source] = [i]
            elif successors[source][-1] != i:  # one edge per pair, as in a DiGraph (i's edges come together)
                successors[source].append(i)
            else:
                continue
            waiting[i] += 1
    if not moved:
        return None
    order = _smallest_first(successors, waiting)
    return order if len(order) == count else None


def _smallest_first(successors: List[Optional[List[int]]], waiting: List[int]) -> List[int]:
    """Kahn's algorithm taking the smallest ready position each time. Ready positions ahead of the scan are met by
    the scan itself; only a position the scan passed while it waited goes through the heap, and it is always
    smaller than any ahead: most of a mostly ordered graph never touches the heap. Stops early on a cycle."""
    count, order, behind, scan = len(waiting), [], [], 0
    while True:
        if behind:
            done = heapq.heappop(behind)
        else:
            while scan < count and waiting[scan]:
                scan += 1
            if scan == count:
                return order
            done, scan = scan, scan + 1
        order.append(done)
        for after in successors[done] or ():
            waiting[after] -= 1
            if not waiting[after] and after < scan:
                heapq.heappush(behind, after)
