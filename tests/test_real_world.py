"""Real-world models (tests/data, files other projects wrote): never worse than the input.

Each test is one item of what users hit on public models, shown on the model
that showed it: the output loads in the real release and computes what the
model's own project expects (reference_io.json).
"""

import pathlib
import shutil

import numpy as np
import pytest

from transpiler.io.protos import meta_graph_pb2, saved_model_pb2, text_format
from transpiler.io.readers import read_model

DATA = pathlib.Path(__file__).resolve().parent / "data"
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "half_plus_two_tf214"


def examples(values, feature="x"):
    """A batch of serialized tf.Example protos with one float feature each (the half_plus_two tests' input).

    Values whose encoding ends in a NUL byte (0.0) do not survive the harness's numpy 'S' arrays.
    """
    import tensorflow as tf

    return np.array([tf.train.Example(features=tf.train.Features(feature={
        feature: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))})).SerializeToString() for v in values],
        dtype=object)


def converted(cli, model, out, release, *extra):
    result = cli(model, out, "--to", release, *extra)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    return out


# ---------------------------------------------------------------------------
# 3. the GraphDef producer is never raised


@pytest.mark.real_runtime
@pytest.mark.parametrize("name,signature", [("tensorflow__sm_half_plus_two_pbtxt_2016", "tensorflow/serving/regress"),
                                            ("tensorflow__sm_half_plus_two_v1ckpt_2016", "tensorflow/serving/regress")])
def test_2016_graphs_keep_their_producer_and_run_in_18(cli, run_in_release, tmp_path, name, signature):
    out = converted(cli, DATA / name, tmp_path / "out", "1.8")
    before = read_model(DATA / name).meta_graphs[0].graph_def.versions.producer
    assert read_model(out).meta_graphs[0].graph_def.versions.producer == before < 26
    got = run_in_release("1.8.0", str(out), {"inputs": examples([1.0, 2.0, 3.0, 4.0])}, signature)
    np.testing.assert_allclose(got["outputs"].reshape(-1), [2.5, 3.0, 3.5, 4.0])


# ---------------------------------------------------------------------------
# 4. check and convert agree: the producer's stripped_op_list counts for both


@pytest.mark.real_runtime
def test_forward_compatible_attr_declared_by_the_producer(cli, run_in_release, tmp_path):
    model = DATA / "tensorflow__sm_half_plus_two_fwdcompat_pbtxt"
    assert cli("check", model, "--to", "1.8").returncode == 0
    out = converted(cli, model, tmp_path / "out", "1.8")
    assert cli("check", out, "--to", "1.8").returncode == 0
    got = run_in_release("1.8.0", str(out), {"inputs": examples([1.0, 2.0, 3.0, 4.0])}, "regress_x_to_y")
    np.testing.assert_allclose(got["outputs"].reshape(-1), [2.5, 3.0, 3.5, 4.0])


# ---------------------------------------------------------------------------
# 6. the renamed checkpoint and the saver graph agree key for key; 11. TF 2 still loads the output


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.8.0", "1.15.0"])
def test_tf20_module_checkpoint_keys_agree_with_the_saver(cli, run_in_release, tmp_path, release):
    out = converted(cli, DATA / "tfjs__module_with_multiple_signatures", tmp_path / "out", release)
    for x in (1.0, 2.0, 3.0):  # the signature takes a scalar; reference_io's [1, 2, 3] -> [3, 6, 9] one by one
        got = run_in_release(release, str(out), {"x": np.array(x, np.float32)}, "serving_default")
        np.testing.assert_allclose(got["output_0"], 3 * x)


def test_tf1_output_of_a_tf2_model_still_loads_in_tf2(cli, tmp_path):
    import tensorflow as tf

    out = converted(cli, EXAMPLE, tmp_path / "out", "1.8")
    assert not read_model(out).meta_graphs[0].HasField("object_graph_def")
    loaded = tf.saved_model.load(str(out))
    y = loaded.signatures["serving_default"](x=tf.constant([2.0]))
    np.testing.assert_allclose(list(y.values())[0].numpy(), [3.0])


# ---------------------------------------------------------------------------
# 2. variables without a checkpoint; 1. OUT's form follows its name


def test_meta_graph_with_variables_but_no_checkpoint_converts(cli, tmp_path):
    out = converted(cli, DATA / "TensorFlow.NET__xor_meta" / "xor.meta", tmp_path / "xor18.meta", "1.8")
    assert out.is_file() and not (tmp_path / "xor18.index").exists()
    meta_graph_pb2.MetaGraphDef.FromString(out.read_bytes())
    assert cli("check", out, "--to", "1.8").returncode == 0


