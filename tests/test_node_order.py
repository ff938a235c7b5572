"""TF 1.4-1.7 import a GraphDef node by node in file order (transpiler/backends/node_order.py): a Reshape
listed before the Cast/ConcatV2/... that computes its shape dies with IndexError in TF's constant_value.
Rewrites append their nodes, so a consumer of a rewritten node can precede its replacement; the writer
lists producers first for those releases and changes nothing for the others."""

import json

import pytest

from transpiler.backends.node_order import needs_producers_first, producers_first, producers_first_order
from transpiler.io.protos import graph_pb2, text_format
from transpiler.io.readers import read_model
from transpiler.ir.graph import lift
from transpiler.knowledge.releases import catalog
from transpiler.options import ConvertOptions
from transpiler.pipeline.convert import plan


def _graph(text):
    return text_format.Parse(text, graph_pb2.GraphDef())


def _names(graph_def):
    return [n.name for n in graph_def.node]


def test_a_graph_in_order_is_left_byte_for_byte():
    graph = _graph('node {name: "a" op: "Const"} node {name: "b" op: "Cast" input: "a"} '
                   'node {name: "c" op: "NoOp" input: "^b"}')
    before = graph.SerializeToString(deterministic=True)
    assert not producers_first(graph)
    assert graph.SerializeToString(deterministic=True) == before


def test_consumers_move_after_their_producers_and_ties_keep_file_order():
    graph = _graph('node {name: "r" op: "Reshape" input: "x" input: "s"} node {name: "x" op: "Placeholder"} '
                   'node {name: "k" op: "Const"} node {name: "s" op: "Cast" input: "k" input: "^x"}')
    assert producers_first(graph)
    assert _names(graph) == ["x", "k", "s", "r"]


def test_a_while_loop_back_edge_keeps_merge_before_next_iteration():
    graph = _graph('node {name: "enter" op: "Enter" input: "x"} node {name: "x" op: "Placeholder"} '
                   'node {name: "merge" op: "Merge" input: "enter" input: "next"} '
                   'node {name: "add" op: "Add" input: "merge" input: "merge"} '
                   'node {name: "next" op: "NextIteration" input: "add"}')
    assert producers_first(graph)
    assert _names(graph) == ["x", "enter", "merge", "add", "next"]


def _networkx_order(graph_def):
    """The order networkx's lexicographical topological sort of the file positions gives (the reference the
    heap-based sort must match), or None on a cycle."""
    import networkx as nx

    position = {node.name: i for i, node in enumerate(graph_def.node)}
    order = nx.DiGraph()
    order.add_nodes_from(range(len(graph_def.node)))
    for i, node in enumerate(graph_def.node):
        for text in node.input:
            source = position.get(text.lstrip("^").split(":")[0])
            if source is not None and graph_def.node[source].op not in ("NextIteration", "RefNextIteration"):
                order.add_edge(source, i)
    try:
        return [graph_def.node[i].name for i in nx.lexicographical_topological_sort(order)]
    except nx.NetworkXUnfeasible:
        return None


def _random_graph(seed):
    """A GraphDef of up to 30 nodes with random data and control inputs (cycles, self loops and back edges too)."""
    import random

    rng = random.Random(seed)
    count = rng.randint(1, 30)
    graph = graph_pb2.GraphDef()
    for i in range(count):
        node = graph.node.add(name="n%d" % i, op=rng.choice(["Add", "Add", "Add", "NextIteration"]))
        for _ in range(rng.randint(0, 3)):  # mostly an earlier node; any node, itself, twice, data or control
            source = rng.randrange(i) if i and rng.random() < 0.9 else rng.randrange(count)
            node.input.append(rng.choice(["", "^"]) + "n%d" % source + rng.choice(["", ":1"]))
    return graph


@pytest.mark.parametrize("seed", range(40))
def test_the_order_is_networkx_lexicographical_topological_sort(seed):
    graph = _random_graph(seed)
    expected = _networkx_order(graph)
    before = _names(graph)
    moved = producers_first(graph)
    assert _names(graph) == (before if expected is None else expected)
    assert moved == (expected is not None and expected != before)


@pytest.mark.parametrize("seed", range(40))
def test_the_order_read_off_the_ir_is_the_one_of_its_lowered_graph(seed):
    """What the pipeline lowers for TF 1.4-1.7 (producers_first_order of the IR) is what producers_first
    makes of the GraphDef lowered in insertion order, so the writer may take it as it is."""
    graph = _random_graph(seed)
    for node in graph.node:  # a control input names a node, not a port (lift refuses "^n1:1")
        inputs = [text.split(":")[0] if text.startswith("^") else text for text in node.input]
        node.ClearField("input")
        node.input.extend(inputs)
    ir = lift(graph)
    order = producers_first_order(ir)
    lowered = ir.lower()
    before = _names(lowered)
    moved = producers_first(lowered)
    assert (None if order is None else [n.name for n in order]) == (_names(lowered) if moved else None)
    assert _names(ir.lower(order)) == _names(lowered) and before == [n.name for n in ir.nodes]


def test_only_releases_with_the_python_importer_are_reordered():
    releases = {r: needs_producers_first(catalog().opset(r)) for r in ("1.4", "1.7", "1.8", "1.15", "2.5")}
    assert releases == {"1.4": True, "1.7": True, "1.8": False, "1.15": False, "2.5": False}


def _segment_shape(tf):
    """A Reshape whose shape a rule rewrites: SparseSegmentSumWithNumSegments (TF 1.5) becomes a
    SparseSegmentSum padded by a ConcatV2, appended after the Reshape that reads it."""
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [6], name="x")
    dims = tf.sparse.segment_sum(tf.constant([2, 3]), tf.constant([0, 1]), tf.constant([0, 1]), num_segments=2)
    return {"x": x}, {"y": tf.reshape(x, dims)}


@pytest.fixture
def segment_shape_model(tmp_path):
    from test_downgrade_ops import _saved_model

    return _saved_model(tmp_path / "segment_shape", _segment_shape)


def test_the_rewrite_puts_the_reshape_before_the_concat_that_feeds_it(segment_shape_model):
    """What the real-release test below exercises: without the writer's order the output has it."""
    result = plan(read_model(segment_shape_model), ConvertOptions(to="1.4"))
    graph = result.irs[0].lower()
    position = {n.name: i for i, n in enumerate(graph.node)}
    reshape = next(n for n in graph.node if n.op == "Reshape" and n.input[0] == "x")
    assert graph.node[position[reshape.input[1]]].op == "ConcatV2"
    assert position[reshape.input[1]] > position[reshape.name]


@pytest.mark.real_runtime("1.4", "1.7")
@pytest.mark.parametrize("release", ["1.4", pytest.param("1.7", marks=pytest.mark.full_matrix)])
def test_the_output_loads_and_computes_in_the_real_release(release, segment_shape_model, tf_release, cli, tmp_path):
    tf_release(release)
    out = tmp_path / ("segment_shape_tf" + release)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"x": [1, 2, 3, 4, 5, 6]}))
    done = cli(segment_shape_model, out, "--to", release, "--verify", "--format", "json", "--inputs-file", inputs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)["verify"]
    assert report["ok"], report["summary"]
    graph = read_model(out).meta_graphs[0].graph_def
    position = {n.name: i for i, n in enumerate(graph.node)}
    assert all(position[t.lstrip("^").split(":")[0]] < i for i, n in enumerate(graph.node) for t in n.input
               if graph.node[position[t.lstrip("^").split(":")[0]]].op != "NextIteration")
