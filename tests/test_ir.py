"""IR: lift/lower round trip and the editing API."""

import json
import re

import pytest

from transpiler.ir.graph import ARG_OP, Tensor, lift
from transpiler.io.protos import graph_pb2, text_format
from transpiler.io.readers import read_model

CORPUS_GRAPHS = [
    "tensorflow__sm_half_plus_two_v2_2018",
    "serving__saved_model_half_plus_two_tf2_cpu",
    "tfjs__module_with_multiple_signatures",
    "tensorflow__parse_example_graph_def/parse_example_graph_def.pbtxt",
    "tensorflow__metrics_export_meta_graph/metrics_export_meta_graph.pb",
    "tensorflow__feature_column_embedding_ckpt/embedding.ckpt.meta",
]


def canonical(graph_def):
    """GraphDef text with `x:0` spelled `x` in graph-level inputs (they mean the same)."""
    copy = graph_pb2.GraphDef()
    copy.CopyFrom(graph_def)
    for node in copy.node:
        node.input[:] = [re.sub(r":0$", "", i) for i in node.input]
    return text_format.MessageToString(copy)


def assert_round_trip(graph_def):
    lowered = lift(graph_def).lower()
    assert canonical(lowered) == canonical(graph_def)
    again = lift(lowered).lower()
    assert again.SerializeToString(deterministic=True) == lowered.SerializeToString(deterministic=True)


def graph_defs_of(path):
    return [mg.graph_def for mg in read_model(path, require_variables=False).meta_graphs]


@pytest.mark.parametrize("name", CORPUS_GRAPHS)
def test_round_trip_corpus(name, corpus_case):
    for graph_def in graph_defs_of(corpus_case(name)):
        assert_round_trip(graph_def)


def test_round_trip_tf2_models(tf2_cases):
    for case in tf2_cases.values():
        for graph_def in graph_defs_of(case.path):
            assert_round_trip(graph_def)


@pytest.mark.real_runtime
def test_round_trip_tf115_models(tf1_cases):
    for case in tf1_cases("1.15.0").values():
        for graph_def in graph_defs_of(case.path):
            assert_round_trip(graph_def)


SMALL = """
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT float_val: 2 } } } }
node { name: "init" op: "NoOp" }
node { name: "mul" op: "Mul" input: "x" input: "c" input: "^init" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "out" op: "Identity" input: "mul:0" attr { key: "T" value { type: DT_FLOAT } } }
library { function {
  signature { name: "f" input_arg { name: "a" type: DT_FLOAT } output_arg { name: "y" type: DT_FLOAT } }
  node_def { name: "neg" op: "Neg" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
  ret { key: "y" value: "neg:y:0" } } }
"""


@pytest.fixture
def small():
    return lift(text_format.Parse(SMALL, graph_pb2.GraphDef()))


def test_queries(small):
    assert small.inputs("mul") == [Tensor("x", 0), Tensor("c", 0)]
    assert small.control_inputs("mul") == ["init"]
    assert small.consumers(Tensor("mul", 0)) == [("out", 0)]
    assert [n.name for n in small.nodes_by_op("Mul")] == ["mul"]
    fn = small.functions["f"]
    assert fn["a"].op == ARG_OP and [n.name for n in fn.nodes] == ["neg"]
    assert fn.inputs("neg") == [Tensor("a", None)] and fn.ret == {"y": Tensor("neg", "y:0")}


def test_replace_node_moves_data_and_control_edges(small):
    small.add_node("twice", "Add", [Tensor("x"), Tensor("x")], attrs=dict(small["mul"].attrs))
    small.add_node("later", "NoOp", control_inputs=["mul"])
    small.replace_node("mul", {0: Tensor("twice", 0)}, control_output="twice")
    assert "mul" not in small
    assert small.inputs("out") == [Tensor("twice", 0)]
    assert small.control_inputs("later") == ["twice"]
    assert "mul" not in text_format.MessageToString(small.lower())


