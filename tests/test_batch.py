"""`tf-transpile batch`: a tree of models converted in worker processes, JSON lines, resumable, sharded."""

import json
import os
import shutil
import signal

import pytest

from transpiler.cli import batch
from transpiler.options import ConvertOptions

CUSTOM_OP_GRAPH = ('node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\n'
                   'node { name: "y" op: "MyCustomOp" input: "x" }\n')


@pytest.fixture
def tree(tmp_path, corpus_case):
    """in/graphs/model.pb (GraphDef), in/meta/xor.meta (meta graph), in/half (SavedModel), and a link."""
    root = tmp_path / "in"
    (root / "graphs").mkdir(parents=True)
    (root / "meta").mkdir()
    shutil.copy(corpus_case("rust__addition_tf217/model.pb"), root / "graphs" / "model.pb")
    shutil.copy(corpus_case("TensorFlow.NET__xor_meta/xor.meta"), root / "meta" / "xor.meta")
    shutil.copytree(corpus_case("tensorflow__sm_half_plus_two_2017"), root / "half")
    (root / "meta" / "linked").symlink_to("../half")
    return root


MODELS = ["graphs/model.pb", "half", "meta/xor.meta"]


def lines(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def by_path(result, root):
    return {os.path.relpath(line["path"], root): line for line in lines(result)}


def test_batch_converts_every_model_and_a_rerun_skips_them(cli, tmp_path, tree):
    out = tmp_path / "out"
    first = cli("batch", tree, out, "--to", "1.8", "--jobs", "2")
    assert first.returncode == 0, first.stderr
    results = by_path(first, tree)
    assert sorted(results) == sorted(MODELS + ["meta/linked"])
    for rel in MODELS:
        line = results[rel]
        assert set(line) == {"path", "out", "status", "exit_code", "problems", "seconds"}
        assert (line["status"], line["exit_code"], line["problems"]) == ("converted", 0, [])
        assert line["out"] == str(out / rel) and line["seconds"] > 0
    link = results["meta/linked"]
    assert link["status"] == "skipped" and "symbolic link" in link["problems"][0]["detail"]
    # OUT mirrors IN, each output in its input's form; the link is not followed
    assert (out / "graphs" / "model.pb").is_file()
    assert (out / "meta" / "xor.meta").is_file()
    assert (out / "half" / "saved_model.pb").is_file() and (out / "half" / "variables").is_dir()
    assert not os.path.lexists(out / "meta" / "linked")
    assert len(list((out / batch.STAMP_DIR).glob("*.json"))) == 3
    assert "converted       3" in first.stderr and "skipped         1" in first.stderr

    again = cli("batch", tree, out, "--to", "1.8.0", "--jobs", "2")  # the same release, spelled otherwise
    assert again.returncode == 0, again.stderr
    assert {rel: line["status"] for rel, line in by_path(again, tree).items()} == dict.fromkeys(results, "skipped")

    (tree / "graphs" / "model.pb").touch()  # a changed input: its existing output needs --force
    os.utime(tree / "graphs" / "model.pb", ns=(1, 1))
    changed = cli("batch", tree, out, "--to", "1.8")
    assert changed.returncode == 2, changed.stderr
    statuses = {rel: (line["status"], line["exit_code"]) for rel, line in by_path(changed, tree).items()}
    assert statuses["graphs/model.pb"] == ("error", 2) and statuses["half"] == ("skipped", 0)
    assert "--force" in by_path(changed, tree)["graphs/model.pb"]["problems"][0]["detail"]


def test_shards_are_disjoint_and_complete(cli, tmp_path, tree):
    out = tmp_path / "out"
    seen = []
    for k in (1, 2):
        result = cli("batch", tree, out, "--to", "1.8", "--shard", "%d/2" % k, "--jobs", "1")
        assert result.returncode == 0, result.stderr
        seen.append(set(by_path(result, tree)))
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(MODELS + ["meta/linked"])
    whole = cli("batch", tree, out, "--to", "1.8")  # the shards did it all
    assert {line["status"] for line in lines(whole)} == {"skipped"}, whole.stdout


def test_a_refused_model_is_reported_and_the_others_converted(cli, tmp_path, corpus_case):
    root = tmp_path / "in"
    root.mkdir()
    (root / "custom.pbtxt").write_text(CUSTOM_OP_GRAPH)
    shutil.copy(corpus_case("rust__addition_tf217/model.pb"), root / "model.pb")
    out = tmp_path / "out"
    result = cli("batch", root, out, "--to", "1.15")
    assert result.returncode == 1, result.stderr
    results = by_path(result, root)
    refused = results["custom.pbtxt"]
    assert (refused["status"], refused["exit_code"]) == ("refused", 1)
    assert [(p["node"], p["op"]) for p in refused["problems"]] == [("y", "MyCustomOp")]
    assert results["model.pb"]["status"] == "converted"
    assert not (out / "custom.pbtxt").exists() and (out / "model.pb").is_file()
    assert "refused" in result.stderr and "MyCustomOp" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_dir_inside_in_dir_is_refused(cli, tmp_path, tree):
    result = cli("batch", tree, tree / "out", "--to", "1.8")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "inside IN_DIR" in result.stderr and not (tree / "out").exists()
    assert result.stdout == ""


# ---------------------------------------------------------------------------
# in process: finding, sharding, stamps, a crashing worker


def test_find_models_does_not_descend_into_saved_models_or_follow_links(tree):
    (tree / "half" / "extra.pb").write_bytes(b"inside a SavedModel: part of it")
    (tree / "meta" / "xor.index").write_bytes(b"")  # a checkpoint file, not a model
    (tree / "deep" / "er").mkdir(parents=True)
    (tree / "deep" / "er" / "g.pbtxt").write_text(CUSTOM_OP_GRAPH)
    (tree / "deep" / "dangling.pb").symlink_to(tree / "nothing")
    found = batch.find_models(tree)
    assert [e.rel for e in found] == ["deep/dangling.pb", "deep/er/g.pbtxt"] + MODELS[:2] + ["meta/linked",
                                                                                           "meta/xor.meta"]
    assert [e.rel for e in found if e.link] == ["deep/dangling.pb", "meta/linked"]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shard_split(n):
    entries = [batch.Entry("m%02d" % i) for i in range(10)]
    parts = [batch.shard(entries, k, n) for k in range(1, n + 1)]
    assert sorted(e.rel for part in parts for e in part) == [e.rel for e in entries]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        batch.parse_shard(text)


def test_options_digest_ignores_force_and_spelling():
    a = batch.options_digest(ConvertOptions(to="1.8"), "1.8.0")
    assert a == batch.options_digest(ConvertOptions(to="1.8.0", force=True), "1.8.0")
    assert a != batch.options_digest(ConvertOptions(to="1.8", variables="ref"), "1.8.0")


def test_exit_status_is_the_worst():
    assert batch.exit_status([]) == 0
    assert batch.exit_status([{"exit_code": 0}, {"exit_code": 1}]) == 1
    assert batch.exit_status([{"exit_code": 1}, {"exit_code": 2}]) == 2
    assert batch.exit_status([{"exit_code": 3}, {"exit_code": 2}]) == 3


def _crash_on_b(conn, path, out, options):
    if path.name == "b":
        os.kill(os.getpid(), signal.SIGKILL)
    conn.send({"status": "converted", "exit_code": 0, "problems": []})
    conn.close()


def test_a_crashing_worker_takes_down_only_its_model(tmp_path):
    tasks = [batch.Task(batch.Entry(n), tmp_path / n, tmp_path / "out" / n) for n in "abc"]
    finished = []
    batch.run_batch(tasks, ConvertOptions(to="1.8"), 2, finished.append, target=_crash_on_b)
    results = {t.entry.rel: t.result for t in finished}
    assert sorted(results) == ["a", "b", "c"]
    assert results["a"]["status"] == results["c"]["status"] == "converted"
    assert (results["b"]["status"], results["b"]["exit_code"]) == ("error", 3)
    assert "signal %d" % signal.SIGKILL in results["b"]["problems"][0]["detail"]
