"""Upgrade end to end: TF 1.x models written by real TF 1.4 and 1.15, transpiled
`--to 2.21`, become native TF 2 SavedModels in the host's TF: they load with
tf.saved_model.load, their signatures take the producer's inputs and give its
outputs, their variables are resource variables with the TF 1.x names, their
checkpoint is object-based, and a keras.layers.TFSMLayer on them trains.

Models: tests/producers/tf1_upgrade_models.py (tf1_upgrade_cases) and
tests/producers/tf1_models.py (tf1_cases)."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import assert_outputs_match
from model_zoo import op_histogram
from upgrade_zoo import upgrade_checkpoint

TARGET = "2.21"
RELEASES = ["1.4.0", "1.15.0"]
UPGRADE_MODELS = ["cnn_layers", "cnn_layers_frozen", "lstm_dynamic_rnn", "estimator_dnn",
                  "contrib_image_transform", "contrib_resampler", "contrib_rnn_blocks", "deprecated_random_poisson"]
TF1_MODELS = ["linear_relu6", "while_cond", "cnn_keras", "cnn_keras_frozen"]
#: Models a release cannot build (tf.keras arrived after 1.4; RandomPoisson was deprecated in 1.5).
NOT_BUILT = {("1.4.0", "cnn_keras"), ("1.4.0", "cnn_keras_frozen"), ("1.15.0", "deprecated_random_poisson")}


FULL = pytest.mark.full_matrix
#: CI time: the tests parametrized by RELEASES run the first in CI, the rest under --full-matrix.
CI_RELEASES = [RELEASES[0]] + [pytest.param(r, marks=FULL) for r in RELEASES[1:]]


def built_pairs(names):
    """(name, release) for every model its release builds: never a skip in CI. For CI time only the first
    release that builds a model runs in CI, the others under --full-matrix."""
    pairs = [(n, r) for n in names for r in RELEASES if (r, n) not in NOT_BUILT]
    firsts = {n: r for n, r in reversed(pairs)}
    return [pytest.param(n, r, marks=[] if firsts[n] == r else [FULL]) for n, r in pairs]
TOL = 1e-5


@pytest.fixture(scope="module")
def tf():
    from transpiler.io.tf_runtime import tf as load_tf

    return load_tf()


def model_case(cases, name):
    assert name in cases, "%s was not built: %s" % (name, sorted(cases))
    return cases[name]


def upgrade(cli, case, out, *flags):
    result = cli(case.path, out, "--to", TARGET, *flags)
    assert result.returncode == 0, result.stderr
    return out


def signature_keys(case):
    """(input keys, output keys) of the converted signature: the case's own keys for a SavedModel,
    derived from the tensor names for a frozen graph (the back end's rule, stated in its report)."""
    from transpiler.passes.signatures import _key

    if case.kind == "saved_model":
        return {k: k for k in case.inputs}, {k: k for k in case.outputs}
    return ({k: _key(case.input_names[k]) for k in case.inputs}, {k: _key(case.output_names[k]) for k in case.outputs})


def run_signature(tf, out, case, signature=None):
    """Load `out` natively and run the case's signature on its inputs -> {case output key: array}."""
    loaded = tf.saved_model.load(str(out))
    function = loaded.signatures[signature or case.signature or "serving_default"]
    ins, outs = signature_keys(case)
    got = function(**{ins[k]: tf.constant(v) for k, v in case.inputs.items()})
    return {k: got[outs[k]].numpy() for k in case.outputs}


def assert_native(tf, out):
    """Resource variables named as in TF 1.x, listed; an object-based checkpoint."""
    loaded = tf.saved_model.load(str(out))
    variables = list(getattr(loaded, "variables", []))
    for v in variables:
        assert isinstance(v, tf.Variable) and v.handle.dtype == tf.resource, v
        assert v.name.endswith(":0") and "/.ATTRIBUTES" not in v.name
    if variables:
        keys = dict(tf.train.list_variables(str(out / "variables" / "variables")))
        assert "_CHECKPOINTABLE_OBJECT_GRAPH" in keys
        assert all(k.startswith("vars/") for k in keys if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    return loaded


def tf1_variable_names(case):
    """Trainable variable names the TF 1.x model declares (its trainable_variables collection)."""
    from transpiler.io.readers import read_model
    from transpiler.passes.tf1_variables import trainable_names

    return trainable_names(read_model(case.path).meta_graphs[0])


@pytest.mark.real_runtime
@pytest.mark.parametrize("name,release", built_pairs(UPGRADE_MODELS))
def test_tf1_model_becomes_native_tf2_savedmodel(name, release, tf1_upgrade_cases, cli, tf, tmp_path):
    case = model_case(tf1_upgrade_cases(release), name)
    out = upgrade(cli, case, tmp_path / name)
    loaded = assert_native(tf, out)
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)
    if case.kind == "saved_model":
        from transpiler.io.readers import read_model

        original = read_model(case.path).meta_graphs[0].signature_def
        assert sorted(loaded.signatures) == sorted(k for k in original if not k.startswith("__"))
        for key, function in loaded.signatures.items():
            specs = function.structured_input_signature[1]
            assert sorted(specs) == sorted(original[key].inputs)
            for k, spec in specs.items():
                assert spec.dtype.as_datatype_enum == original[key].inputs[k].dtype
                want = original[key].inputs[k].tensor_shape
                if not want.unknown_rank:
                    assert spec.shape.as_list() == [d.size if d.size >= 0 else None for d in want.dim]
            assert sorted(function.structured_outputs) == sorted(original[key].outputs)
        # every trainable variable of the TF 1.x model, by its TF 1.x name (the Estimator's are
        # partitioned: dnn/hiddenlayer_0/kernel/part_0, read from the slice of checkpoint key dnn/hiddenlayer_0/kernel)
        assert {v.name[:-2] for v in loaded.trainable_variables} == tf1_variable_names(case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("name,release", built_pairs(TF1_MODELS))
def test_tf1_models_fixture_upgrades(name, release, tf1_cases, cli, tf, tmp_path):
    case = model_case(tf1_cases(release), name)
    out = upgrade(cli, case, tmp_path / name)
    assert_native(tf, out)
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,name,bad_op", [
    ("1.15.0", "contrib_resampler", "Resampler"),
    ("1.4.0", "contrib_resampler", "Resampler"),
    ("1.4.0", "contrib_image_transform", "ImageProjectiveTransform"),
])
def test_host_refuses_the_contrib_model_unconverted_and_loads_it_converted(release, name, bad_op, tf1_upgrade_cases,
                                                                           cli, tf, tmp_path):
    case = tf1_upgrade_cases(release)[name]
    with pytest.raises(Exception) as refused:
        tf.saved_model.load(case.path)
    assert "Op type not registered '%s'" % bad_op in str(refused.value)
    check = cli("check", case.path, "--to", TARGET)
    assert check.returncode == 1 and bad_op in check.stdout and "tf.contrib op" in check.stdout
    out = upgrade(cli, case, tmp_path / name)
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,name,fired,gone,kept", [
    ("1.4.0", "contrib_image_transform", {"image-projective-transform-v1-to-v2": 2}, "ImageProjectiveTransform",
     "ImageProjectiveTransformV2"),
    ("1.15.0", "contrib_image_transform", {}, None, "ImageProjectiveTransformV2"),
    ("1.4.0", "contrib_resampler", {"resampler-to-gather": 1}, "Resampler", "GatherNd"),
    ("1.15.0", "contrib_resampler", {"resampler-to-gather": 1}, "Resampler", "GatherNd"),
    ("1.4.0", "deprecated_random_poisson", {"random-poisson-to-v2": 1}, "RandomPoisson", "RandomPoissonV2"),
    ("1.4.0", "contrib_rnn_blocks", {}, None, "LSTMBlockCell"),
    ("1.15.0", "contrib_rnn_blocks", {}, None, "GRUBlockCell"),
])
def test_contrib_and_deprecated_ops_become_core_ops(release, name, fired, gone, kept, tf1_upgrade_cases, cli, tmp_path):
    case = tf1_upgrade_cases(release)[name]
    out = tmp_path / name
    result = cli(case.path, out, "--to", TARGET, "--format", "json")
    assert result.returncode == 0, result.stderr
    counts = {}
    for firing in json.loads(result.stdout)["rules_fired"]:
        counts[firing["rule"]] = counts.get(firing["rule"], 0) + 1
    for rule, count in fired.items():
        assert counts.get(rule) == count, counts
    ops = op_histogram(str(out))
    assert kept in ops
    if gone:
        assert gone not in ops
    if name == "contrib_rnn_blocks":
        assert {"LSTMBlockCell", "GRUBlockCell", "BlockLSTM"} <= set(ops)