def test_replace_uses_moves_only_the_edges_of_that_tensor(small):
    """Each edge from the old tensor becomes one from the new at the same input index; a reader's other
    inputs, its control inputs and readers of other ports of the same node keep theirs."""
    small.add_node("split", "Unpack", [Tensor("x")], attrs={})
    small.add_node("r", "AddN", [Tensor("split", 1), Tensor("c"), Tensor("split", 1), Tensor("split", 0)],
                   control_inputs=["init"])
    small.replace_uses(Tensor("split", 1), Tensor("mul", 0))
    assert small.inputs("r") == [Tensor("mul", 0), Tensor("c", 0), Tensor("mul", 0), Tensor("split", 0)]
    assert small.control_inputs("r") == ["init"]
    assert small.consumers(Tensor("mul", 0)) == [("out", 0), ("r", 0), ("r", 2)]
    assert small.consumers(Tensor("split", 1)) == [] and small.consumers(Tensor("split", 0)) == [("r", 3)]
    assert [n.input for n in small.lower().node if n.name == "r"] == [["mul", "c", "mul", "split", "^init"]]
    small.replace_uses(Tensor("mul", 0), "split:1")  # a tensor name, as passes hand their outputs
    assert small.inputs("r")[0] == Tensor("split", 1) and small.consumers(Tensor("mul", 0)) == []
    small.replace_uses(Tensor("mul", 0), "split:1")  # nothing reads it now: nothing to do


def test_remove_refuses_while_read(small):
    with pytest.raises(ValueError, match="still read by out"):
        small.remove_node("mul")
    before = small.lower()
    assert canonical(before) == canonical(lift(text_format.Parse(SMALL, graph_pb2.GraphDef())).lower())


def test_rename_updates_readers_and_function_results(small):
    small.rename("mul", "product")
    assert small.inputs("out") == [Tensor("product", 0)]
    fn = small.functions["f"]
    fn.rename("neg", "negate")
    assert fn.ret == {"y": Tensor("negate", "y:0")}
    lowered = small.lower()
    assert lowered.library.function[0].ret["y"] == "negate:y:0"


def test_unique_name_and_topological_order(small):
    assert small.unique_name("mul") == "mul_1"
    order = small.topological_order()
    assert order.index("x") < order.index("mul") < order.index("out")
    assert order.index("init") < order.index("mul")


def test_lowering_is_deterministic(small):
    assert small.lower().SerializeToString(deterministic=True) == small.lower().SerializeToString(deterministic=True)


# ---- values read out of the graph never materialise a huge tensor (issue 13) -------------------------

def _claiming_const(shape, **content):
    """`x` * Const `c` (DT_FLOAT) whose TensorProto claims `shape` but holds only `content`."""
    from transpiler.io.protos import tensor_pb2

    graph = text_format.Parse("""
        node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "mul_no_nan" op: "MulNoNan" input: "x" input: "c" attr { key: "T" value { type: DT_FLOAT } } }
    """, graph_pb2.GraphDef())
    tensor = tensor_pb2.TensorProto(dtype=1, **content)
    for size in shape:
        tensor.tensor_shape.dim.add().size = size
    graph.node[1].attr["value"].tensor.CopyFrom(tensor)
    return lift(graph)


@pytest.mark.parametrize("content", [{"float_val": [1.0]}, {"tensor_content": b"\0\0\x80?"}],
                         ids=["float_val", "tensor_content"])
def test_const_claiming_2_31_elements_is_not_materialised(content):
    import time
    import tracemalloc

    from transpiler.ir.values import const_value, tensor_value

    ir = _claiming_const([2 ** 31], **content)
    tracemalloc.start()
    start = time.monotonic()
    assert const_value(ir, Tensor("c", 0)) is None
    assert tensor_value(ir["c"].attrs["value"].tensor) is None
    assert time.monotonic() - start < 0.5
    assert tracemalloc.get_traced_memory()[1] < 1 << 20  # peak well under a megabyte, not 8 GiB
    tracemalloc.stop()
    assert const_value(_claiming_const([2, 2], **content), Tensor("c", 0)) == [[1.0, 1.0], [1.0, 1.0]]


def test_const_with_a_huge_product_of_dims_is_not_materialised():
    from transpiler.ir.values import const_value

    assert const_value(_claiming_const([2 ** 31, 2 ** 31, 2 ** 31], float_val=[1.0]), Tensor("c", 0)) is None
    assert const_value(_claiming_const([-1, 4], float_val=[1.0]), Tensor("c", 0)) is None


