"""Math and array rules end to end: a TF 2.x tf.compat.v1 model using Einsum,
broadcasting BatchMatMulV2 and SelectV2, transpiled for old releases, loads in
the real release and gives the producer's numbers; ops the rules cannot express
are refused by name, with the reason."""

import pytest

from conftest import assert_outputs_match
from model_zoo import op_histogram
from transpiler.options import ConvertOptions
from transpiler.pipeline.convert import explain

NEW_OPS = ("Einsum", "BatchMatMulV2", "SelectV2")


def test_producer_model_uses_the_new_ops(tf2_cases):
    ops = op_histogram(tf2_cases["compat_v1_einsum"].path)
    assert all(ops[op] for op in NEW_OPS), ops


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.8.0", "1.4.0", "1.12.0"])
def test_einsum_model_runs_in_old_release(release, tf2_cases, cli, run_case, tmp_path):
    case = tf2_cases["compat_v1_einsum"]
    out = tmp_path / case.name
    result = cli(case.path, out, "--to", release)
    assert result.returncode == 0, result.stderr
    ops = op_histogram(out)
    assert not [op for op in NEW_OPS if ops[op]], ops
    assert not ops["AddV2"] or release != "1.4.0", ops
    assert ops["BatchMatMul"] and ops["Select"], ops
    assert cli("check", out, "--to", release).returncode == 0
    assert_outputs_match(run_case(release, out, case), case, rtol=1e-5, atol=1e-5)


def _graph_with(tmp_path, build):
    """A frozen GraphDef (.pb) built by the host TF with `build(tf)` in a fresh graph."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        build(tf)
    path = tmp_path / "model.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _problems(report):
    return {p.op: p.detail for p in report.problems}


@pytest.mark.parametrize("equation,shapes", [
    ("ii->i", [(3, 3)]),                      # a diagonal
    ("bii,bj->bj", [(2, 3, 3), (2, 4)]),      # a trace
])
def test_unsupported_einsum_is_refused_naming_the_equation(equation, shapes, tmp_path):
    def build(tf):
        args = [tf.compat.v1.placeholder(tf.float32, s) for s in shapes]
        tf.raw_ops.Einsum(inputs=args, equation=equation, name="e")

    problems = _problems(explain(_graph_with(tmp_path, build), ConvertOptions(to="1.8")))
    assert "Einsum" in problems and equation in problems["Einsum"], problems


def test_matrix_diag_with_offset_is_refused(tmp_path):
    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, (2, 4))
        tf.linalg.diag(x, k=1, name="off_diagonal")
        tf.linalg.diag(x, name="main")  # the main diagonal is rewritten

    report = explain(_graph_with(tmp_path, build), ConvertOptions(to="1.8"))
    assert [p.node for p in report.problems] == ["off_diagonal"], report.problems
    assert "main diagonal" in report.problems[0].detail


def test_gather_batch_dims_is_refused_with_its_value(tmp_path):
    def build(tf):
        params = tf.compat.v1.placeholder(tf.float32, (2, 5, 3))
        indices = tf.compat.v1.placeholder(tf.int32, (2, 4))
        tf.gather(params, indices, axis=1, batch_dims=1, name="g")

    problems = _problems(explain(_graph_with(tmp_path, build), ConvertOptions(to="1.8")))
    assert "batch_dims=1" in problems.get("GatherV2", ""), problems
