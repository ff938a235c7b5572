"""The IR: a GraphDef and its function library as networkx graphs.

A ``Graph`` holds ``Node`` objects (op, attrs as ``AttrValue`` protos, device)
on a ``networkx.MultiDiGraph`` (``g.nx``, made on the Graph's own adjacency
dicts when a networkx algorithm is first wanted). Each data edge carries ``(src_port, dst_index)``
and each control edge its position among the node's control inputs, so the
GraphDef can be rebuilt exactly. Function bodies are ``Function`` graphs:
their arguments are nodes with the pseudo-op ``ARG_OP`` and their results
live in ``ret`` / ``control_ret``.

    g = lift(graph_def)
    for node in g.nodes_by_op("FusedBatchNormV3"): ...
    g.replace_uses(Tensor("old", 0), Tensor("new", 0))
    graph_def = g.lower()
"""

from __future__ import annotations

import contextlib
import itertools
import gc
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from google.protobuf import unknown_fields

from transpiler.errors import TranspileError
from transpiler.io.protos import function_pb2, graph_pb2, node_def_pb2
from transpiler.ir.attrs import types_attr

@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection while a graph is built or rewritten in bulk (nests).

    The IR makes no reference cycles, yet each collection walks every object made since the one before:
    millions in a big graph, 4-8% of a 100 000-node conversion's CPU even with young collections only. While
    a graph is converted next to no cyclic garbage is made (a few hundred objects in a 100 000-node
    conversion, measured with gc.DEBUG_SAVEALL); what makes it at a rate, a template's jinja2 render (its
    macros and namespaces), collects the young generation after every few hundred renders while collection
    is paused (sandbox.LimitedSandbox.render), so memory stays bounded.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            _age_all()
            gc.enable()