def test_stored_values_are_bounded_too(monkeypatch):
    """tensor_content, repeated fields and string lists longer than the bound are not decoded."""
    from transpiler.ir import values
    from transpiler.ir.attrs import make_tensor

    monkeypatch.setattr(values, "MAX_ELEMENTS", 8)
    assert values.tensor_value(make_tensor({"dtype": "DT_FLOAT", "shape": [8], "values": [1.0] * 8})) == [1.0] * 8
    fat = _claiming_const([4], tensor_content=b"\0" * 4 * 9)
    assert values.tensor_value(fat["c"].attrs["value"].tensor) is None
    assert values.tensor_value(make_tensor({"dtype": "DT_INT32", "shape": [], "values": list(range(9))})) is None
    assert values.tensor_value(make_tensor({"dtype": "DT_STRING", "shape": [], "values": ["a"] * 9})) is None
    monkeypatch.setattr(values, "MAX_STRING_BYTES", 4)
    assert values.tensor_value(make_tensor({"dtype": "DT_STRING", "shape": [1], "values": ["hello"]})) is None


def test_rule_templates_see_no_value_for_a_huge_const():
    """`const(i)` and match.const_inputs ask values.py: the claimed 2**31 elements are never made."""
    from transpiler.engine.rule_files import Rule
    from transpiler.engine.rule_pass import RulePass
    from transpiler.knowledge.releases import catalog

    matching = Rule("by-value", "f", "", {"op": "MulNoNan", "const_inputs": {1: 1.0}}, {}, "refuse", "by value")
    reading = Rule("reads-const", "f", "", {"op": "MulNoNan"}, {}, "refuse", "const is {{ const(1) }}")
    rules = RulePass([matching, reading], catalog().opset("1.12"))
    rules(_claiming_const([2 ** 31], float_val=[1.0]))
    assert rules.refused == {(None, "mul_no_nan"): "refused by rule 'reads-const': const is None"}


def _chain_graph():
    gd = graph_pb2.GraphDef()
    text_format.Parse('node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }'
                      'node { name: "y" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }'
                      'node { name: "z" op: "Relu" input: "y" attr { key: "T" value { type: DT_FLOAT } } }', gd)
    return gd


def test_the_networkx_view_shares_the_irs_dicts_both_ways():
    """`g.nx` is a MultiDiGraph on the IR's own adjacency: networkx algorithms see the IR's edits, and an
    edit made through networkx (prune's remove_nodes_from) is the IR's."""
    import networkx as nx

    ir = lift(_chain_graph())
    assert nx.ancestors(ir.nx, "z") == {"x", "y"}
    ir.add_node("w", "Relu", ["z"], {"T": ir["y"].attrs["T"]})
    assert nx.ancestors(ir.nx, "w") == {"x", "y", "z"} and ir.nx.out_degree("z") == 1
    ir.nx.remove_nodes_from(["w", "z"])
    assert [n.name for n in ir.nodes] == ["x", "y"] and ir.consumers(Tensor("y", 0)) == []
    assert "z" not in ir and not ir.has_name("z")
    assert ir.topological_order() == ["x", "y"]


