"""Downgrade end to end for the op families of detection, lookup tables, tf.Example
parsing, half-pixel resizing and the saver: models made by real TF 1.15 (and a
ParseExampleV2 model made by the host's TF 2.x through tf.compat.v1), transpiled
for TF 1.8, 1.4 and 1.12, load in the real release and give the producer's
numbers; what no older release can express (soft-NMS, ragged parsing) is refused
by node and op, and nothing is written."""

import json
import os

import numpy as np
import pytest

from conftest import assert_outputs_match
from model_zoo import Case, op_histogram

TARGETS = ["1.8.0", "1.4.0", "1.12.0"]
CONVERTIBLE = ["detection_nms", "lookup_table", "estimator_parse", "resize_half_pixel"]


def convert(cli, case, release, tmp_path):
    out = tmp_path / ("%s_%s" % (case.name, release))
    result = cli(case.path, out, "--to", release, "--format", "json")
    assert result.returncode == 0, result.stderr
    check = cli("check", out, "--to", release)
    assert check.returncode == 0, check.stdout
    return out, {f["rule"] for f in json.loads(result.stdout)["rules_fired"]}


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
@pytest.mark.parametrize("name", CONVERTIBLE)
def test_tf115_model_runs_in_older_release(name, release, tf1_cases, cli, run_case, tmp_path):
    case = tf1_cases("1.15.0")[name]
    out, _ = convert(cli, case, release, tmp_path)
    assert_outputs_match(run_case(release, out, case), case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,gone,rules", [
    ("1.8.0", {"NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5"},
     {"nms-v5-hard-to-v4", "nms-v4-to-v3", "nms-v3-to-v2"}),
    ("1.4.0", {"NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5"},
     {"nms-v5-hard-to-v4", "nms-v4-to-v3", "nms-v3-to-v2"}),
    ("1.12.0", {"NonMaxSuppressionV5"}, {"nms-v5-hard-to-v4"}),
])
def test_nms_chain_reaches_the_target_opset(release, gone, rules, tf1_cases, cli, tmp_path):
    case = tf1_cases("1.15.0")["detection_nms"]
    out, fired = convert(cli, case, release, tmp_path)
    ops = op_histogram(str(out))
    assert not gone & set(ops), ops
    assert rules <= fired
    if release != "1.12.0":
        # four NMS nodes in, four V2 nodes out (V3 without threshold maps 1:1)
        assert ops["NonMaxSuppressionV2"] == 4


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
def test_soft_nms_is_refused_by_node_and_op(release, tf1_cases, cli, tmp_path):
    case = tf1_cases("1.15.0")["detection_soft_nms"]
    out = tmp_path / "soft_nms"
    result = cli(case.path, out, "--to", release)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NonMaxSuppressionV5" in result.stderr
    assert "non_max_suppression_with_scores/NonMaxSuppressionV5" in result.stderr
    assert "soft_nms_sigma" in result.stderr
    assert not out.exists()


@pytest.mark.real_runtime
def test_soft_nms_still_loads_in_its_own_release(tf1_cases, cli, run_case, tmp_path):
    case = tf1_cases("1.15.0")["detection_soft_nms"]
    out, fired = convert(cli, case, "1.15.0", tmp_path)
    assert not any(r.startswith("nms-") for r in fired)
    assert_outputs_match(run_case("1.15.0", out, case), case)


