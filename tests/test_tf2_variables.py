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