def test_meta_output_is_a_file_with_its_checkpoint_beside_it(cli, tmp_path):
    src = DATA / "tensorflow__feature_column_embedding_ckpt"
    (tmp_path / "checkpoint").write_text("mine\n")
    out = converted(cli, src / "embedding.ckpt.meta", tmp_path / "model18.meta", "1.8")
    assert out.is_file()
    assert (tmp_path / "model18.index").is_file() and list(tmp_path.glob("model18.data-*"))
    assert (tmp_path / "checkpoint").read_text() == "mine\n", "an existing checkpoint state file is kept"
    again = read_model(out)
    assert again.checkpoint == tmp_path / "model18"
    second = cli(src / "embedding.ckpt.meta", out, "--to", "1.8")
    assert second.returncode == 2 and "already exists" in second.stderr


def test_pb_for_a_tf2_target_stays_a_graph_def_tf2_imports(cli, tmp_path):
    import tensorflow as tf

    src = DATA / "tensorflow-onnx__lstm_frozen" / "frozen.pb"
    out = converted(cli, src, tmp_path / "lstm221.pb", "2.21")
    assert out.is_file()
    graph_def = tf.compat.v1.GraphDef.FromString(out.read_bytes())
    with tf.Graph().as_default():
        tf.graph_util.import_graph_def(graph_def, name="")


def test_a_graph_def_out_never_drops_variables(cli, tmp_path):
    result = cli(DATA / "tfjs__module_with_multiple_signatures", tmp_path / "out.pb", "--to", "1.8")
    assert result.returncode == 2 and "--freeze" in result.stderr
    assert not (tmp_path / "out.pb").exists()


def test_graph_def_to_a_saved_model_directory(cli, tmp_path):
    out = converted(cli, DATA / "tensorflow-onnx__lstm_frozen" / "frozen.pb", tmp_path / "lstm_sm", "1.8")
    sm = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    assert [list(mg.meta_info_def.tags) for mg in sm.meta_graphs] == [["serve"]]


# ---------------------------------------------------------------------------
# 5. functions nothing calls do not block a TF 1.x target; 7. text outputs; 10. devices


def test_unreachable_functions_are_dropped_for_tf1_targets(cli, tmp_path):
    from transpiler.ir.graph import lift
    from transpiler.passes.inliner import referenced_functions

    src = DATA / "tfjs__module_with_multiple_signatures"
    before = lift(read_model(src).meta_graphs[0].graph_def)
    assert set(before.functions) - referenced_functions(before), "the input has functions only its object graph names"
    out = converted(cli, src, tmp_path / "out", "1.15")
    after = lift(read_model(out).meta_graphs[0].graph_def)
    assert after.functions and set(after.functions) == referenced_functions(after)


@pytest.mark.real_runtime
def test_text_output_drops_debug_info_for_old_releases(cli, run_in_release, tmp_path):
    src = DATA / "tensorflow__sm_x_plus_y_v2_debuginfo"
    text_copy = tmp_path / "text_model"
    shutil.copytree(src, text_copy)
    sm = saved_model_pb2.SavedModel.FromString((text_copy / "saved_model.pb").read_bytes())
    (text_copy / "saved_model.pb").unlink()
    (text_copy / "saved_model.pbtxt").write_text(text_format.MessageToString(sm))
    assert "experimental_debug_info" in (text_copy / "saved_model.pbtxt").read_text()
    out = converted(cli, text_copy, tmp_path / "out", "1.12")
    assert "experimental_debug_info" not in (out / "saved_model.pbtxt").read_text()
    x, y = np.array(2.0, np.float32), np.array(3.0, np.float32)
    got = run_in_release("1.12.0", str(out), {"x": x, "y": y}, "serving_default")
    np.testing.assert_allclose(list(got.values())[0], 5.0)


def test_clear_devices(cli, tmp_path):
    out = converted(cli, DATA / "tensorflow__sm_x_plus_y_v2_debuginfo", tmp_path / "out", "1.15", "--clear-devices")
    graph_def = read_model(out).meta_graphs[0].graph_def
    assert not [n.device for n in graph_def.node if n.device]
    assert not [n.device for f in graph_def.library.function for n in f.node_def if n.device]


