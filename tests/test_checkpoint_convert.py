"""`tf-transpile checkpoint`: name-based TF 1.x checkpoints (written by real TF 1.4
and 1.15 with Adam slots) become object-based ones a TF 2 program restores into
the converted model and a tf.compat.v1 optimizer, and back; tensors stream."""

import numpy as np
import pytest
import yaml

from upgrade_zoo import upgrade_checkpoint

#: CI time: 1.4 in CI, 1.15 under --full-matrix (20 s a test).
RELEASES = ["1.4.0", pytest.param("1.15.0", marks=pytest.mark.full_matrix)]
WEIGHTS = ["model/W1", "model/W2", "model/b1", "model/b2"]


@pytest.fixture(scope="module")
def tf():
    from transpiler.io.tf_runtime import tf as load_tf

    return load_tf()


def converted_model(cli, case, path):
    """The TF 2 SavedModel of the checkpoint's network (the model an object-based checkpoint is for)."""
    result = cli(case.path, path, "--to", "2.21", "--outputs", "y")
    assert result.returncode == 0, result.stderr
    return path


def convert(cli, *args):
    result = cli("checkpoint", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def restore_into(tf, model_dir, prefix):
    """Restore `prefix` as a TF 2 training program would: model + a v1 Adam optimizer + global step."""
    model = tf.saved_model.load(str(model_dir))
    optimizer = tf.compat.v1.train.AdamOptimizer(0.01)
    step = tf.Variable(0, dtype=tf.int64)
    status = tf.train.Checkpoint(model=model, optimizer=optimizer, global_step=step).restore(str(prefix))
    optimizer._create_slots(model.trainable_variables)  # slots restore when created (deferred restoration)
    optimizer._create_non_slot_variable(0.9, "beta1_power", model.trainable_variables[0])
    status.assert_consumed()
    return model, optimizer, step


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", RELEASES)
def test_name_based_checkpoint_restores_into_tf2_with_optimizer_slots(release, tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases(release)["train_checkpoint"]
    source = upgrade_checkpoint(case)
    model_dir = converted_model(cli, case, tmp_path / "model")
    out = convert(cli, source, tmp_path / "object", "--model", model_dir)
    assert "15 tensor(s) (matched: 4 by name)" in out
    model, optimizer, step = restore_into(tf, model_dir, tmp_path / "object")
    original = tf.train.load_checkpoint(source)
    for v in model.trainable_variables:
        name = v.name[:-2]
        np.testing.assert_array_equal(v.numpy(), original.get_tensor(name))
        np.testing.assert_array_equal(optimizer.get_slot(v, "m").numpy(), original.get_tensor(name + "/Adam"))
        np.testing.assert_array_equal(optimizer.get_slot(v, "v").numpy(), original.get_tensor(name + "/Adam_1"))
    assert step.numpy() == original.get_tensor("global_step") == 3
    beta1, beta2 = optimizer._get_beta_accumulators()
    assert beta1.numpy() == pytest.approx(original.get_tensor("beta1_power"))
    assert beta2.numpy() == pytest.approx(original.get_tensor("beta2_power"))
    # the mapping it used, as editable YAML
    mapping = yaml.safe_load((tmp_path / "object.mapping.yaml").read_text())
    assert mapping["direction"] == "to-object"
    assert mapping["variables"]["model/W1"] == "model/vars/model.SW1/.ATTRIBUTES/VARIABLE_VALUE"
    assert mapping["derived"]["model/W1/Adam"] == "model/vars/model.SW1/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    assert mapping["matched_by"] == {name: "name" for name in WEIGHTS}
    assert mapping["dropped"] == [] and mapping["unmatched_model_variables"] == []


@pytest.mark.real_runtime
def test_default_layout_is_the_converted_models_layout(tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases("1.15.0")["train_checkpoint"]
    convert(cli, upgrade_checkpoint(case), tmp_path / "object")
    keys = dict(tf.train.list_variables(str(tmp_path / "object")))
    assert "model/vars/model.SW1/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "model/vars/model.SW1/.OPTIMIZER_SLOT/optimizer/v/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "model/vars/global_step/.ATTRIBUTES/VARIABLE_VALUE" in keys
    model_dir = converted_model(cli, case, tmp_path / "model")
    model = tf.saved_model.load(str(model_dir))
    status = tf.train.Checkpoint(model=model).restore(str(tmp_path / "object"))
    status.assert_existing_objects_matched()
    original = tf.train.load_checkpoint(upgrade_checkpoint(case))
    for v in model.variables:
        np.testing.assert_array_equal(v.numpy(), original.get_tensor(v.name[:-2]))


_RESTORE_IN_TF1 = r"""
import sys
import numpy as np
import tensorflow as tf
meta, prefix, inputs, out = sys.argv[1:5]
with tf.Graph().as_default() as g:
    saver = tf.train.import_meta_graph(meta, clear_devices=True)
    with tf.Session(graph=g) as sess:
        saver.restore(sess, prefix)
        x = np.load(inputs)["x"]
        np.savez(out, y=sess.run("y:0", {"x:0": x}), step=sess.run("global_step:0"),
                 slot=sess.run("model/W1/Adam_1:0"))
"""


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", RELEASES)
def test_object_based_back_to_names_restores_in_real_tf1(release, tf1_upgrade_cases, tf_release, cli, tf, tmp_path):
    case = tf1_upgrade_cases(release)["train_checkpoint"]
    source = upgrade_checkpoint(case)
    model_dir = converted_model(cli, case, tmp_path / "model")
    convert(cli, source, tmp_path / "object", "--model", model_dir)
    out = convert(cli, tmp_path / "object", tmp_path / "names")  # direction follows from the input
    assert "(name-based): 15 tensor(s)" in out
    original, back = tf.train.load_checkpoint(source), tf.train.load_checkpoint(str(tmp_path / "names"))
    assert sorted(back.get_variable_to_shape_map()) == sorted(original.get_variable_to_shape_map())
    for key in original.get_variable_to_shape_map():
        np.testing.assert_array_equal(back.get_tensor(key), original.get_tensor(key))
    # the real release restores it through the original training graph
    rt = tf_release(release)
    np.savez(str(tmp_path / "in.npz"), x=case.inputs["x"])
    proc = rt.run_code(_RESTORE_IN_TF1, [rt.chroot_path(case.path), rt.chroot_path(tmp_path / "names"),
                                         rt.chroot_path(tmp_path / "in.npz"), rt.chroot_path(tmp_path / "out.npz")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(str(tmp_path / "out.npz")) as got:
        np.testing.assert_allclose(got["y"], case.outputs["y"], rtol=1e-6, atol=1e-6)
        assert got["step"] == 3
        np.testing.assert_array_equal(got["slot"], original.get_tensor("model/W1/Adam_1"))


@pytest.mark.real_runtime
def test_converted_models_own_checkpoint_gets_tf1_names(tf1_upgrade_cases, cli, tf, tmp_path):
    """What the TF 2 -> TF 1 downgrade reuses: object-based keys -> TF 1.x names, streamed."""
    from transpiler.backends.checkpoint_convert import object_to_names, rename_checkpoint

    case = tf1_upgrade_cases("1.4.0")["cnn_layers"]
    result = cli(case.path, tmp_path / "model", "--to", "2.21")
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "model" / "variables" / "variables"
    names, skipped = object_to_names(prefix)
    assert names["vars/conv1.Skernel/.ATTRIBUTES/VARIABLE_VALUE"] == "conv1/kernel"
    assert sorted(names.values()) == sorted(n for n in tf.train.load_checkpoint(case.path + "/variables/variables")
                                            .get_variable_to_shape_map())
    assert skipped == []
    rename_checkpoint(prefix, tmp_path / "tf1", names)
    ours, theirs = tf.train.load_checkpoint(str(tmp_path / "tf1")), tf.train.load_checkpoint(case.path + "/variables/variables")
    for name in names.values():
        np.testing.assert_array_equal(ours.get_tensor(name), theirs.get_tensor(name))


def _save(tf, prefix, tensors):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    return prefix


@pytest.mark.real_runtime
def test_matching_by_scope_by_shape_and_by_var_map(tf1_upgrade_cases, cli, tf, tmp_path):
    case = tf1_upgrade_cases("1.15.0")["train_checkpoint"]
    model_dir = converted_model(cli, case, tmp_path / "model")
    rng = np.random.RandomState(0)
    values = {"tower_0/model/W1": rng.randn(3, 4).astype(np.float32),
              "tower_0/model/W1/Momentum": rng.randn(3, 4).astype(np.float32),
              "tower_0/model/b1": rng.randn(4).astype(np.float32),
              "tower_0/model/W2": rng.randn(4, 2).astype(np.float32),
              "output_bias": rng.randn(2).astype(np.float32),
              "unrelated/counter": np.array(7, np.int64)}
    source = _save(tf, tmp_path / "towers", values)
    out = convert(cli, source, tmp_path / "object", "--model", model_dir)
    assert "left out 1 tensor(s) of the input: unrelated/counter" in out
    mapping = yaml.safe_load((tmp_path / "object.mapping.yaml").read_text())
    assert mapping["matched_by"] == {"tower_0/model/W1": "scope", "tower_0/model/b1": "scope",
                                     "tower_0/model/W2": "scope", "output_bias": "shape"}
    assert mapping["derived"]["tower_0/model/W1/Momentum"].endswith("/.OPTIMIZER_SLOT/optimizer/momentum"
                                                                   "/.ATTRIBUTES/VARIABLE_VALUE")
    model = tf.saved_model.load(str(model_dir))
    tf.train.Checkpoint(model=model).restore(str(tmp_path / "object")).expect_partial()
    by_name = {v.name[:-2]: v.numpy() for v in model.variables}
    np.testing.assert_array_equal(by_name["model/W1"], values["tower_0/model/W1"])
    np.testing.assert_array_equal(by_name["model/b2"], values["output_bias"])
    # edit the mapping: leave the bias out; pass it back
    mapping["variables"]["output_bias"] = None
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(mapping))
    out = convert(cli, source, tmp_path / "edited", "--model", model_dir, "--var-map", tmp_path / "edited.yaml")
    assert "no value for 1 model variable(s) (they keep their own): model/b2" in out
    keys = dict(tf.train.list_variables(str(tmp_path / "edited")))
    assert "model/vars/model.Sb2/.ATTRIBUTES/VARIABLE_VALUE" not in keys
    # a var-map that does not fit is one clear error
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"variables": {"tower_0/model/W1": "model/W2"}}))
    bad = cli("checkpoint", source, tmp_path / "bad", "--model", model_dir, "--var-map", tmp_path / "bad.yaml")
    assert bad.returncode == 2 and "does not fit model/W2" in bad.stderr


def test_rename_streams_one_tensor_at_a_time_into_shards(tf, tmp_path, monkeypatch):
    """The TF path (V1 checkpoints) streams; a V2 checkpoint is renamed by its index alone (test_tensor_bundle.py)."""
    from transpiler.io.checkpoints import rename_with_tf

    values = {"layer_%d/w" % i: np.full((64, 64), i, np.float32) for i in range(6)}  # 16 KiB each
    source = _save(tf, tmp_path / "src", values)
    calls = []
    save = tf.raw_ops.SaveV2

    def counting_save(**kwargs):
        calls.append(len(kwargs["tensor_names"]))
        return save(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "SaveV2", counting_save)
    mapping = {k: "renamed/" + k for k in values}
    assert rename_with_tf(source, tmp_path / "out", mapping, shard_bytes=40000) == 6
    assert calls == [3, 3]  # shards of at most ~40 kB, merged into one checkpoint
    reader = tf.train.load_checkpoint(str(tmp_path / "out"))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(mapping.values())
    for old, new in mapping.items():
        np.testing.assert_array_equal(reader.get_tensor(new), values[old])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_cli_errors_are_one_line(cli, tf, tmp_path):
    source = _save(tf, tmp_path / "ckpt", {"w": np.ones(3, np.float32)})
    assert cli("checkpoint", tmp_path / "nothing", tmp_path / "o").returncode == 2
    convert(cli, source, tmp_path / "object")
    again = cli("checkpoint", source, tmp_path / "object")
    assert again.returncode == 2 and "already exists (use --force" in again.stderr
    assert cli("checkpoint", source, tmp_path / "object", "--force").returncode == 0
    wrong = cli("checkpoint", tmp_path / "object", tmp_path / "o2", "--to-object")
    assert wrong.returncode == 2 and "already object-based" in wrong.stderr
    for result in (again, wrong):
        assert result.stderr.count("\n") == 1
