"""TF 2 native SavedModels (tf.saved_model.save, Keras 3 model.export) to TF 1.x.

Produced by the host TF 2.x (tests/producers/tf2_models.py), transpiled
`--to 1.15` and `--to 1.8`, loaded by the real release through its v1
SavedModel loader (which restores the object-based checkpoint by key), fed the
producer's inputs: the outputs match the producer's within float32 round-off
(1e-5; the lowered graphs do the same arithmetic in the same order, observed
differences are ~1e-7). Variables stay resource variables.

For TF 1.8 the functions are inlined (no StatefulPartitionedCall before TF
1.10) and functional control flow is lowered to Switch/Merge/Enter/Exit frames
(no StatelessIf/StatelessWhile/Case, and If/While lack output_shapes and
parallel_iterations); TensorLists carried by Keras RNN loops become dense
tensors. TF 1.15 runs the function library as it is; `--inline-functions`
inlines it anyway.
"""

import pytest

from conftest import assert_outputs_match
from model_zoo import op_histogram

TARGETS = ["1.15.0", "1.8.0"]
MODELS = [
    "module_saved",                 # tf.Module, resource variables, one tf.function signature
    "module_control_flow",          # tf.range loop + data-dependent if (StatelessWhile/StatelessIf)
    "module_nested_control_flow",   # loops in loops and in branches, Case, a TensorArray, variables in bodies
    "module_two_signatures",        # two signatures: serving_default ...
    "module_two_signatures__score",  # ... and "score" (same SavedModel)
    "keras_lstm",                   # Embedding + LSTM + Dense, model.export() (While + TensorLists)
    "keras_gru",                    # Embedding + GRU + Dense, model.export()
    "keras_transformer",            # MultiHeadAttention, LayerNormalization, gelu, model.export()
]

FUNCTIONAL_OPS = {"StatefulPartitionedCall", "PartitionedCall", "If", "StatelessIf", "While", "StatelessWhile",
                  "Case", "StatelessCase"}


def transpile(cli, case, release, tmp_path, *extra):
    out = tmp_path / ("%s_%s" % (case.name, release))
    result = cli(case.path, out, "--to", release, *extra)
    assert result.returncode == 0, result.stderr
    check = cli("check", out, "--to", release)
    assert check.returncode == 0, check.stdout
    return out


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_tf2_native_model_runs_in_tf1(name, release, tf2_cases, cli, run_case, tmp_path):
    case = tf2_cases[name]
    out = transpile(cli, case, release, tmp_path)
    ops = op_histogram(out)
    assert ops["VarHandleOp"] and ops["ReadVariableOp"], "variables stay resource variables"
    if release == "1.8.0":
        assert not FUNCTIONAL_OPS & set(ops), ops
        assert not [op for op in ops if op.startswith("TensorList")], ops
    assert_outputs_match(run_case(release, out, case), case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.4.0", "1.12.0", "1.14.0"])
@pytest.mark.parametrize("name", ["module_nested_control_flow", "keras_gru"])
def test_other_tf1_releases(name, release, tf2_cases, cli, run_case, tmp_path):
    """TF 1.4 (no TensorList at all), 1.12 (StatefulPartitionedCall without config_proto),
    1.14 (runs the Keras GRU's functions as they are; has Case, but refuses to lower it itself)."""
    case = tf2_cases[name]
    out = transpile(cli, case, release, tmp_path)
    if release != "1.14.0":
        assert not FUNCTIONAL_OPS & set(op_histogram(out, include_functions=False))
    assert_outputs_match(run_case(release, out, case), case)


@pytest.mark.real_runtime
@pytest.mark.parametrize("name", ["module_nested_control_flow", "keras_lstm"])
def test_forced_inlining_runs_in_tf115(name, tf2_cases, cli, run_case, tmp_path):
    case = tf2_cases[name]
    out = transpile(cli, case, "1.15.0", tmp_path, "--inline-functions")
    ops = op_histogram(out)
    assert not {"StatefulPartitionedCall", "PartitionedCall"} & set(ops), ops
    assert_outputs_match(run_case("1.15.0", out, case), case)


def test_inlined_output_still_loads_in_tf2(tf2_cases, cli, run_case, tmp_path):
    """--inline-functions for a TF 2 target: signatures stay bound (the call names stay fetchable)."""
    for name in ("module_nested_control_flow", "module_two_signatures__score"):
        case = tf2_cases[name]
        out = transpile(cli, case, "2.21", tmp_path, "--inline-functions")
        assert not {"StatefulPartitionedCall", "PartitionedCall"} & set(op_histogram(out, include_functions=False))
        assert_outputs_match(run_case("host", out, case), case, exact=True)


def test_report_for_tf18_names_no_functional_ops(tf2_cases, cli, tmp_path):
    import json

    case = tf2_cases["keras_lstm"]
    result = cli(case.path, tmp_path / "out", "--to", "1.8", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert not report.get("problems") and not [g for g in report.get("groups", []) if g]


#: What each producer model is there to exercise (graph or function library).
EXERCISES = {
    "module_nested_control_flow": {"StatefulPartitionedCall", "While", "StatelessWhile", "If",
                                   "Case", "TensorListReserve", "TensorListSetItem", "TensorListStack"},
    "module_two_signatures": {"StatefulPartitionedCall", "VarHandleOp"},
    "keras_lstm": {"While", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem", "TensorListStack"},
    "keras_gru": {"While", "TensorListGetItem", "TensorListSetItem"},
    "keras_transformer": {"Einsum", "Softmax", "Erfc", "Rsqrt"},
}


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_producer_models_hold_what_they_exist_for(name, tf2_cases):
    hist = op_histogram(tf2_cases[name].path)
    assert not EXERCISES[name] - set(hist), (name, EXERCISES[name] - set(hist))
    assert "DisableCopyOnRead" in hist, "TF 2.x save functions: rewritten for every TF 1.x target"


def test_two_signatures_share_one_saved_model(tf2_cases):
    a, b = tf2_cases["module_two_signatures"], tf2_cases["module_two_signatures__score"]
    assert a.path == b.path and (a.signature, b.signature) == ("serving_default", "score")