def test_reading_lifting_and_checking_import_no_networkx():
    """networkx (a fifth of a second to import) is imported by the passes that run its algorithms only:
    `check` and a conversion without such a pass never pay for it."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from transpiler.pipeline.check import check; "
            "import transpiler.pipeline.convert; from transpiler.ir.graph import lift; import test_ir; "
            "ir = lift(test_ir._chain_graph()); ir.replace_uses(test_ir.Tensor('y', 0), test_ir.Tensor('x', 0)); "
            "ir.remove_node('y'); ir.lower(); print('networkx' in sys.modules)")
    here = str(__import__("pathlib").Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=here)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_firings_of_one_template_shape_get_attrs_of_their_own():
    """A decomposition's shape (and the AttrValues made of it) serves every firing; each emitted node still
    holds its own AttrValues and names, so editing one node leaves the others as they were."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.engine.rule_pass import RulePass
    from transpiler.knowledge.releases import catalog

    text = "".join('node { name: "%s" op: "LeakyRelu" input: "x" attr { key: "T" value { type: DT_FLOAT } } '
                   'attr { key: "alpha" value { f: 0.5 } } }' % name for name in ("a", "bb", "cc"))
    graph = lift(text_format.Parse(SMALL.split("library")[0] + text, graph_pb2.GraphDef()))
    rules = RulePass(load_rules([]), catalog().opset("1.4"))
    rules(graph)
    assert sorted(f.node for f in rules.fired) == ["a", "bb", "cc"]
    assert graph.inputs("bb") == [Tensor("bb/pos"), Tensor("bb/scaled")] and graph["bb"].op == "Sub"
    assert graph.inputs("cc/scaled") == [Tensor("cc/neg"), Tensor("cc/alpha")]
    alphas = [graph[name + "/alpha"].attrs["value"] for name in ("a", "bb", "cc")]
    assert alphas[0] == alphas[1] == alphas[2] and alphas[0] is not alphas[1]
    alphas[0].tensor.float_val[0] = 3.0
    assert list(alphas[1].tensor.float_val) == [0.5] and graph["bb/pos"].attrs["T"] is not graph["cc/pos"].attrs["T"]


def test_len_counts_what_nodes_yields_without_arguments_or_names_only_an_edge_gave():
    graph = lift(text_format.Parse(SMALL, graph_pb2.GraphDef()))
    graph.add_node("late", "Identity", ["not_yet"])  # "not_yet" is a name an edge made, not a node
    assert len(graph) == len(list(graph.nodes)) and "not_yet" not in graph
    for function in graph.functions.values():
        assert len(function) == len(list(function.nodes)) < len(function._node)


def test_names_among_keeps_node_order_and_leaves_out_arguments_and_edge_only_names():
    graph = lift(text_format.Parse(SMALL, graph_pb2.GraphDef()))
    graph.add_node("late", "Identity", ["not_yet"])
    order = [n.name for n in graph.nodes]
    assert graph.names_among(set(order[::-1][:3]) | {"not_yet", "nowhere"}) == order[-3:]
    for function in graph.functions.values():
        args = [name for name, data in function._node.items() if data["node"].op == ARG_OP]
        assert args and function.names_among(set(function._node)) == [n.name for n in function.nodes]


def _replace_the_long_way(graph, name, nodes, outputs, control_output):
    """What Graph.replace_by promises to equal: hide, add each node, replace_node of the hidden one."""
    hidden = graph.hide(name, "replaced")
    for new in nodes:
        graph.add_node(*new)
    graph.replace_node(hidden, outputs, control_output=control_output)


def _random_replacement(rng, graph, name):
    """New nodes for `name` (the last one taking its name, or not), outputs keeping or moving its ports."""
    others = [n for n in graph._node if n != name]
    count = rng.randint(1, 3)
    names = ["%s/r%d" % (name, i) for i in range(count - 1)] + [rng.choice([name, name, "%s/last" % name])]
    nodes = []
    for i, new in enumerate(names):
        pool = others + names[:i] + ([name] if rng.random() < 0.1 else [])
        inputs = [Tensor(rng.choice(pool), rng.choice([0, 0, 1])) for _ in range(rng.randint(0, 2))]
        control = [rng.choice(pool)] if rng.random() < 0.2 else []
        nodes.append((new, "AddN", inputs, {}, "", control))
    ports = {0: Tensor(names[-1], 0), 1: Tensor(names[-1], 1)}
    if rng.random() < 0.2:
        ports[1] = Tensor(names[0], 0)
    if rng.random() < 0.1:
        del ports[1]
    return nodes, ports, names[-1]


