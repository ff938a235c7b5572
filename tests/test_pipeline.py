"""The pipeline: one fresh context per graph, explain == convert, the Python API."""

import dataclasses
import doctest
import json
import pathlib

import pytest

import transpiler
from transpiler.io.protos import graph_pb2, meta_graph_pb2, saved_model_pb2
from transpiler.io.readers import read_model
from transpiler.options import ConvertOptions
from transpiler.pipeline.convert import plan

DATA = pathlib.Path(__file__).resolve().parent / "data"
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "half_plus_two_tf214"


def _leaky_graph(alpha: float) -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    x = gd.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    act = gd.node.add(name="act", op="LeakyRelu", input=["x"])
    act.attr["T"].type = 1
    act.attr["alpha"].f = alpha
    return gd


def _two_meta_graph_model(tmp_path: pathlib.Path) -> pathlib.Path:
    sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    for tags, alpha in ((["serve"], 0.2), (["train"], 0.3)):
        mg = sm.meta_graphs.add()
        mg.meta_info_def.tags.extend(tags)
        mg.graph_def.CopyFrom(_leaky_graph(alpha))
        sig = mg.signature_def["serving_default"]
        sig.inputs["x"].name = "x:0"
        sig.outputs["y"].name = "act:0"
    path = tmp_path / "two_graphs"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(sm.SerializeToString())
    return path


def test_every_meta_graph_is_rewritten_even_with_the_same_node_names(tmp_path):
    model = _two_meta_graph_model(tmp_path)
    report = transpiler.convert(model, tmp_path / "out", to="1.8")
    assert not report.blocking
    assert [f["rule"] for f in report.fired].count("leaky-relu-to-relu") == 2, report.fired
    written = read_model(tmp_path / "out")
    for mg in written.meta_graphs:
        ops = {n.op for n in mg.graph_def.node}
        assert "LeakyRelu" not in ops and "Relu" in ops, (list(mg.meta_info_def.tags), ops)
    assert not transpiler.check(tmp_path / "out", to="1.8").blocking


def _fired(report):
    return sorted(json.dumps(f, sort_keys=True) for f in report.fired)


CASES = [
    (EXAMPLE, {"to": "1.8"}),                                                   # TF 2 native, inlining + rules
    (EXAMPLE, {"to": "1.8", "variables": "ref"}),                               # a user option rules depend on
    (DATA / "tensorflow-onnx__lstm_frozen" / "frozen.pb", {"to": "1.4"}),         # frozen GraphDef
    (DATA / "serving__saved_model_half_plus_two_cpu", {"to": "1.4"}),           # TF 1.x SavedModel
    (DATA / "serving__saved_model_half_plus_two_cpu", {"to": "2.21"}),          # an upgrade
]


@pytest.mark.parametrize("path,options", CASES, ids=lambda v: v.name if isinstance(v, pathlib.Path) else
                         ",".join("%s=%s" % kv for kv in v.items()))
def test_explain_reports_what_convert_does(tmp_path, path, options):
    if not path.exists():
        pytest.fail("test data missing: %s" % path)
    dry = transpiler.explain(path, **options)
    done = transpiler.convert(path, tmp_path / "out", **options)
    assert _fired(dry) == _fired(done)
    assert dry.problems == done.problems
    assert dry.notes == done.notes[:len(dry.notes)]


def test_explain_accepts_every_convert_option(cli, tmp_path):
    model = _two_meta_graph_model(tmp_path)
    result = cli("explain", model, "--to", "1.8", "--variables", "ref", "--inline-functions", "--tags", "serve",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [f["rule"] for f in report["rules_fired"]] == ["leaky-relu-to-relu"]  # --tags kept one meta graph


def test_plan_writes_nothing_and_uses_a_fresh_context_per_graph(tmp_path):
    model_dir = _two_meta_graph_model(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = plan(read_model(model_dir), ConvertOptions(to="1.8"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert [{n.op for n in ir.nodes} for ir in result.irs] == [{"Placeholder", "Const", "Relu", "Neg", "Mul", "Sub"}] * 2


def test_options_are_frozen():
    options = ConvertOptions(to="1.8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.to = "1.4"


def test_api_doctest_runs():
    """The README points at this docstring: it must stay true."""
    import os

    here = os.getcwd()
    os.chdir(pathlib.Path(__file__).resolve().parents[1])
    try:
        failures, tried = doctest.testmod(transpiler)
    finally:
        os.chdir(here)
    assert tried >= 3 and failures == 0