def _age_all() -> None:
    """Move every tracked object to the oldest generation, at once: what was made while collection was paused
    would otherwise count as young, and the first allocation after it resumes would walk all of it (0.7 s at
    100 000 nodes). The oldest generation is still collected (full collections), so no garbage is kept for good.
    gc.freeze then gc.unfreeze does it in O(1); not when the program froze objects of its own (a pre-fork
    server), which unfreeze would thaw."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


#: Function-body outputs are named ``node:out_arg:index``; graph outputs ``node:index``.
Port = Union[int, str, None]

#: Pseudo-op of a function argument (a tensor with no producing node).
ARG_OP = "<arg>"


class Tensor(NamedTuple):
    """One output of a node. ``port`` is None for a function argument.

    A NamedTuple rather than a frozen dataclass: as immutable and hashable, and made in a third of the time (a
    big graph's rewrites make hundreds of thousands); it also equals the plain tuple (node, port)."""

    node: str
    port: Port = 0

    @classmethod
    def parse(cls, text: str, in_function: bool = False) -> "Tensor":
        """`node` or `node:N` (a graph), `arg`, `node` or `node:out_arg:N` (a function body); ValueError
        for anything else (`x:abc`, `x:-1`, `x:`, an empty name)."""
        return cls(*_parse_tensor(text, in_function))

    def __str__(self) -> str:
        return _tensor_name(self.node, self.port)


def _parse_tensor(text: str, in_function: bool) -> Tuple[str, Port]:
    """(node, port) of a NodeDef input naming a tensor: `node`, `node:1`, in a function `node:out:0`;
    ValueError for anything else (`x:abc`, `x:-1`, `x:`, an empty name)."""
    name, colon, rest = text.partition(":")
    if not name:
        raise ValueError("%r is not a tensor name (no node)" % text)
    if not colon:
        return name, None if in_function else 0
    arg, _, index = rest.rpartition(":") if in_function else ("", "", rest)
    if not (index.isascii() and index.isdigit() and int(index) < 2 ** 31) or (in_function and not arg):
        raise ValueError("%r is not a tensor name (%s)" % (text, "node:out_arg:index" if in_function
                                                              else "node:index"))
    return name, rest if in_function else int(rest)


def _tensor_name(node: str, port: Port) -> str:
    """How a NodeDef input names output `port` of `node` (`node` for port 0 and for function arguments)."""
    if port is None or port == 0 and isinstance(port, int):
        return node
    return "%s:%s" % (node, port)


class Node:
    """A NodeDef without its inputs (those are edges of the graph). Compared by identity.

    A class with __slots__ rather than a dataclass (whose slots need Python 3.10): a graph holds one per
    node, and a __dict__ each is a tenth of a big graph's memory."""

    __slots__ = ("name", "op", "attrs", "device", "extra")

    def __init__(self, name: str, op: str, attrs: Optional[Dict[str, object]] = None, device: str = "",
                 extra: Optional[node_def_pb2.NodeDef] = None) -> None:
        self.name = name
        self.op = op
        self.attrs: Dict[str, object] = {} if attrs is None else attrs
        self.device = device
        #: NodeDef fields the IR does not interpret (experimental_debug_info, ...), kept verbatim.
        self.extra = extra

    def __repr__(self) -> str:
        return "Node(name=%r, op=%r, attrs=%r, device=%r, extra=%r)" % (self.name, self.op, self.attrs, self.device,
                                                                       self.extra)

    @property
    def is_arg(self) -> bool:
        return self.op == ARG_OP


class Graph:
    """Nodes and edges of one GraphDef or function body, editable in place."""

    in_function = False

    def __init__(self) -> None:
        # networkx's adjacency layout for a MultiDiGraph (node -> neighbour -> key -> edge data; `_succ` and
        # `_pred` share each key dict), held here so that only a pass that runs a networkx algorithm pays
        # for importing networkx (a fifth of a second): `nx` is a MultiDiGraph on these same dicts.
        self._succ: Dict[str, Dict[str, dict]] = {}
        self._pred: Dict[str, Dict[str, dict]] = {}
        self._node: Dict[str, dict] = {}
        self._nx = None

    @property
    def nx(self):
        """This graph as a networkx.MultiDiGraph sharing its dicts: an edit through either shows in both."""
        if self._nx is None:
            import networkx

            graph = networkx.MultiDiGraph()
            graph._succ, graph._pred, graph._node = self._succ, self._pred, self._node  # _succ sets _adj too
            self._nx = graph
        return self._nx

    def _changed(self) -> None:
        """Drop the views networkx 3 caches on `nx` (what its own edits do); nothing while it is not built."""
        if self._nx is not None:
            _clear_cache(self._nx)

    def has_name(self, name: str) -> bool:
        """A node, or a name some edge names (networkx's has_node): what a new node's name must not be."""
        return name in self._succ

    # ---- queries ---------------------------------------------------------
    # Queries and edits read and write networkx's dicts (`_node`: node -> data; `_succ` / `_pred`: node ->
    # neighbour -> key -> edge data, the layout networkx documents for subclasses) rather than its views,
    # which cost more than the query itself (a view per call).
    def __contains__(self, name: str) -> bool:
        data = self._node.get(name)
        return data is not None and data.get("node") is not None

    def __getitem__(self, name: str) -> Node:
        data = self._node.get(name)
        node = data.get("node") if data is not None else None
        if node is None:
            raise KeyError(name)
        return node

    def get(self, name: str) -> Optional[Node]:
        """The node named `name`, or None (a name no node has, or only an edge names)."""
        data = self._node.get(name)
        return data.get("node") if data is not None else None

    def __len__(self) -> int:
        """The number of real nodes (what `nodes` yields), counted without a Python step per node (the pass log
        counts them after every pass): only a function body has argument nodes to leave out."""
        found = list(map(dict.get, self._node.values(), itertools.repeat("node")))
        count = len(found) - found.count(None)
        if self.in_function:
            count -= sum(1 for node in found if node is not None and node.op == ARG_OP)
        return count

    @property
    def nodes(self) -> Iterator[Node]:
        """Real nodes (no function arguments), in stable insertion order."""
        for data in self._node.values():  # what nx.nodes(data="node") reads, without its view per call
            node = data.get("node")
            if node is not None and node.op != ARG_OP:
                yield node

    def names_among(self, names: set) -> List[str]:
        """The names of real nodes among `names`, in the order of `nodes`: a walk of the names alone, which a
        rule pass's later rounds take over the whole graph (no Node is looked at outside `names`)."""
        found = []
        for name in filter(names.__contains__, self._node):
            node = self._node[name].get("node")
            if node is not None and node.op != ARG_OP:
                found.append(name)
        return found

    def nodes_by_op(self, *ops: str) -> List[Node]:
        return [n for n in self.nodes if n.op in ops]

    def _in_edges(self, name: str) -> Iterator[Tuple[str, dict]]:
        """(source, edge data) of every edge into `name`."""
        for u, keyed in self._pred[name].items():
            for d in keyed.values():
                yield u, d

    def _out_edges(self, name: str) -> Iterator[Tuple[str, dict]]:
        """(target, edge data) of every edge out of `name`."""
        for v, keyed in self._succ[name].items():
            for d in keyed.values():
                yield v, d

    def inputs(self, name: str) -> List[Tensor]:
        edges = [(d["dst_index"], u, d["src_port"]) for u, d in self._in_edges(name) if d["kind"] == "data"]
        edges.sort(key=_first)
        return [Tensor(u, port) for _, u, port in edges]

    def data_input_count(self, name: str) -> int:
        """len(self.inputs(name)), without building the list (validate asks it of every node)."""
        count = 0
        for keyed in self._pred[name].values():
            for d in keyed.values():
                if d["kind"] == "data":
                    count += 1
        return count

    def control_inputs(self, name: str) -> List[str]:
        edges = [(d["order"], u) for u, d in self._in_edges(name) if d["kind"] == "control"]
        return [u for _, u in sorted(edges)]

    def consumers(self, tensor: Tensor) -> List[Tuple[str, int]]:
        """(node, input index) pairs reading `tensor`."""
        return sorted((v, d["dst_index"]) for v, d in self._out_edges(tensor.node)
                      if d["kind"] == "data" and d["src_port"] == tensor.port)

    def consumers_by_port(self, name: str) -> Dict[Port, List[Tuple[str, int]]]:
        """{port: consumers(Tensor(name, port))} for every read output of `name`, in one pass over its edges."""
        found: Dict[Port, List[Tuple[str, int]]] = {}
        for v, d in self._out_edges(name):
            if d["kind"] == "data":
                found.setdefault(d["src_port"], []).append((v, d["dst_index"]))
        for readers in found.values():
            readers.sort()
        return found

    def readers(self, name: str) -> List[str]:
        """Nodes reading any data output of `name`, each once, sorted."""
        return sorted(self.reader_set(name))

    def reader_set(self, name: str) -> set:
        """The nodes of `readers(name)`, unordered (for a caller that needs no order)."""
        return {v for v, keyed in self._succ[name].items() for d in keyed.values() if d["kind"] == "data"}

    def producer_names(self, name: str) -> Iterable[str]:
        """Every node `name` reads a data output of or takes a control edge from, each once, unordered."""
        return self._pred[name].keys()

    def neighbour_names(self, name: str) -> set:
        """Every node `name` reads or is read by (data or control), each once, unordered."""
        return self._pred[name].keys() | self._succ[name].keys()

    def producer_set(self, name: str) -> set:
        """The nodes `name` reads a data output of (those of `inputs(name)`), unordered."""
        return {u for u, keyed in self._pred[name].items() for d in keyed.values() if d["kind"] == "data"}

    def control_consumers(self, name: str) -> List[str]:
        return sorted(v for v, d in self._out_edges(name) if d["kind"] == "control")

    def used_ports(self, name: str) -> set:
        used = {d["src_port"] for _, d in self._out_edges(name) if d["kind"] == "data"}
        return used | {t.port for t in self.result_tensors() if t.node == name}

    def result_tensors(self) -> List[Tensor]:
        """Tensors read from outside the graph's nodes (function results)."""
        return []

    def unique_name(self, base: str) -> str:
        name, i = base, 0
        while self.has_name(name):
            i += 1
            name = "%s_%d" % (base, i)
        return name

    # ---- edits -----------------------------------------------------------
    def add_node(self, name: str, op: str, inputs: Iterable[Union[Tensor, str]] = (),
                 attrs: Optional[dict] = None, device: str = "",
                 control_inputs: Iterable[str] = (), extra: Optional[node_def_pb2.NodeDef] = None) -> Node:
        data = self._node.get(name)
        if data is not None and data.get("node") is not None:
            raise ValueError("node %r already exists" % name)
        node = Node(name, op, dict(attrs) if attrs else {}, device, extra)
        if data is not None:  # a node some edge named before it was added
            data["node"] = node
            self.set_inputs(name, inputs, control_inputs)
        else:  # nx.add_node, without its per-call overhead; a new node has no input edges to replace
            self._succ[name], self._pred[name], self._node[name] = {}, {}, {"node": node}
            self._add_input_edges(name, inputs, control_inputs)
        return node

    def set_inputs(self, name: str, inputs: Iterable[Union[Tensor, str]],
                   control_inputs: Optional[Iterable[str]] = None) -> None:
        """Replace the data inputs (and, if given, the control inputs) of `name`."""
        kinds = ("data", "control") if control_inputs is not None else ("data",)
        stale = [(u, k) for u, keyed in self._pred[name].items() for k, d in keyed.items() if d["kind"] in kinds]
        for u, k in stale:
            self._remove_edge(u, name, k)
        self._add_input_edges(name, inputs, control_inputs or ())

    def _add_edges(self, edges: Iterable[Tuple[str, str, tuple, dict]]) -> None:
        """networkx's add_edges_from for (source, target, key, data) edges, each data dict used as it is.

        It writes the adjacency dicts directly (node -> neighbour -> key -> data, `_succ` and `_pred`
        sharing each key dict, as networkx lays them out for subclasses): add_edges_from copies each
        data dict twice and builds an adjacency view per edge, most of the cost of lifting a graph.
        A missing endpoint becomes a node without data, as add_edges_from makes it.
        """
        succ, pred, nodes = self._succ, self._pred, self._node
        for u, v, key, data in edges:
            if u not in succ:
                succ[u], pred[u], nodes[u] = {}, {}, {}
            if v not in succ:
                succ[v], pred[v], nodes[v] = {}, {}, {}
            keyed = succ[u].get(v)
            if keyed is None:
                keyed = succ[u][v] = pred[v][u] = {}
            keyed[key] = data  # networkx would update the old dict: the same keys, so the same content
        self._changed()

    def _remove_edge(self, u: str, v: str, key: tuple) -> None:
        """networkx's remove_edge(u, v, key) on the adjacency dicts (its checks and cache clearing cost more
        than the removal); the edge must exist."""
        keyed = self._succ[u][v]
        del keyed[key]
        if not keyed:
            del self._succ[u][v]
            del self._pred[v][u]
        self._changed()

    def _remove_node(self, name: str) -> None:
        """networkx's remove_node(name) on the adjacency dicts, in its order; the node must exist."""
        succ, pred = self._succ, self._pred
        del self._node[name]
        for v in succ[name]:
            del pred[v][name]
        del succ[name]
        for u in pred[name]:
            del succ[u][name]
        del pred[name]
        self._changed()

    def _add_input_edges(self, name: str, inputs: Iterable[Union[Tensor, str]], control_inputs: Iterable[str]) -> None:
        """Add the edges of `name`'s inputs, in order: `_add_edges` of each input's (source, name, key, data),
        written out here without a generator and a tuple per edge (lifting adds every edge of the graph)."""
        succ, pred, nodes = self._succ, self._pred, self._node
        in_function = self.in_function
        if name not in succ:
            succ[name], pred[name], nodes[name] = {}, {}, {}
        into = pred[name]
        # every input parsed before any edge is added: a bad tensor name leaves the graph as it was
        edges = [t if type(t) is Tensor else _parse_tensor(t, in_function) for t in inputs]  # a Tensor is (node, port)
        for i, (u, port) in enumerate(edges):  # the shared key and data dicts (_data_key, _data_edge make them)
            key, data = _DATA_KEYS.get(i) or _data_key(i), _DATA_EDGES.get((port, i)) or _data_edge(port, i)
            if u not in succ:
                succ[u], pred[u], nodes[u] = {}, {}, {}
            keyed = into.get(u)
            if keyed is None:
                keyed = succ[u][name] = into[u] = {}
            keyed[key] = data  # as in _add_edges
        for i, u in enumerate(control_inputs):
            if u not in succ:
                succ[u], pred[u], nodes[u] = {}, {}, {}
            keyed = into.get(u)
            if keyed is None:
                keyed = succ[u][name] = into[u] = {}
            keyed[("control", u)] = _CONTROL_EDGES.get(i) or _control_edge(i)
        if self._nx is not None:  # self._changed(), without its call (lifting adds every node's edges here)
            _clear_cache(self._nx)

    def add_control_input(self, name: str, src: str) -> None:
        if src not in self.control_inputs(name):
            self.set_inputs(name, self.inputs(name), self.control_inputs(name) + [src])

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        """Make every reader of `old` read `new` instead; O(edges moved): each edge from `old` is replaced by
        one from `new` with the same key (the input index), the reader's other edges are left as they are."""
        succ, pred = self._succ, self._pred
        moved = [(v, k, d["dst_index"]) for v, keyed in succ[old.node].items() for k, d in keyed.items()
                 if d["kind"] == "data" and d["src_port"] == old.port]
        if moved and not isinstance(new, Tensor):  # a tensor name, as set_inputs takes it (passes hand theirs so)
            new = Tensor.parse(new, self.in_function)
        if moved and new.node not in succ:  # as set_inputs would: a name without a node yet
            succ[new.node], pred[new.node], self._node[new.node] = {}, {}, {}
        for v, key, index in moved:
            self._remove_edge(old.node, v, key)
            keyed = succ[new.node].get(v)
            if keyed is None:
                keyed = succ[new.node][v] = pred[v][new.node] = {}
            keyed[key] = _data_edge(new.port, index)

    def remove_node(self, name: str) -> None:
        """Remove `name`; its data outputs must be unused (control users lose the edge)."""
        readers = [v for v, d in self._out_edges(name) if d["kind"] == "data"]
        if readers:
            raise ValueError("cannot remove %r: still read by %s" % (name, ", ".join(sorted(set(readers)))))
        for consumer in self.control_consumers(name):
            self.set_inputs(consumer, self.inputs(consumer), [c for c in self.control_inputs(consumer) if c != name])
        self._remove_node(name)

    def replace_node(self, name: str, outputs: Dict[Port, Tensor], control_output: Optional[str] = None) -> None:
        """Rewire `name`'s consumers to `outputs` (port -> new tensor), then remove it.

        Control consumers move to `control_output` (the replacement's last node).
        """
        for port, new in outputs.items():
            self.replace_uses(Tensor(name, port), new)
        for consumer in self.control_consumers(name):
            if control_output is not None:
                self.add_control_input(consumer, control_output)
        self.remove_node(name)

    def replace_by(self, name: str, nodes: List[tuple], outputs: Dict[Port, Tensor],
                   control_output: Optional[str] = None) -> None:
        """Replace node `name` by `nodes`, each (name, op, inputs, attrs, device, control inputs) as `add_node`
        takes them (one may take the name `name`), its readers of port p reading outputs[p] from then on: the
        same graph as `hide`, `add_node` of each, then `replace_node` of the hidden node with `outputs` and
        `control_output`. When the last node takes the name and keeps every port that is read, that is done in
        place: its readers' edges stay, not moved out and back (O(its inputs), not O(its readers))."""
        if self._keeps_readers(name, nodes, outputs):
            self._replace_in_place(name, nodes)
            return
        hidden = self.hide(name, "replaced")
        for new in nodes:
            self.add_node(*new)
        self.replace_node(hidden, outputs, control_output=control_output)

    def _keeps_readers(self, name: str, nodes: List[tuple], outputs: Dict[Port, Tensor]) -> bool:
        """Whether `replace_by` leaves every edge out of `name` as it was: the last node takes the name, no new
        node reads `name` (the hidden node's readers would be its own), `name` has no control readers (those
        would move to the end of their control inputs), and each port read stays. (A `name` that reads itself
        loses that edge either way.)"""
        if self.in_function or not nodes or nodes[-1][0] != name:
            return False
        if any(new[0] == name or name in new[5] for new in nodes[:-1]) or name in nodes[-1][5]:
            return False
        for new in nodes:  # loops, not any() of a generator: this runs on every rewrite of a big graph
            for t in new[2]:
                if (t.node if type(t) is Tensor else _node_of(t)) == name:
                    return False
        for keyed in self._succ[name].values():
            for data in keyed.values():
                if data["kind"] != "data" or outputs.get(data["src_port"]) != Tensor(name, data["src_port"]):
                    return False
        return True

    def _replace_in_place(self, name: str, nodes: List[tuple]) -> None:
        """`replace_by` when `_keeps_readers`: `name` leaves the node order with its input edges, the other nodes
        are added, then the last one takes `name` at the end, with `name`'s edges to its readers."""
        succ, pred = self._succ, self._pred
        for u in pred[name]:
            del succ[u][name]
        readers = succ.pop(name)
        del pred[name], self._node[name]
        for new in nodes[:-1]:
            self.add_node(*new)
        _, op, inputs, attrs, device, control = nodes[-1]
        succ[name], pred[name], self._node[name] = readers, {}, {"node": Node(name, op, dict(attrs or {}), device)}
        self._add_input_edges(name, inputs, control)

    def hide(self, name: str, why: str) -> str:
        """Rename `name` out of the way (``name/_why``) so that its replacement can take the name.

        The first step of every "hide, build, rewire, remove" rewrite: build the
        replacement, then ``replace_node(hidden, ...)`` rewires and removes.
        """
        hidden = self.unique_name("%s/_%s" % (name, why))
        self.rename(name, hidden)
        return hidden

    def add_name_keeper(self, name: str, outputs: List[Tensor], dtypes: List[int], device: str = "",
                        control_inputs: Iterable[str] = (), output_shapes=None) -> Node:
        """`name` as IdentityN(outputs) (a NoOp when there are none) after `control_inputs`.

        What keeps a replaced node's name fetchable: signatures (``call:0``),
        ``saver_def`` op names and control consumers still resolve.
        """
        if not outputs:
            return self.add_node(name, "NoOp", (), {}, device, control_inputs=control_inputs)
        attrs = {"T": types_attr(dtypes)}
        if output_shapes is not None:
            attrs["_output_shapes"] = output_shapes
        return self.add_node(name, "IdentityN", outputs, attrs, device, control_inputs=control_inputs)

    def keep_only(self, names: set) -> None:
        """Drop every node not in `names`, with its edges (whole-graph pruning)."""
        self.nx.remove_nodes_from([n for n in list(self._node) if n not in names])

    def rename(self, old: str, new: str) -> None:
        """Give node `old` the name `new`, with its edges; O(degree).

        The renamed node moves to the end of the node order (as a node added now).
        """
        if self.has_name(new):
            raise ValueError("node %r already exists" % new)
        control = ("control", old)
        out_edges = [(new, new if v == old else v, ("control", new) if k == control else k, d)
                     for v, keyed in self._succ[old].items() for k, d in keyed.items()]
        in_edges = [(u, new, k, d) for u, keyed in self._pred[old].items() if u != old for k, d in keyed.items()]
        data = self._node[old]
        self._remove_node(old)
        self._succ[new], self._pred[new], self._node[new] = {}, {}, data  # nx.add_node at the end
        self._add_edges(out_edges + in_edges)  # the removed edges' data dicts, now unshared
        node = data.get("node")
        if node is not None:
            node.name = new

    def topological_order(self) -> List[str]:
        """Node names, producers first; ties keep insertion order."""
        import networkx

        order = {n: i for i, n in enumerate(self._node)}
        return list(networkx.lexicographical_topological_sort(self.nx, key=order.__getitem__))

    # ---- lowering --------------------------------------------------------
    def _lower_nodes(self, container, order: Optional[Iterable[Node]] = None) -> None:
        """Append every node's NodeDef to `container` (a repeated NodeDef field), each made by one `add` with
        its fields (a NodeDef built apart and then extended would be copied; a field set at a time costs a call
        each). `order`: the nodes in the order to write them (default `nodes`)."""
        for node in self.nodes if order is None else order:
            inputs = self._input_names(node.name)
            if node.extra is None:
                container.add(name=node.name, op=node.op, input=inputs, device=node.device, attr=node.attrs)
            else:  # the fields the IR does not interpret first, as they were; its own over them
                nd = container.add()
                nd.CopyFrom(node.extra)
                nd.name, nd.op, nd.device = node.name, node.op, node.device
                nd.input.extend(inputs)
                for key, value in node.attrs.items():
                    nd.attr[key].CopyFrom(value)

    def _input_names(self, name: str) -> List[str]:
        """The NodeDef inputs of `name`: its data inputs in order (`node`, `node:N`), then `^node` per control
        input in order."""
        pred = self._pred[name]
        if len(pred) == 1:  # one producer over one edge (most nodes of a chain): no pairs made and sorted
            (u, keyed), = pred.items()
            if len(keyed) == 1:
                d, = keyed.values()
                return [_tensor_name(u, d["src_port"]) if d["kind"] == "data" else "^" + u]
        data, control = [], []
        for u, keyed in pred.items():
            for d in keyed.values():
                if d["kind"] == "data":
                    data.append((d["dst_index"], _tensor_name(u, d["src_port"])))
                else:
                    control.append((d["order"], "^" + u))
        if len(data) > 1:
            data.sort(key=_first)
        if control:
            control.sort()
            return [t for _, t in data] + [c for _, c in control]
        return [t for _, t in data]

    def _lift_node_defs(self, node_defs: Iterable[node_def_pb2.NodeDef], where: str) -> None:
        """Add the nodes and their edges; an input that is not a tensor name, or names no node (TF's
        importer refuses both), is a TranspileError naming `where`, the node and the input."""
        node_defs = list(node_defs)
        succ, pred, nodes = self._succ, self._pred, self._node
        for nd in node_defs:  # nx.add_node, inlined: one call per node is a measurable part of lifting
            node = Node(nd.name, nd.op, dict(nd.attr.items()), nd.device, _extra(nd))
            if nd.name in succ:
                nodes[nd.name]["node"] = node
            else:
                succ[nd.name], pred[nd.name], nodes[nd.name] = {}, {}, {"node": node}
        self._changed()
        for nd in node_defs:
            data = list(nd.input)
            control = [i[1:] for i in data if i[:1] == "^"]
            if control:
                data = [i for i in data if i[:1] != "^"]
            try:
                if pred[nd.name]:  # a second NodeDef of one name: its inputs replace the first one's
                    self.set_inputs(nd.name, data, control)
                else:
                    self._add_input_edges(nd.name, data, control)
            except ValueError as exc:
                raise TranspileError("not a valid graph: %s, node %s: input %s" % (where, nd.name, exc)) from None
        self._refuse_dangling(node_defs, where)

    def _refuse_dangling(self, node_defs: List[node_def_pb2.NodeDef], where: str) -> None:
        """The edges from a name no NodeDef defines (networkx added the name itself) make a TranspileError."""
        for name, data in self._node.items():
            if "node" in data:
                continue
            reader, keyed = next(iter(self._succ[name].items()))
            kind, index = next(iter(keyed))
            nd = next(nd for nd in reversed(node_defs) if nd.name == reader)
            ghost = [i for i in nd.input if not i.startswith("^")][index] if kind == "data" else "^" + name
            raise TranspileError("not a valid graph: %s, node %s: input %r names no node" % (where, reader, ghost))


class Function(Graph):
    """A FunctionDef body. Arguments are ARG_OP nodes named after the input args."""

    in_function = True

    def __init__(self, header: function_pb2.FunctionDef):
        super().__init__()
        #: The FunctionDef without node_def/ret/control_ret (signature, attrs, arg attrs).
        self.header = header
        self.ret: Dict[str, Tensor] = {}
        self.control_ret: Dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.header.signature.name

    def result_tensors(self) -> List[Tensor]:
        return list(self.ret.values())

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        super().replace_uses(old, new)
        self.ret = {k: (new if t == old else t) for k, t in self.ret.items()}

    def rename(self, old: str, new: str) -> None:
        super().rename(old, new)
        self.ret = {k: (Tensor(new, t.port) if t.node == old else t) for k, t in self.ret.items()}
        self.control_ret = {k: (new if v == old else v) for k, v in self.control_ret.items()}

    @classmethod
    def lift(cls, fdef: function_pb2.FunctionDef) -> "Function":
        header = function_pb2.FunctionDef()
        header.CopyFrom(fdef)
        for field in ("node_def", "ret", "control_ret"):
            header.ClearField(field)
        fn = cls(header)
        for arg in fdef.signature.input_arg:
            if arg.name not in fn._succ:  # nx.add_node(name, node=...), on the dicts
                fn._succ[arg.name], fn._pred[arg.name], fn._node[arg.name] = {}, {}, {}
            fn._node[arg.name]["node"] = Node(arg.name, ARG_OP)
        where = "function %s" % fdef.signature.name
        fn._lift_node_defs(fdef.node_def, where)
        try:
            fn.ret = {k: Tensor.parse(v, True) for k, v in fdef.ret.items()}
        except ValueError as exc:
            raise TranspileError("not a valid graph: %s: a return value %s" % (where, exc)) from None
        fn.control_ret = dict(fdef.control_ret.items())
        return fn

    def lower(self) -> function_pb2.FunctionDef:
        fdef = function_pb2.FunctionDef()
        fdef.CopyFrom(self.header)
        self._lower_nodes(fdef.node_def)
        for key, tensor in self.ret.items():
            fdef.ret[key] = str(tensor)
        for key, name in self.control_ret.items():
            fdef.control_ret[key] = name
        return fdef


class GraphDefIR(Graph):
    """A whole GraphDef: top-level nodes plus the function library."""

    def __init__(self, header: graph_pb2.GraphDef):
        super().__init__()
        #: The GraphDef without nodes and functions (versions, gradients, debug info).
        self.header = header
        self.functions: Dict[str, Function] = {}

    def graphs(self) -> Iterator[Tuple[Optional[str], Graph]]:
        """The top-level graph (name None) and every function body: what passes visit."""
        yield None, self
        yield from self.functions.items()

    @classmethod
    def lift(cls, graph_def: graph_pb2.GraphDef) -> "GraphDefIR":
        with collections_paused():
            return cls._lift(graph_def)

    @classmethod
    def _lift(cls, graph_def: graph_pb2.GraphDef) -> "GraphDefIR":
        header = graph_pb2.GraphDef()
        header.CopyFrom(graph_def)
        header.ClearField("node")
        if graph_def.HasField("library"):
            header.library.ClearField("function")
        ir = cls(header)
        ir._lift_node_defs(graph_def.node, "the graph")
        ir.functions = {f.signature.name: Function.lift(f) for f in graph_def.library.function}
        return ir

    def lower(self, order: Optional[Iterable[Node]] = None,
              into: Optional[graph_pb2.GraphDef] = None) -> graph_pb2.GraphDef:
        """The GraphDef of the IR; `order`: its top-level nodes in the order to write them (default `nodes`:
        every node of the graph, each once, is the caller's promise). `into`: the GraphDef to build it in (what
        it held is replaced), rather than a new one a caller would then copy (a big graph's copy costs a second
        GraphDef's memory and time)."""
        graph_def = into if into is not None else graph_pb2.GraphDef()
        graph_def.CopyFrom(self.header)
        with collections_paused():
            self._lower_nodes(graph_def.node, order)
            if self.functions:
                graph_def.library.function.extend(f.lower() for f in self.functions.values())
        return graph_def


def _clear_cache(graph) -> None:
    """networkx 3 caches some views per graph and drops them on every change (nx._clear_cache); older ones do not."""
    import networkx

    getattr(networkx, "_clear_cache", lambda g: None)(graph)


#: Edge data dicts and keys, shared by every edge that has the same ones (most edges of a graph have one of a
#: few): a dict per edge was a tenth of a big graph's memory. So no edge's data is ever changed in place:
#: an edit puts another dict in its place. Kept up to _MAX_SHARED of each (a node of huge fan-in makes its own).
_DATA_EDGES: Dict[Tuple[Port, int], dict] = {}
_CONTROL_EDGES: Dict[int, dict] = {}
_DATA_KEYS: Dict[int, tuple] = {}
_MAX_SHARED = 1 << 16


def _data_edge(port: Port, index: int) -> dict:
    """The data of a data edge from output `port` into input `index` (shared: never change it)."""
    data = _DATA_EDGES.get((port, index))
    if data is None:
        data = {"kind": "data", "src_port": port, "dst_index": index}
        if len(_DATA_EDGES) < _MAX_SHARED:
            _DATA_EDGES[(port, index)] = data
    return data


def _control_edge(order: int) -> dict:
    """The data of the control edge at position `order` among a node's control inputs (shared)."""
    data = _CONTROL_EDGES.get(order)
    if data is None:
        data = {"kind": "control", "order": order}
        if len(_CONTROL_EDGES) < _MAX_SHARED:
            _CONTROL_EDGES[order] = data
    return data


def _data_key(index: int) -> tuple:
    """The key of the data edge into input `index` (shared)."""
    key = _DATA_KEYS.get(index)
    if key is None:
        key = ("data", index)
        if len(_DATA_KEYS) < _MAX_SHARED:
            _DATA_KEYS[index] = key
    return key


def _node_of(tensor: Union[Tensor, str]) -> str:
    """The node a Tensor, or a tensor name as `add_node` takes it, is an output of."""
    return tensor.node if isinstance(tensor, Tensor) else tensor.lstrip("^").partition(":")[0]


def _first(item: tuple):
    return item[0]


#: The NodeDef fields the IR holds itself; any other is kept in Node.extra.
_LIFTED_FIELDS = frozenset({"name", "op", "input", "device", "attr"})


#: How to tell each other NodeDef field is set: (name, has presence, repeated), from the descriptor, so that a
#: field added to NodeDef later is kept too.
_OTHER_FIELDS = tuple((f.name, f.has_presence, f.is_repeated) for f in node_def_pb2.NodeDef.DESCRIPTOR.fields
                      if f.name not in _LIFTED_FIELDS)


def _sets_other_field(nd: node_def_pb2.NodeDef) -> bool:
    """Whether `nd` sets a field the IR does not hold: what ListFields would list, without building its list
    (which copies out every attr and input of the node, most of what `_extra` cost per node)."""
    for name, has_presence, repeated in _OTHER_FIELDS:
        if nd.HasField(name) if has_presence else len(getattr(nd, name)) if repeated else getattr(nd, name):
            return True
    return False


def _extra(nd: node_def_pb2.NodeDef) -> Optional[node_def_pb2.NodeDef]:
    """`nd` without the fields the IR holds, or None when nothing else is set (most nodes: no copy made)."""
    if not _sets_other_field(nd) and not unknown_fields.UnknownFieldSet(nd):
        return None
    extra = node_def_pb2.NodeDef()
    extra.CopyFrom(nd)
    for field in _LIFTED_FIELDS:
        extra.ClearField(field)
    return extra if extra.ByteSize() else None


def lift(graph_def: graph_pb2.GraphDef) -> GraphDefIR:
    """GraphDef (with its FunctionDefLibrary) -> IR."""
    return GraphDefIR.lift(graph_def)
