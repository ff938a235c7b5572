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


def _data_shards(prefix: Path):
    return [f for f in checkpoint_files(prefix) if f.suffix != ".index"]


@pytest.mark.parametrize("case, target", [("serving__saved_model_half_plus_two_tf2_cpu", "1.8"),  # keys renamed
                                          ("tensorflow__sm_half_plus_two_v2_2018", "1.12")])   # copied as is
def test_link_hard_links_the_data_shards(tmp_path, cli, corpus_case, case, target):
    src = tmp_path / "in"
    import shutil

    shutil.copytree(corpus_case(case), src)  # links need IN on OUT's file system
    result = cli(src, tmp_path / "out", "--to", target, "--link")
    assert result.returncode == 0, result.stderr
    copied = cli(src, tmp_path / "copy", "--to", target)
    assert copied.returncode == 0, copied.stderr
    shards = _data_shards(src / "variables" / "variables")
    assert shards
    for shard in shards:
        linked = tmp_path / "out" / "variables" / shard.name
        assert linked.stat().st_ino == shard.stat().st_ino
        assert (tmp_path / "copy" / "variables" / shard.name).stat().st_ino != shard.stat().st_ino
    for f in sorted((tmp_path / "copy").rglob("*")):  # the same bytes either way
        if f.is_file():
            assert digest(tmp_path / "out" / f.relative_to(tmp_path / "copy")) == digest(f)


def test_link_copies_where_the_file_system_refuses_links(tmp_path, corpus_case, monkeypatch):
    import errno
    import os

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    src = corpus_case("tensorflow__sm_half_plus_two_v2_2018")
    for link in (True, False):
        write_model(read_model(src), tmp_path / str(link), catalog().opset("1.12"), link=link)
    for shard in _data_shards(src / "variables" / "variables"):
        assert digest(tmp_path / "True" / "variables" / shard.name) == digest(shard)
        assert (tmp_path / "True" / "variables" / shard.name).stat().st_nlink == 1
    from transpiler.io.tensor_bundle import read_index, rename_bundle

    prefix = src / "variables" / "variables"
    _, entries = read_index(Path(str(prefix) + ".index"))
    rename_bundle(prefix, tmp_path / "renamed", {k: k + "_x" for k in entries}, link=True)
    for shard in _data_shards(prefix):
        assert digest(tmp_path / shard.name.replace("variables", "renamed", 1)) == digest(shard)


def test_saved_model_keeps_exactly_the_models_meta_graphs(tmp_path, corpus_case):
    """A SavedModel read whole is written from its own proto; one whose meta graphs were cut to fewer
    (--tags) or replaced is written with exactly the model's meta graphs, never the input's others."""
    src = corpus_case("tensorflow__sm_half_plus_two_v2_2018")
    opset = catalog().opset("1.12")
    whole = read_model(src)
    write_model(whole, tmp_path / "whole", opset)
    written = saved_model_pb2.SavedModel.FromString((tmp_path / "whole" / "saved_model.pb").read_bytes())
    assert written == whole.saved_model
    cut = read_model(src)
    extra = cut.saved_model.meta_graphs.add()
    extra.CopyFrom(cut.meta_graphs[0])
    extra.meta_info_def.tags[:] = ["not-kept"]
    write_model(cut, tmp_path / "cut", opset)   # cut.meta_graphs is still the one graph read
    written = saved_model_pb2.SavedModel.FromString((tmp_path / "cut" / "saved_model.pb").read_bytes())
    assert [list(mg.meta_info_def.tags) for mg in written.meta_graphs] == [list(cut.meta_graphs[0].meta_info_def.tags)]
    assert written.saved_model_schema_version == cut.saved_model.saved_model_schema_version