def test_replace_by_in_place_makes_the_graph_the_long_way_makes():
    """On random graphs (several readers, ports 0 and 1, control readers, self reads), replace_by writes
    the GraphDef, node order included, that hiding, adding and replace_node write, or raises as they do."""
    import random

    rng = random.Random(7)
    in_place = 0
    for case in range(400):
        text = "".join('node { name: "n%d" op: "AddN" %s}' % (i, "".join(
            'input: "%s" ' % rng.choice(["n%d" % j, "n%d:1" % j, "^n%d" % j]) for j in
            rng.sample(range(6), rng.randint(0, 5)) if j != i or rng.random() < 0.3)) for i in range(6))
        graph_def = text_format.Parse(text, graph_pb2.GraphDef())
        one, two = lift(graph_def), lift(graph_def)
        name = "n%d" % rng.randrange(6)
        nodes, outputs, control_output = _random_replacement(rng, one, name)
        in_place += one._keeps_readers(name, nodes, outputs)
        try:
            _replace_the_long_way(one, name, nodes, outputs, control_output)
        except ValueError as exc:
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                two.replace_by(name, nodes, outputs, control_output)
            continue
        two.replace_by(name, nodes, outputs, control_output)
        assert text_format.MessageToString(two.lower()) == text_format.MessageToString(one.lower()), case
    assert in_place > 40  # the in-place path was taken often enough to be tested


def test_replace_by_in_a_function_body_updates_its_results(small):
    fn = small.functions["f"]
    fn.replace_by("neg", [("neg/x", "Neg", [Tensor("a", None)], dict(fn["neg"].attrs), "", []),
                          ("neg", "Identity", [Tensor("neg/x", "y:0")], dict(fn["neg"].attrs), "", [])],
                  {"y:0": Tensor("neg", "output:0")})
    assert fn.ret == {"y": Tensor("neg", "output:0")} and fn.inputs("neg") == [Tensor("neg/x", "y:0")]


def _visits(tmp_path, rules_text: str, nodes_text: str):
    """(graph, rule pass, names visited after the first round) of the rules pass for 1.4 over SMALL's nodes
    and `nodes_text`, with the rules of `rules_text` besides the built-in ones."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.engine.rule_pass import RulePass
    from transpiler.knowledge.releases import catalog

    rules = tmp_path / "near.yaml"
    rules.write_text(rules_text)
    graph = lift(text_format.Parse(SMALL.split("library")[0] + nodes_text, graph_pb2.GraphDef()))
    rule_pass = RulePass(load_rules([rules]), catalog().opset("1.4"))
    visited = []
    real = rule_pass._idle  # asked of every node a round visits, before any rule is tried on it
    rule_pass._idle = lambda node: visited.append(node.name) or real(node)
    rule_pass(graph)
    first_round = SMALL.split("library")[0].count("node {") + nodes_text.count("node {")
    return graph, rule_pass, visited[first_round:]


def test_a_rule_that_looks_at_a_producer_sees_it_rewritten_later_in_the_round(tmp_path):
    """Later rounds visit only the nodes near a rewrite, and among those near it only the ones whose rules look
    beyond the node: a reader written before its producer matches on what the producer became."""
    rules = ("rules:\n"
             "  - id: neg-of-sub\n    why: a test\n    when: {target_has_op: Neg}\n"
             "    match: {op: Neg, input_ops: {0: Sub}}\n    refuse: \"reads {{ inputs[0] }}\"\n"
             "  - id: tanh-of-sub\n    why: a test\n    when: {target_has_op: Tanh}\n"
             "    match: {op: Tanh}\n    refuse: \"no look around\"\n")
    text = ('node { name: "b" op: "Neg" input: "a" attr { key: "T" value { type: DT_FLOAT } } }'
            'node { name: "t" op: "Tanh" input: "a" attr { key: "T" value { type: DT_FLOAT } } }'
            'node { name: "a" op: "LeakyRelu" input: "x" attr { key: "T" value { type: DT_FLOAT } } '
            'attr { key: "alpha" value { f: 0.5 } } }')
    graph, rule_pass, second = _visits(tmp_path, rules, text)
    assert graph["a"].op == "Sub" and rule_pass.refused[(None, "b")] == "refused by rule 'neg-of-sub': reads a"
    assert "b" in second and "t" not in second and {"a", "a/pos", "a/alpha"} <= set(second)


_NEXT_TO_LEAKY = ('node { name: "b" op: "Neg" input: "a" attr { key: "T" value { type: DT_FLOAT } } }'
                  'node { name: "a" op: "LeakyRelu" input: "x" attr { key: "T" value { type: DT_FLOAT } } '
                  'attr { key: "alpha" value { f: 0.5 } } }')


def test_a_rewrite_where_no_node_looks_around_revisits_only_what_it_changed(tmp_path):
    """With no node in the graph whose rules look around, a rewrite's neighbours are not visited again; once a
    node that looks around is there, they are (the Neg next to the rewritten LeakyRelu)."""
    own = "rules:\n  - id: neg-own\n    why: a test\n    when: {target_has_op: Neg}\n    match: {op: Neg}\n" \
          "    refuse: \"reads {{ inputs[0] }}\"\n"
    graph, _, second = _visits(tmp_path, own, _NEXT_TO_LEAKY)
    assert graph["a"].op == "Sub" and "b" not in second and {"a", "a/pos", "a/alpha"} <= set(second)
    looking = own.replace("match: {op: Neg}", "match: {op: Neg, inputs: 1}")
    graph, _, second = _visits(tmp_path, looking, _NEXT_TO_LEAKY)
    assert graph["a"].op == "Sub" and "b" in second


def test_a_node_with_only_strip_rules_and_nothing_to_strip_is_not_tried(tmp_path):
    """The rules pass tries no rule on a node whose op has only op-wide strip rules when it has no attr the
    target lacks (most nodes of a big graph); a node with such an attr is still tried, and stripped."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.engine.rule_pass import RulePass
    from transpiler.knowledge.releases import catalog

    text = SMALL.split("library")[0] + (
        'node { name: "conv" op: "Conv2D" input: "x" input: "x" attr { key: "T" value { type: DT_FLOAT } }\n'
        '       attr { key: "strides" value { list { i: [1, 1, 1, 1] } } }\n'
        '       attr { key: "padding" value { s: "SAME" } }\n'
        '       attr { key: "explicit_paddings" value { list { } } } }\n')
    graph = lift(text_format.Parse(text, graph_pb2.GraphDef()))
    rule_pass = RulePass(load_rules(), catalog().opset("1.4"))
    tried = []
    real = rule_pass._rewrite_node
    rule_pass._rewrite_node = lambda g, node, f: tried.append(node.name) or real(g, node, f)
    rule_pass(graph)
    assert tried == ["conv"] and "explicit_paddings" not in graph["conv"].attrs
    assert [f.rule for f in rule_pass.fired] == ["strip-new-default-attrs"]