@pytest.mark.real_runtime
def test_unconverted_lookup_table_fails_in_tf18_at_run_time(tf1_cases, run_case):
    """What the tables rule is for: the validator sees nothing wrong (every op
    exists in 1.8), but TF 1.8's HashTable kernel refuses LookupTableImportV2."""
    from runtime_fixtures import ReleaseLoadError

    case = tf1_cases("1.15.0")["lookup_table"]
    with pytest.raises(ReleaseLoadError, match="ImportValues not supported"):
        run_case("1.8.0", case.path, case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,rewritten", [("1.8.0", True), ("1.12.0", True), ("1.15.0", False)])
def test_lookup_table_import_rewrite_and_assets(release, rewritten, tf1_cases, cli, tmp_path):
    case = tf1_cases("1.15.0")["lookup_table"]
    out, fired = convert(cli, case, release, tmp_path)
    ops = op_histogram(str(out))
    assert ("lookup-table-import-to-initialize-table" in fired) == rewritten
    assert ("LookupTableImportV2" in ops) != rewritten
    assert ops["InitializeTableFromTextFileV2"] == 1
    original = os.path.join(case.path, "assets", "vocab.txt")
    with open(original) as f:
        assert (out / "assets" / "vocab.txt").read_text() == f.read()


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.8.0", "1.4.0"])
def test_resize_half_pixel_is_decomposed_not_stripped(release, tf1_cases, cli, tmp_path):
    case = tf1_cases("1.15.0")["resize_half_pixel"]
    out, fired = convert(cli, case, release, tmp_path)
    ops = op_histogram(str(out))
    assert "ResizeBilinear" not in ops and "ResizeNearestNeighbor" not in ops
    assert {"resize-bilinear-half-pixel", "resize-nearest-half-pixel"} <= fired


# ---------------------------------------------------------------------------
# ParseExampleV2: written by TF >= 2.1 (here the host's TF 2.x via tf.compat.v1)


def _example(tf, x, label, tags):
    feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    if tags:
        feature["tags"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=tags))
    data = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    assert not data.endswith(b"\0")  # numpy 'S' arrays drop trailing NUL bytes
    return data


def build_parse_example_v2(outdir, ragged=False):
    """A tf.compat.v1 graph: serialized tf.Examples -> tf.compat.v1.io.parse_example
    (dense float x[3] with default, dense int64 label, sparse string tags) -> a
    little arithmetic with a (resource) variable; SavedModelBuilder (so a saver
    graph with StaticRegexFullMatch), signature "parse". Returns a Case."""
    import tensorflow as tf

    v1 = tf.compat.v1
    name = "parse_example_v2" + ("_ragged" if ragged else "")
    examples = np.array([_example(tf, [0.5, -1.0, 2.0], 3, [b"a", b"bc"]),
                         _example(tf, [1.25, 0.0, -3.5], 7, []),
                         _example(tf, [2.0, 4.0, 8.0], 1, [b"zz"])])
    export_dir = os.path.join(str(outdir), name)
    with tf.Graph().as_default() as graph:
        serialized = v1.placeholder(tf.string, [None], name="examples")
        spec = {"x": v1.io.FixedLenFeature([3], tf.float32, default_value=[0.0, 0.0, 0.0]),
                "label": v1.io.FixedLenFeature([1], tf.int64),
                "tags": (tf.io.RaggedFeature(tf.string) if ragged else v1.io.VarLenFeature(tf.string))}
        parsed = v1.io.parse_example(serialized, spec)
        tags = parsed["tags"].flat_values if ragged else parsed["tags"].values
        scale = v1.get_variable("scale", initializer=tf.constant([2.0, -1.0, 0.5]))
        outputs = {"score": tf.identity(tf.reduce_sum(parsed["x"] * scale, axis=1) +
                                        tf.cast(parsed["label"][:, 0], tf.float32), name="score"),
                   "label": tf.identity(parsed["label"], name="label"),
                   "tags": tf.identity(tags, name="tags")}
        if not ragged:
            outputs["tag_positions"] = tf.identity(parsed["tags"].indices, name="tag_positions")
        assert any(op.type == "ParseExampleV2" for op in graph.get_operations())
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            keys = sorted(outputs)
            values = dict(zip(keys, sess.run([outputs[k] for k in keys], {serialized: examples})))
            signature = v1.saved_model.signature_def_utils.predict_signature_def(
                inputs={"examples": serialized}, outputs=outputs)
            builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"parse": signature})
            builder.save()
    return Case(name=name, kind="saved_model", path=export_dir, tags=["serve"], signature="parse",
                producer=tf.__version__, inputs={"examples": examples},
                outputs={k: np.asarray(v) for k, v in values.items()},
                input_names={"examples": serialized.name},
                output_names={k: t.name for k, t in outputs.items()})