@pytest.mark.real_runtime
def test_gather_tree_is_refused_with_the_reason(tf1_upgrade_cases, cli, tmp_path):
    case = tf1_upgrade_cases("1.15.0")["contrib_gather_tree"]
    result = cli(case.path, tmp_path / "out", "--to", TARGET)
    assert result.returncode == 1
    assert "GatherTree x1: tf.contrib op" in result.stderr
    assert "refused by rule 'gather-tree-refused'" in result.stderr and "TensorFlow Addons" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", CI_RELEASES)
def test_frozen_graph_signature_comes_from_placeholders_and_sinks(release, tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases(release)["cnn_layers_frozen"]
    result = cli(case.path, tmp_path / "out", "--to", TARGET, "--format", "json")
    assert result.returncode == 0, result.stderr
    [note] = [n for n in json.loads(result.stdout)["notes"] if n.startswith("signature serving_default")]
    assert "outputs probs=probs:0 (found as the graph's unconsumed sinks)" in note
    assert "inputs image=image:0 (found as the placeholders they read)" in note
    function = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    assert list(function.structured_input_signature[1]) == ["image"]
    assert function.structured_input_signature[1]["image"].shape.as_list() == [None, 8, 8, 3]
    assert list(function.structured_outputs) == ["probs"]
    # named explicitly, with keys of one's own
    out = upgrade(cli, case, tmp_path / "named", "--inputs", "pixels=image:0", "--outputs", "p=probs")
    got = tf.saved_model.load(str(out)).signatures["serving_default"](pixels=tf.constant(case.inputs["image"]))
    np.testing.assert_allclose(got["p"].numpy(), case.outputs["probs"], rtol=TOL, atol=TOL)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,name,source", [
    ("1.4.0", "cnn_layers_frozen", "cnn_layers"),
    ("1.15.0", "cnn_layers_frozen", "cnn_layers"),
    ("1.15.0", "cnn_keras_frozen", "cnn_keras"),
])
def test_unfreeze_turns_weights_back_into_variables(release, name, source, tf1_upgrade_cases, tf1_cases, cli, tf,
                                                    tmp_path):
    cases = dict(tf1_upgrade_cases(release), **tf1_cases(release))
    case, unfrozen_from = cases[name], cases[source]
    out = upgrade(cli, case, tmp_path / name, "--unfreeze")
    loaded = assert_native(tf, out)
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)
    # the same variables the model had before it was frozen; moving statistics are not trainable
    from transpiler.io.readers import read_model

    before = read_model(unfrozen_from.path).meta_graphs[0]
    ops = {"VariableV2", "VarHandleOp"}
    had = {n.name for n in before.graph_def.node if n.op in ops and "/Adam" not in n.name}
    assert {v.name[:-2] for v in loaded.variables} == had
    assert {v.name[:-2] for v in loaded.trainable_variables} == {n for n in had if "moving_" not in n}
    values = tf.train.load_checkpoint(unfrozen_from.path + "/variables/variables")
    for v in loaded.variables:
        np.testing.assert_array_equal(v.numpy(), values.get_tensor(v.name[:-2]))


