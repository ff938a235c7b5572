"""End to end, foundation level: unchanged round trips load in their producer;
the validator names what blocks loading in an older release."""

import json

import pytest

from conftest import assert_outputs_match
from transpiler.pipeline.convert import check

TF2_ROUND_TRIP = ["compat_v1_linear_relu6", "module_saved", "keras_export", "compat_v1_cnn"]


def out_path(tmp_path, case):
    return tmp_path / (case.name + (".pb" if case.kind == "graph_def" else ""))


@pytest.mark.parametrize("name", TF2_ROUND_TRIP)
def test_tf2_round_trip_loads_in_producer(name, tf2_cases, cli, run_case, tmp_path):
    case = tf2_cases[name]
    out = out_path(tmp_path, case)
    result = cli(case.path, out, "--to", "2.21")
    assert result.returncode == 0, result.stderr
    assert_outputs_match(run_case("host", out, case), case, exact=True)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", [pytest.param("1.15.0", marks=pytest.mark.full_matrix),  # CI time: 30 s
                                     "1.8.0", "1.4.0"])
def test_tf1_round_trip_loads_in_producer(release, tf1_cases, cli, run_case, tmp_path):
    cases = tf1_cases(release)
    assert cases, "no models built by TF %s" % release
    for case in cases.values():
        out = out_path(tmp_path, case)
        result = cli(case.path, out, "--to", release)
        assert result.returncode == 0, "%s: %s" % (case.name, result.stderr)
        converted = run_case(release, out, case)
        assert_outputs_match(converted, case)  # the producer's own recorded numbers
        original = run_case(release, case.path, case)
        for key in case.outputs:  # same runtime, same runner: bit for bit
            assert converted[key].tobytes() == original[key].tobytes(), "%s: %s" % (case.name, key)


def problems_by_op(report):
    return {p.op for p in report.problems}


def test_validator_names_static_regex_full_match_for_tf2_compat_v1(tf2_cases):
    report = check(tf2_cases["compat_v1_linear_relu6"].path, "1.8")
    assert "StaticRegexFullMatch" in problems_by_op(report)
    [problem] = [p for p in report.problems if p.op == "StaticRegexFullMatch"]
    assert problem.kind == "unknown-op" and problem.introduced and problem.node.startswith("save")


@pytest.mark.real_runtime
def test_validator_names_fused_batch_norm_v3_for_tf115_keras_cnn(tf1_cases, cli):
    case = tf1_cases("1.15.0")["cnn_keras"]
    result = cli("check", case.path, "--to", "1.8", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    groups = {g["op"]: g for g in report["groups"]}
    assert groups["FusedBatchNormV3"]["count"] == 2
    assert all("FusedBatchNormV3" in n for n in groups["FusedBatchNormV3"]["nodes"])
    assert not report["ok"]


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.8.0", "1.4.0"])
def test_validator_finds_nothing_in_a_model_of_the_target_itself(release, tf1_cases, cli):
    for case in tf1_cases(release).values():
        result = cli("check", case.path, "--to", release)
        assert result.returncode == 0, "%s: %s" % (case.name, result.stdout)
        assert "nothing blocks loading" in result.stdout


@pytest.mark.real_runtime
def test_unconverted_model_really_fails_where_validator_says(tf2_cases, run_case):
    """The validator's verdict agrees with the real TF 1.8: it refuses the TF 2.x compat.v1 model."""
    from runtime_fixtures import ReleaseLoadError

    with pytest.raises(ReleaseLoadError, match="StaticRegexFullMatch"):
        run_case("1.8.0", tf2_cases["compat_v1_linear_relu6"].path, tf2_cases["compat_v1_linear_relu6"])


@pytest.mark.parametrize("name", ["tensorflow__sm_half_plus_two_2017", "tensorflow__sm_half_plus_two_v2_2018",
                                  "tensorflow-onnx__regression_saved_model", "serving__saved_model_counter"])
def test_old_corpus_models_pass_check_for_1_12(name, corpus_case, cli):
    result = cli("check", corpus_case(name), "--to", "1.12")
    assert result.returncode == 0, result.stdout


def test_corpus_tf2_model_is_refused_for_1_8_by_name(corpus_case, cli):
    result = cli("check", corpus_case("tensorflow__sm_x_plus_y_v2_debuginfo"), "--to", "1.8")
    assert result.returncode == 1
    assert "StatefulPartitionedCall" in result.stdout or "PartitionedCall" in result.stdout