XLA_LSTM = DATA / "tensorflow__xla_lstm_layer_inference" / "lstm_layer_inference.pbtxt"


@pytest.mark.parametrize("release", ["1.8", "2.21"])
def test_gpu_pinned_nodes_are_named_unless_devices_are_cleared(tmp_path, release):
    """Every node of this graph is on /device:GPU:*: a CPU-only build refuses it, as is or converted, so
    the report says so (and how to run it anywhere) instead of a bare "wrote OUT"; --to 2.x clears too."""
    import transpiler

    kept = transpiler.convert(XLA_LSTM, tmp_path / "kept.pbtxt", to=release)
    assert any("312 node(s) are pinned to a GPU (/device:GPU:*" in n and "--clear-devices" in n for n in kept.notes)
    cleared = transpiler.convert(XLA_LSTM, tmp_path / "cleared.pbtxt", to=release, clear_devices=True)
    assert "cleared the device of 312 node(s)" in cleared.notes and not any("pinned" in n for n in cleared.notes)
    assert not [n.device for n in read_model(tmp_path / "cleared.pbtxt").meta_graphs[0].graph_def.node if n.device]
    # `check IN` says it too (real CPU-only releases refuse the input as is); a GPU build loads it, so no block
    report = transpiler.check(XLA_LSTM, to=release)
    assert not report.blocking and any("312 node(s) are pinned to a GPU" in n for n in report.notes), report.notes
    assert not transpiler.check(tmp_path / "cleared.pbtxt", to=release).notes


@pytest.mark.parametrize("producer,blocked", [(0, False), (16, False), (17, True), (30, True)])
def test_deprecated_ops_are_judged_by_the_graphs_producer(tmp_path, producer, blocked):
    """TF refuses an op deprecated at version N only in graphs whose producer is >= N (Inv: N = 17)."""
    import transpiler
    from transpiler.io.protos import graph_pb2

    graph = graph_pb2.GraphDef()
    x = graph.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    inv = graph.node.add(name="inv", op="Inv", input=["x"])
    inv.attr["T"].type = 1
    graph.versions.producer = producer
    path = tmp_path / "inv.pb"
    path.write_bytes(graph.SerializeToString())
    assert transpiler.check(path, to="1.4").blocking is blocked
    assert transpiler.explain(path, to="1.4").blocking is blocked


# ---------------------------------------------------------------------------
# An input that no release loads (the "invalid everywhere" model): refused by node and op,
# exit 1, nothing written; check says the same. The verdict comes from the input ranks each real
# release's shape functions refuse (tools/dump_ranks.py), so it needs no runtime here.


@pytest.mark.parametrize("release", ["1.4", "1.8", "1.12", "1.15", "2.21"])
def test_input_invalid_everywhere_is_refused_by_node_and_op(cli, tmp_path, release):
    model = DATA / "tensorflow__parse_example_graph_def" / "parse_example_graph_def.pbtxt"
    out = tmp_path / "out.pbtxt"
    result = cli(model, out, "--to", release)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ParseExample/ParseExample" in result.stderr and "input 'serialized'" in result.stderr
    assert "rank 0" in result.stderr and "wrote" not in result.stdout
    assert not out.exists() and list(tmp_path.iterdir()) == []
    check = cli("check", model, "--to", release)
    assert check.returncode == 1 and "ParseExample/ParseExample" in check.stdout + check.stderr


@pytest.mark.parametrize("release,blocks", [("1.15", False), ("2.9", True), ("2.21", True)])
def test_check_in_names_a_producer_version_the_importer_cannot_parse(cli, tmp_path, release, blocks):
    """TF 0.12's nightlies stamped meta graphs "0.12.head"; TF 2.9+ parse the stamp with packaging.version
    and refuse it (real 2.21 raised InvalidVersion on this model, the corpus matrix; releases from
    tools/dump_formats.py). `check IN` says so; the conversion stamps the target's own version."""
    model = DATA / "tensorflow__session_bundle_half_plus_two_ckpt_v2" / "export.meta"
    result = cli("check", model, "--to", release)
    assert result.returncode == (1 if blocks else 0), result.stdout + result.stderr
    assert ("'0.12.head' is not a PEP 440 version" in result.stdout) is blocks, result.stdout
    if blocks:
        out = tmp_path / "out.meta"
        assert cli(model, out, "--to", release).returncode == 0
        assert cli("check", out, "--to", release).returncode == 0
