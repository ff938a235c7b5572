"""`tf-transpile batch`: a tree of models converted in worker processes, JSON lines, resumable, sharded."""

import hashlib
import json
import os
import re
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


@pytest.fixture
def mixed(tmp_path, corpus_case):
    """in/custom.pbtxt (an op no release has: refused) and in/model.pb (converts for 1.15)."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "custom.pbtxt").write_text(CUSTOM_OP_GRAPH)
    shutil.copy(corpus_case("rust__addition_tf217/model.pb"), root / "model.pb")
    return root


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
    assert re.search(r"^converted +3$", first.stderr, re.M) and re.search(r"^skipped +1$", first.stderr, re.M)

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
    for k in (1, 2, 3):
        result = cli("batch", tree, out, "--to", "1.8", "--shard", "%d/3" % k, "--jobs", "1")
        assert result.returncode == 0, result.stderr
        seen.append(set(by_path(result, tree)))
        assert seen[-1] == {e.rel for e in batch.shard(batch.find_models(tree), k, 3)}
    assert sum(map(len, seen)) == len(set().union(*seen))  # disjoint
    assert set().union(*seen) == set(MODELS + ["meta/linked"])
    assert len([s for s in seen if s]) >= 2
    whole = cli("batch", tree, out, "--to", "1.8")  # the shards did it all
    assert {line["status"] for line in lines(whole)} == {"skipped"}, whole.stdout


def test_a_refused_model_is_reported_and_the_others_converted(cli, tmp_path, mixed):
    root = mixed
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
    entries = [batch.Entry("m%02d" % i) for i in range(100)]
    parts = [batch.shard(entries, k, n) for k in range(1, n + 1)]
    assert sorted(e.rel for part in parts for e in part) == [e.rel for e in entries]  # disjoint, complete
    assert min(map(len, parts)) >= 100 // n // 2  # a hash spreads them: no share is starved


def test_adding_models_does_not_move_others_between_shards():
    """Shards go by a hash of the relative path, not by position in the sorted list."""
    before = [batch.Entry("models/m%03d.pb" % i) for i in range(0, 60, 2)]
    after = sorted(before + [batch.Entry("models/m%03d.pb" % i) for i in range(1, 60, 2)] +
                   [batch.Entry("aaa/first.pb")], key=lambda e: e.rel)
    for k in (1, 2, 3):
        old = {e.rel for e in batch.shard(before, k, 3)}
        new = {e.rel for e in batch.shard(after, k, 3)}
        assert old <= new, "models moved out of shard %d/3: %s" % (k, sorted(old - new))
    assert batch.shard_of("models/m000.pb", 3) == batch.shard_of("models/m000.pb", 3)
    assert [batch.shard_of("a/b.pb", 4), batch.shard_of("half", 4)] == [  # the same on every machine
        int(hashlib.sha256(rel.encode()).hexdigest()[:16], 16) % 4 + 1 for rel in ("a/b.pb", "half")]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        batch.parse_shard(text)


def test_options_digest_ignores_force_and_spelling():
    a = batch.options_digest(ConvertOptions(to="1.8"), "1.8.0")
    assert a == batch.options_digest(ConvertOptions(to="1.8.0", force=True), "1.8.0")
    assert a != batch.options_digest(ConvertOptions(to="1.8", variables="ref"), "1.8.0")
    assert a == batch.options_digest(ConvertOptions(to="1.8", progress=lambda what, done, total: None), "1.8.0")


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


# ---------------------------------------------------------------------------
# --timeout, stamped refusals, --format markdown, -q / -v


def _sleep_on_b(conn, path, out, options):
    import time

    if path.name == "b":
        signal.signal(signal.SIGTERM, batch._interrupt)  # as _worker does: SIGTERM unwinds
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            (path.parent / "b.cleaned").write_text("unwound")
            return
    conn.send({"status": "converted", "exit_code": 0, "problems": []})
    conn.close()


def test_a_model_past_its_timeout_is_killed_and_the_others_go_on(tmp_path):
    import time

    tasks = [batch.Task(batch.Entry(n), tmp_path / n, tmp_path / "out" / n) for n in "abc"]
    finished = []
    began = time.monotonic()
    batch.run_batch(tasks, ConvertOptions(to="1.8"), 2, finished.append, target=_sleep_on_b, timeout=1.0)
    assert time.monotonic() - began < 30
    results = {t.entry.rel: t.result for t in finished}
    assert results["a"]["status"] == results["c"]["status"] == "converted"
    assert (results["b"]["status"], results["b"]["exit_code"]) == ("timeout", 1)
    assert "--timeout 1 s" in results["b"]["problems"][0]["detail"] and results["b"]["seconds"] >= 1.0
    assert (tmp_path / "b.cleaned").read_text() == "unwound"  # SIGTERM first: the worker cleans up
    assert batch.exit_status(list(results.values())) == 1


def test_timeout_from_the_command_line(cli, tmp_path):
    """A 50000-node graph cannot convert in 0.5 s (the in-process test above shows the others go on).
    No staged output is left behind."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    from bench_scale import synthetic_graph

    root = tmp_path / "in"
    root.mkdir()
    (root / "big.pb").write_bytes(synthetic_graph(50000).SerializeToString())
    out = tmp_path / "out"
    result = cli("batch", root, out, "--to", "1.4", "--timeout", "0.5")
    assert result.returncode == 1, result.stderr
    results = by_path(result, root)
    assert (results["big.pb"]["status"], results["big.pb"]["exit_code"]) == ("timeout", 1)
    assert re.search(r"^timeout +1$", result.stderr, re.M) and "--timeout 0.5 s" in result.stderr
    assert not (out / "big.pb").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staged output, no stamp
    bad = cli("batch", root, out, "--to", "1.4", "--timeout", "0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr


def test_a_refusal_is_stamped_and_reported_again_on_resume(cli, tmp_path, mixed):
    root = mixed
    out = tmp_path / "out"
    first = cli("batch", root, out, "--to", "1.15")
    assert first.returncode == 1 and by_path(first, root)["custom.pbtxt"]["status"] == "refused"
    assert len(list((out / batch.STAMP_DIR).glob("*.json"))) == 2  # the refusal is stamped too

    again = cli("batch", root, out, "--to", "1.15")
    assert again.returncode == 1, again.stderr  # still the worst status of the tree
    results = by_path(again, root)
    refused = results["custom.pbtxt"]
    assert (refused["status"], refused["exit_code"]) == ("skipped-refused", 1)
    assert [(p["node"], p["op"]) for p in refused["problems"]] == [("y", "MyCustomOp")]  # from the stamp
    assert refused["seconds"] == 0.0 and results["model.pb"]["status"] == "skipped"
    assert re.search(r"^skipped-refused +1$", again.stderr, re.M) and "MyCustomOp" in again.stderr

    other = cli("batch", root, out, "--to", "1.15", "--variables", "ref")  # other options: tried again
    assert by_path(other, root)["custom.pbtxt"]["status"] == "refused"
    os.utime(root / "custom.pbtxt", ns=(1, 1))  # a changed input: tried again
    changed = cli("batch", root, out, "--to", "1.15", "--variables", "ref")
    assert by_path(changed, root)["custom.pbtxt"]["status"] == "refused"


def test_batch_markdown_quiet_and_verbose(cli, tmp_path, mixed):
    root = mixed
    md = cli("batch", root, tmp_path / "md", "--to", "1.15", "--format", "markdown")
    assert md.returncode == 1 and md.stderr == ""
    lines = md.stdout.splitlines()
    assert lines[0] == "## tf-transpile batch: 2 model(s) for TF 1.15"
    assert "1 converted, 1 failed" in lines[2] and "exit status 1" in lines[2]
    assert "| Model | Status | Exit | Seconds | First problem |" in lines
    assert any(l.startswith("| %s | refused | 1 |" % (root / "custom.pbtxt")) and "y [MyCustomOp]" in l for l in lines)
    assert not any(l.startswith("{") for l in lines)  # the document instead of the JSON lines

    quiet = cli("batch", root, tmp_path / "q", "--to", "1.15", "-q")
    assert quiet.returncode == 1 and len(quiet.stdout.splitlines()) == 2  # the JSON lines stay
    assert "STATUS  EXIT" in quiet.stderr and "MODELS" not in quiet.stderr  # only the failures
    (root / "custom.pbtxt").unlink()
    ok = cli("batch", root, tmp_path / "q2", "--to", "1.15", "--quiet")
    assert ok.returncode == 0 and ok.stderr == "" and len(ok.stdout.splitlines()) == 1
    loud = cli("batch", root, tmp_path / "v", "--to", "1.15", "-v")
    assert re.search(r"^converted +[0-9.]+ s  %s$" % re.escape(str(root / "model.pb")), loud.stderr, re.M)