def test_a_template_that_writes_input_names_out_as_they_are_does_not_look_around(tmp_path):
    """Reading `inputs` makes a rule look around unless its templates only write the names out (then nothing
    they decide depends on them), joined into other names or not (name_flow.py); testing a name, or a
    filter on one, counts."""
    from transpiler.engine.rule_files import load_rules
    from transpiler.engine.rule_pass import RulePass
    from transpiler.knowledge.releases import catalog

    templates = {"writes": "reads {{ inputs[0] }} of {{ name }}", "tests": "{% if inputs[0] == 'a' %}a{% endif %}",
                 "joins": "{{ inputs[0] ~ '/x' }}", "measures": "{{ (inputs[0] ~ '/x') | length }}",
                 "producer": "{{ producer_attrs(0) }}"}
    rules = tmp_path / "reads.yaml"
    rules.write_text("rules:\n" + "".join(
        "  - id: %s\n    why: a test\n    when: {target_has_op: Neg}\n    match: {op: Neg}\n    refuse: %s\n"
        % (rule_id, json.dumps(text)) for rule_id, text in templates.items()))
    rule_pass = RulePass(load_rules([rules]), catalog().opset("1.4"))
    looks = {rule.id: rule_pass._looks_around(rule) for rule in rule_pass.rules if rule.id in templates}
    assert looks == {"writes": False, "tests": True, "joins": False, "measures": True, "producer": True}
    assert not rule_pass._looks_around(next(r for r in rule_pass.rules if r.id == "leaky-relu-to-relu"))


def test_what_is_made_while_collection_is_paused_is_old_after_it():
    """collections_paused leaves what was made meanwhile in the oldest generation, so resuming does not walk
    it all as young (a big graph's IR); cyclic garbage among it is still freed by a full collection."""
    import gc
    import weakref

    from transpiler.ir.graph import collections_paused

    class Cycle:
        pass

    with collections_paused():
        kept = [[i] for i in range(50000)]
        cycle = Cycle()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
    assert gc.isenabled()
    assert any(o is kept[-1] for o in gc.get_objects(generation=2))
    gc.collect()
    assert alive() is None
