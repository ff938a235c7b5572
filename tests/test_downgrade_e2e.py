"""Downgrade end to end: models written by real TF 1.15 and by TF 2.x through
tf.compat.v1, transpiled for older releases, load in the real release and give
the producer's numbers; `check` on the output then reports nothing."""

import pytest

from conftest import assert_outputs_match

TARGETS = ["1.8.0", "1.12.0", "1.4.0"]
TF115_MODELS = ["linear_relu6", "while_cond", "cnn_keras", "cnn_keras_frozen"]
TF2_MODELS = ["compat_v1_linear_relu6", "compat_v1_cnn"]


def transpile_and_run(cli, run_case, case, release, tmp_path):
    out = tmp_path / (case.name + (".pb" if case.kind == "graph_def" else ""))
    result = cli(case.path, out, "--to", release)
    assert result.returncode == 0, result.stderr
    check = cli("check", out, "--to", release)
    assert check.returncode == 0, check.stdout
    return run_case(release, out, case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
@pytest.mark.parametrize("name", TF115_MODELS)
def test_tf115_model_runs_in_older_release(name, release, tf1_cases, cli, run_case, tmp_path):
    case = tf1_cases("1.15.0")[name]
    assert_outputs_match(transpile_and_run(cli, run_case, case, release, tmp_path), case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
@pytest.mark.parametrize("name", TF2_MODELS)
def test_tf2_compat_v1_model_runs_in_tf1(name, release, tf2_cases, cli, run_case, tmp_path):
    case = tf2_cases[name]
    assert_outputs_match(transpile_and_run(cli, run_case, case, release, tmp_path), case)


@pytest.mark.real_runtime
def test_frozen_graph_stays_frozen_and_loses_v3(tf1_cases, cli, tmp_path):
    from model_zoo import op_histogram

    case = tf1_cases("1.15.0")["cnn_keras_frozen"]
    out = tmp_path / "frozen.pb"
    assert cli(case.path, out, "--to", "1.8").returncode == 0
    ops = op_histogram(str(out))
    assert "FusedBatchNormV3" not in ops and "LeakyRelu" not in ops
    assert ops["FusedBatchNormV2"] + ops["FusedBatchNorm"] == op_histogram(case.path)["FusedBatchNormV3"]
    assert not any(o in ops for o in ("VariableV2", "VarHandleOp"))


def test_report_lists_rules_fired(tf2_cases, cli, tmp_path):
    import json

    case = tf2_cases["compat_v1_cnn"]
    result = cli(case.path, tmp_path / "out", "--to", "1.8", "--format", "json")
    assert result.returncode == 0, result.stderr
    fired = json.loads(result.stdout)["rules_fired"]
    rules = {f["rule"] for f in fired}
    assert {"fused-batch-norm-v3-to-v2", "leaky-relu-to-relu"} <= rules
    assert "fused-batch-norm-v2-to-v1" not in rules  # TF 1.8 has FusedBatchNormV2: the chain stops there
    stripped = [f for f in fired if f["rule"] == "strip-new-default-attrs"]
    assert any("explicit_paddings" in f["detail"] for f in stripped)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
@pytest.mark.parametrize("name", ["lstm_dynamic_rnn", "cnn_layers", "estimator_dnn"])
def test_tf115_rnn_and_layers_models_run_in_older_release(name, release, tf1_upgrade_cases, cli, run_case, tmp_path):
    case = tf1_upgrade_cases("1.15.0")[name]
    assert_outputs_match(transpile_and_run(cli, run_case, case, release, tmp_path), case)
