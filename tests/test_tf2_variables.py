"""TF 2 SavedModels in TF 1.x: checkpoint keys become TF 1.x variable names,
and the saver graph restores them; --variables ref and --freeze outputs load too."""

import ast
from pathlib import Path

import pytest

from conftest import assert_outputs_match

LISTER = Path(__file__).resolve().parent / "harness" / "list_checkpoint.py"


def tf1_checkpoint_names(tf_release, release, prefix):
    runtime = tf_release(release)
    done = runtime.run_python(str(LISTER), [runtime.chroot_path(str(prefix))])
    assert done.returncode == 0, done.stderr
    return dict(ast.literal_eval(done.stdout.strip().splitlines()[-1]))


@pytest.mark.real_runtime
@pytest.mark.parametrize("name", ["keras_export", "module_saved"])
def test_checkpoint_has_tf1_names_and_model_matches(name, tf2_cases, cli, run_case, tf_release, tmp_path):
    case = tf2_cases[name]
    out = tmp_path / "out"
    result = cli(case.path, out, "--to", "1.8")
    assert result.returncode == 0, result.stderr
    names = tf1_checkpoint_names(tf_release, "1.8.0", out / "variables" / "variables")
    assert names and not any(".ATTRIBUTES" in n or n.startswith("_CHECKPOINTABLE") for n in names), names
    if name == "keras_export":
        assert {"dense/kernel", "dense/bias", "conv/kernel", "conv/bias"} <= set(names)
    else:
        assert {"w", "b", "scale"} <= set(names)
    assert_outputs_match(run_case("1.8.0", out, case), case)


@pytest.mark.real_runtime
def test_ref_variables_output_loads_and_matches(tf2_cases, cli, run_case, tmp_path):
    from model_zoo import op_histogram

    case = tf2_cases["module_saved"]
    out = tmp_path / "ref"
    result = cli(case.path, out, "--to", "1.8", "--variables", "ref")
    assert result.returncode == 0, result.stderr
    ops = op_histogram(str(out))
    assert ops["VariableV2"] == 3 and not ops["VarHandleOp"] and not ops["ReadVariableOp"]
    assert_outputs_match(run_case("1.8.0", out, case), case)


@pytest.mark.real_runtime
def test_freeze_writes_a_frozen_graph_that_matches(tf2_cases, cli, run_graph_def_in_release, tmp_path):
    from transpiler.io.readers import read_model

    case = tf2_cases["module_saved"]
    out = tmp_path / "frozen.pb"
    result = cli(case.path, out, "--to", "1.8", "--freeze")
    assert result.returncode == 0, result.stderr
    frozen = read_model(out)
    ops = {n.op for n in frozen.meta_graphs[0].graph_def.node}
    assert not ops & {"VarHandleOp", "VariableV2", "ReadVariableOp", "SaveV2", "RestoreV2"}
    signature = read_model(case.path).meta_graphs[0].signature_def[case.signature]
    feeds = {signature.inputs[k].name: v for k, v in case.inputs.items()}
    fetches = {k: signature.outputs[k].name for k in case.outputs}
    got = run_graph_def_in_release("1.8.0", str(out), feeds, list(fetches.values()))
    assert_outputs_match({k: got[name] for k, name in fetches.items()}, case)
