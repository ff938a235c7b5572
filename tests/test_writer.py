"""Writer: atomic output, target stamping, streamed checkpoint copy."""

import hashlib
from pathlib import Path

import pytest

from transpiler.io.checkpoints import checkpoint_files
from transpiler.ir.graph import lift
from transpiler.io.protos import saved_model_pb2
from transpiler.io.readers import read_model
from transpiler.knowledge.releases import catalog
from transpiler.backends.writer import staged, used_ops, write_model


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_staged_leaves_nothing_on_failure(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(error):
        with staged(out, force=False) as tmp:
            tmp.mkdir()
            (tmp / "half.pb").write_bytes(b"partial")
            raise error("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_keeps_existing_output_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with staged(out, force=True) as tmp:
            tmp.mkdir()
            raise RuntimeError
    assert (out / "old").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_saved_model_written_for_target(tmp_path, corpus_case):
    src = corpus_case("tensorflow__sm_half_plus_two_v2_2018")
    model = read_model(src)
    producers = [mg.graph_def.versions.producer for mg in model.meta_graphs]
    opset = catalog().opset("1.12")
    write_model(model, tmp_path / "out", opset)
    out = tmp_path / "out"
    sm = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    for mg, producer in zip(sm.meta_graphs, producers):
        assert mg.meta_info_def.tensorflow_version == "1.12.0"
        assert mg.graph_def.versions.producer == min(producer, opset.graph_def_version)  # never raised
        listed = {op.name for op in mg.meta_info_def.stripped_op_list.op}
        assert listed == used_ops(mg.graph_def)
        for op in mg.meta_info_def.stripped_op_list.op:
            assert op == opset.op(op.name)
    assert (out / "assets" / "foo.txt").read_bytes() == (src / "assets" / "foo.txt").read_bytes()
    for f in checkpoint_files(src / "variables" / "variables"):
        assert digest(out / "variables" / f.name) == digest(f)


def test_frozen_graph_stays_a_frozen_graph(tmp_path, corpus_case):
    src = corpus_case("tensorflow__parse_example_graph_def/parse_example_graph_def.pbtxt")
    model = read_model(src)
    write_model(model, tmp_path / "out.pbtxt", catalog().opset("1.8"))
    again = read_model(tmp_path / "out.pbtxt")
    assert again.kind == model.kind and again.text
    assert len(again.meta_graphs[0].graph_def.node) == len(read_model(src).meta_graphs[0].graph_def.node)


def test_meta_graph_written_with_its_checkpoint(tmp_path, corpus_case):
    src = corpus_case("tensorflow__feature_column_embedding_ckpt/embedding.ckpt.meta")
    model = read_model(src)
    write_model(model, tmp_path / "out.meta", catalog().opset("1.8"))
    again = read_model(tmp_path / "out.meta")
    assert again.checkpoint == tmp_path / "out"
    suffixes = [f.name[len("out"):] for f in checkpoint_files(again.checkpoint)]
    assert suffixes == [f.name[len("embedding.ckpt"):] for f in checkpoint_files(model.checkpoint)]


def test_same_input_same_bytes(tmp_path, corpus_case):
    src = corpus_case("serving__saved_model_half_plus_two_tf2_cpu")
    for name in ("a", "b"):
        write_model(read_model(src), tmp_path / name, catalog().opset("2.21"))
    assert digest(tmp_path / "a" / "saved_model.pb") == digest(tmp_path / "b" / "saved_model.pb")


def test_round_trip_lift_lower_preserves_graph_for_writer(corpus_case):
    model = read_model(corpus_case("serving__saved_model_half_plus_two_tf2_cpu"))
    graph_def = model.meta_graphs[0].graph_def
    assert lift(graph_def).lower().SerializeToString(deterministic=True) == graph_def.SerializeToString(deterministic=True)