@pytest.mark.real_runtime
def test_unfreeze_by_pattern_and_by_name(tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases("1.15.0")["cnn_layers_frozen"]
    out = upgrade(cli, case, tmp_path / "pattern", "--unfreeze-pattern", "^dense/")
    assert {v.name for v in tf.saved_model.load(str(out)).variables} == {"dense/kernel:0", "dense/bias:0"}
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)
    out = upgrade(cli, case, tmp_path / "names", "--unfreeze", "--unfreeze-names", "conv2/kernel,conv1/bias",
                  "--unfreeze-pattern", "^$")
    assert {v.name for v in tf.saved_model.load(str(out)).variables} == {"conv2/kernel:0", "conv1/bias:0"}
    bad = cli(case.path, tmp_path / "bad", "--to", TARGET, "--unfreeze-names", "no/such/const")
    assert bad.returncode == 2 and "no Const named no/such/const" in bad.stderr


@pytest.mark.real_runtime
@pytest.mark.parametrize("name,flags", [("cnn_layers", ()), ("cnn_layers_frozen", ("--unfreeze",))])
def test_tfsm_layer_wraps_the_model_and_trains_a_step(name, flags, tf1_upgrade_cases, cli, tf, tmp_path):
    import keras

    case = tf1_upgrade_cases("1.15.0")[name]
    out = upgrade(cli, case, tmp_path / name, *flags)
    layer = keras.layers.TFSMLayer(str(out), call_endpoint="serving_default")
    assert len(layer.trainable_weights) == 8 and len(layer.non_trainable_weights) == 2
    image = case.inputs["image"]
    np.testing.assert_allclose(layer(image)["probs"].numpy(), case.outputs["probs"], rtol=TOL, atol=TOL)
    model_vars = layer._reloaded_obj.trainable_variables
    before = [v.numpy().copy() for v in model_vars]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(image)["probs"] - np.eye(5, dtype=np.float32)[[0, 2, 4]]))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    keras.optimizers.SGD(0.5).apply_gradients(zip(grads, layer.trainable_weights))
    changed = [not np.array_equal(v.numpy(), b) for v, b in zip(model_vars, before)]
    assert all(changed), changed
    assert not np.allclose(layer(image)["probs"].numpy(), case.outputs["probs"])


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", CI_RELEASES)
def test_meta_graph_and_checkpoint(release, tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases(release)["train_checkpoint"]
    assert upgrade_checkpoint(case).endswith("model.ckpt")
    out = upgrade(cli, case, tmp_path / "out", "--outputs", "y", "--inputs", "x")
    loaded = assert_native(tf, out)
    got = loaded.signatures["serving_default"](x=tf.constant(case.inputs["x"]))
    np.testing.assert_allclose(got["y"].numpy(), case.outputs["y"], rtol=TOL, atol=TOL)
    # the network's variables, not the optimizer's
    assert sorted(v.name for v in loaded.trainable_variables) == ["model/W1:0", "model/W2:0", "model/b1:0",
                                                                  "model/b2:0"]
    assert len(loaded.variables) == 4
    # an explicit --checkpoint prefix works as well
    moved = tmp_path / "elsewhere.meta"
    moved.write_bytes(open(case.path, "rb").read())
    result = cli(moved, tmp_path / "out2", "--to", TARGET, "--outputs", "y", "--checkpoint", upgrade_checkpoint(case))
    assert result.returncode == 0, result.stderr
    missing = cli(moved, tmp_path / "out3", "--to", TARGET, "--outputs", "y")  # nothing names or holds the values
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr, missing.stderr


def _multi_tag_model(case, path, tag_sets):
    """A copy of the SavedModel with its meta graph repeated under each tag set."""
    import shutil

    from transpiler.io.protos import saved_model_pb2

    shutil.copytree(case.path, str(path))
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    first = sm.meta_graphs[0]
    del sm.meta_graphs[:]
    for tags in tag_sets:
        mg = sm.meta_graphs.add()
        mg.CopyFrom(first)
        del mg.meta_info_def.tags[:]
        mg.meta_info_def.tags.extend(tags)
    (path / "saved_model.pb").write_bytes(sm.SerializeToString())
    return path


@pytest.mark.real_runtime
def test_tags_choose_the_meta_graph(tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases("1.15.0")["cnn_layers"]
    model = _multi_tag_model(case, tmp_path / "multi", [["train"], ["serve", "gpu"], ["eval"]])
    from transpiler.io.readers import read_model

    # without --tags every tag set is kept (a native TF 2 SavedModel holds one): none that loaded stops loading
    result = cli(model, tmp_path / "all", "--to", TARGET)
    assert result.returncode == 0, result.stderr
    assert "kept all 3 tag sets (train; serve,gpu; eval)" in result.stdout, result.stdout
    kept = read_model(tmp_path / "all").meta_graphs
    assert [sorted(mg.meta_info_def.tags) for mg in kept] == [["train"], ["gpu", "serve"], ["eval"]]
    assert not any(mg.HasField("object_graph_def") for mg in kept)
    result = cli(model, tmp_path / "out", "--to", TARGET, "--unfreeze")
    assert result.returncode == 2 and "choose the one to make a native TF 2 SavedModel of with --tags" in result.stderr
    result = cli(model, tmp_path / "out", "--to", TARGET, "--tags", "predict")
    assert result.returncode == 2 and "no meta graph tagged predict" in result.stderr
    out = upgrade(cli, dataclasses.replace(case, path=str(model)), tmp_path / "out", "--tags", "serve,gpu")
    assert_outputs_match(run_signature(tf, out, case), case, rtol=TOL, atol=TOL)
    # the downgrade keeps only the chosen meta graph too
    result = cli(model, tmp_path / "down", "--to", "1.15", "--tags", "eval")
    assert result.returncode == 0, result.stderr
    assert [list(mg.meta_info_def.tags) for mg in read_model(tmp_path / "down").meta_graphs] == [["eval"]]


def test_reference_variable_writes_become_resource_updates(cli, tf, corpus_case, tmp_path):
    """serving's counter model updates a reference variable (AssignAdd/Assign) in its signatures."""
    out = tmp_path / "counter"
    result = cli(corpus_case("serving__saved_model_counter"), out, "--to", TARGET)
    assert result.returncode == 0, result.stderr
    counter = tf.saved_model.load(str(out))
    assert [v.name for v in counter.variables] == ["counter:0"]
    assert counter.signatures["incr_counter"]()["output"].numpy() == 1
    assert counter.signatures["incr_counter"]()["output"].numpy() == 2
    assert counter.signatures["incr_counter_by"](delta=tf.constant(5.0))["output"].numpy() == 7
    assert counter.signatures["get_counter"]()["output"].numpy() == 7
    assert counter.signatures["reset_counter"]()["output"].numpy() == 0


@pytest.mark.real_runtime
@pytest.mark.parametrize("producer,name", [
    pytest.param("tf1_cases", "linear_relu6", marks=FULL),
    ("tf1_cases", "while_cond"),
    pytest.param("tf1_upgrade_cases", "cnn_layers", marks=FULL),
    ("tf1_upgrade_cases", "lstm_dynamic_rnn"),
])
def test_round_trip_115_to_221_to_18(producer, name, request, cli, run_case, tmp_path):
    """1.15 -> native TF 2.21 -> 1.8: the 2.21 leg needs function inlining (transpiler/inline.py)."""
    case = request.getfixturevalue(producer)("1.15.0")[name]
    tf2 = upgrade(cli, case, tmp_path / "tf2")
    back = tmp_path / "tf18"
    result = cli(tf2, back, "--to", "1.8")
    assert result.returncode == 0, result.stderr
    assert_outputs_match(run_case("1.8.0", back, case), case, rtol=TOL, atol=TOL)


def test_upgrade_flags_are_refused_for_a_tf1_target(cli, corpus_case, tmp_path):
    result = cli(corpus_case("tensorflow__sm_half_plus_two_2017"), tmp_path / "out", "--to", "1.8", "--unfreeze")
    assert result.returncode == 2 and "apply when a TF 1.x model is converted for TF 2.x" in result.stderr


_LOAD_IN_TF2 = r"""
import json, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
got = model.signatures[sys.argv[3]](**dict((k, tf.constant(inputs[k])) for k in inputs.files))
np.savez(sys.argv[4], **dict((k, v.numpy()) for k, v in got.items()))
print(json.dumps({"variables": [v.name for v in model.trainable_variables],
                  "resource": all(v.handle.dtype == tf.resource for v in model.variables)}))
"""


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,name,target", [("1.15.0", "cnn_layers", "2.1.0"), ("1.4.0", "lstm_dynamic_rnn", "2.0.0"),
                                                 pytest.param("1.15.0", "cnn_layers", "2.0.0", marks=FULL),
                                                 pytest.param("1.4.0", "lstm_dynamic_rnn", "2.1.0", marks=FULL)])