@pytest.fixture(scope="module")
def parse_v2_cases(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("parse_example_v2")
    return {"plain": build_parse_example_v2(outdir), "ragged": build_parse_example_v2(outdir, ragged=True)}


def test_parse_example_v2_becomes_parse_example(parse_v2_cases, cli, tmp_path):
    case = parse_v2_cases["plain"]
    out, fired = convert(cli, case, "1.8", tmp_path)
    ops = op_histogram(str(out))
    assert "ParseExampleV2" not in ops and ops["ParseExample"] == 1
    assert {"parse-example-v2-to-v1", "static-regex-s3-prefix-to-substr", "var-handle-debug-name"} <= fired


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
def test_parse_example_v2_model_runs_in_older_release(release, parse_v2_cases, cli, run_case, tmp_path):
    case = parse_v2_cases["plain"]
    out, _ = convert(cli, case, release, tmp_path)
    assert_outputs_match(run_case(release, out, case), case)


def test_ragged_parse_example_is_refused_by_node_and_op(parse_v2_cases, cli, tmp_path):
    case = parse_v2_cases["ragged"]
    out = tmp_path / "ragged"
    result = cli(case.path, out, "--to", "1.8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ParseExampleV2" in result.stderr and "ragged" in result.stderr
    assert "ParseExample/ParseExampleV2" in result.stderr  # the node's name
    assert not out.exists()


# ---------------------------------------------------------------------------
# engine pieces the rules above rely on (no real runtime needed)


def test_variable_debug_attrs_are_removed_only_when_set():
    from transpiler.ir.graph import lift
    from transpiler.io.protos import graph_pb2, text_format
    from transpiler.knowledge.releases import catalog
    from transpiler.engine.rule_pass import RulePass
    from transpiler.engine.rule_files import load_rules
    from transpiler.passes.validate import validate

    graph = text_format.Parse("""
        node { name: "v" op: "VarHandleOp"
               attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "shape" value { shape { dim { size: 2 } } } }
               attr { key: "debug_name" value { s: "v/" } }
               attr { key: "allowed_devices" value { list { s: "/job:localhost/replica:0/task:0/device:CPU:0" } } } }
        node { name: "w" op: "VarHandleOp"
               attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "shape" value { shape { dim { size: 2 } } } }
               attr { key: "debug_name" value { s: "" } }
               attr { key: "allowed_devices" value { list { } } } }
        node { name: "read" op: "ReadVariableOp" input: "v" attr { key: "dtype" value { type: DT_FLOAT } } }
    """, graph_pb2.GraphDef())
    ir = lift(graph)
    opset = catalog().opset("1.8")
    rules = RulePass(load_rules(), opset)
    rules(ir)
    fired = {(f.rule, f.node) for f in rules.fired}
    assert {("var-handle-debug-name", "v"), ("var-handle-allowed-devices", "v")} <= fired
    # default values are the generic rule's business
    assert {r for r, n in fired if n == "w"} == {"strip-new-default-attrs"}
    for node in ir.nodes:
        assert "debug_name" not in node.attrs and "allowed_devices" not in node.attrs
    assert not validate(ir, opset)


def test_const_values_are_read_without_tf():
    from transpiler.ir.attrs import make_tensor
    from transpiler.ir.graph import lift
    from transpiler.io.protos import graph_pb2
    from transpiler.ir.values import const_value, tensor_value

    assert tensor_value(make_tensor({"dtype": "DT_FLOAT", "shape": [], "values": [0.0]})) == 0.0
    assert tensor_value(make_tensor({"dtype": "DT_INT32", "shape": [3], "values": [7]})) == [7, 7, 7]
    assert tensor_value(make_tensor({"dtype": "DT_STRING", "shape": [2], "values": ["a", "bc"]})) == ["a", "bc"]
    packed = make_tensor({"dtype": "DT_FLOAT", "shape": [2, 2], "values": []})
    packed.tensor_content = np.array([1, 2, 3, 4], np.float32).tobytes()
    assert tensor_value(packed) == [[1.0, 2.0], [3.0, 4.0]]
    graph = graph_pb2.GraphDef()
    const = graph.node.add(name="c", op="Const")
    const.attr["dtype"].type = 1
    const.attr["value"].tensor.CopyFrom(make_tensor({"dtype": "DT_FLOAT", "shape": [], "values": [0.5]}))
    ident = graph.node.add(name="i", op="Identity", input=["c"])
    ident.attr["T"].type = 1
    ph = graph.node.add(name="p", op="Placeholder")
    ph.attr["dtype"].type = 1
    ir = lift(graph)
    assert const_value(ir, ir.inputs("i")[0]) == 0.5
    from transpiler.ir.graph import Tensor
    assert const_value(ir, Tensor("i", 0)) == 0.5  # through Identity
    assert const_value(ir, Tensor("p", 0)) is None