def test_upgrade_for_an_older_tf2_release_loads_natively_there(release, name, target, tf1_upgrade_cases, tf_release,
                                                                cli, tmp_path):
    """The host's TF writes the SavedModel; the usual rules then take it to the target (e.g. 2.21 -> 2.1)."""
    case = tf1_upgrade_cases(release)[name]
    out = tmp_path / "out"
    result = cli(case.path, out, "--to", target)
    assert result.returncode == 0, result.stderr
    assert "then converted for TF %s" % target[:-2] in result.stdout
    rt = tf_release(target)
    np.savez(str(tmp_path / "in.npz"), **case.inputs)
    proc = rt.run_code(_LOAD_IN_TF2, [rt.chroot_path(out), rt.chroot_path(tmp_path / "in.npz"), case.signature,
                                      rt.chroot_path(tmp_path / "got.npz")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["resource"] and {v[:-2] for v in info["variables"]} == tf1_variable_names(case)
    with np.load(str(tmp_path / "got.npz")) as got:
        assert_outputs_match({k: got[k] for k in got.files}, case, rtol=TOL, atol=TOL)


def test_upgrading_twice_writes_the_same_bytes(cli, corpus_case, tmp_path):
    """Reproducible output: TF draws fingerprint.pb's uuid at random; the tool derives it from the content."""
    src = corpus_case("tensorflow__sm_half_plus_two_2017")
    trees = []
    for out in (tmp_path / "a", tmp_path / "b"):
        result = cli(src, out, "--to", "2.21")
        assert result.returncode == 0, result.stderr
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert "fingerprint.pb" in trees[0]
    assert trees[0] == trees[1]
