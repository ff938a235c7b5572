"""Bad input: one clear line on stderr, a non-zero exit, nothing written, input untouched."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

GOOD = "tensorflow__sm_half_plus_two_v2_2018"
CUSTOM_OP_GRAPH = ('node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\n'
                   'node { name: "y" op: "MyCustomOp" input: "x" }\n')


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def model(tmp_path, corpus_case):
    dst = tmp_path / "in"
    shutil.copytree(corpus_case(GOOD), dst)
    return dst


def assert_one_line_error(result, *fragments, code=2):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tf-transpile: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_nothing_written(tmp_path, out):
    assert not Path(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_missing_input(cli, tmp_path):
    result = cli(tmp_path / "nope", tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "no such file or directory", "nope")
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_corrupt_saved_model(cli, tmp_path, model):
    (model / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff garbage")
    before = tree_digest(model)
    result = cli(model, tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "not a valid SavedModel", "saved_model.pb")
    assert_nothing_written(tmp_path, tmp_path / "out")
    assert tree_digest(model) == before


def _flip_a_byte(path: Path, at: int = 2) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped byte", "truncated shard", "missing shard"])
def test_corrupt_checkpoint_is_refused_not_copied(cli, tmp_path, model, damage):
    """TF verifies each tensor's crc32c when it restores: a damaged checkpoint would fail in the
    target, so it is refused here, by tensor and file, before anything is written."""
    (shard,) = (model / "variables").glob("variables.data-*")
    if damage == "flipped byte":
        _flip_a_byte(shard)
    elif damage == "truncated shard":
        shard.write_bytes(shard.read_bytes()[:3])
    else:
        shard.unlink()
    before = tree_digest(model)
    result = cli(model, tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "corrupt checkpoint", "variables/variables")
    assert_nothing_written(tmp_path, tmp_path / "out")
    assert tree_digest(model) == before


def test_every_corpus_checkpoint_passes_the_check(corpus_case):
    """No false alarms: the check accepts every real V2 checkpoint in the corpus."""
    from transpiler.io.tensor_bundle import check_bundle

    indexes = sorted(Path(corpus_case(GOOD)).parent.rglob("*.index"))
    assert len(indexes) >= 15
    for index in indexes:
        check_bundle(Path(str(index)[:-len(".index")]))


def test_corrupt_graph_def(cli, tmp_path):
    bad = tmp_path / "frozen.pb"
    bad.write_bytes(b"\x00\x01 not a graph \xff")
    result = cli(bad, tmp_path / "out.pb", "--to", "1.8")
    assert_one_line_error(result, "not a valid GraphDef", "frozen.pb")
    assert not (tmp_path / "out.pb").exists()


def test_directory_without_saved_model(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli(tmp_path / "empty", tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "not a SavedModel directory")


def test_missing_variables(cli, tmp_path, model):
    shutil.rmtree(model / "variables")
    result = cli(model, tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "missing variables")
    assert_nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("version", ["1.3", "3.0", "one.eight", "1.8.0.1"])
def test_unknown_release(cli, tmp_path, model, version):
    result = cli(model, tmp_path / "out", "--to", version)
    assert_one_line_error(result, version)
    assert "known releases" in result.stderr or "not a TensorFlow release" in result.stderr
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_existing_output_needs_force(cli, tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli(model, out, "--to", "1.12")
    assert_one_line_error(result, "already exists", "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_force_replaces_output(cli, tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli(model, out, "--to", "1.12", "--force")
    assert result.returncode == 0, result.stderr
    assert (out / "saved_model.pb").is_file() and not (out / "keep.txt").exists()


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_is_input(cli, tmp_path, model, where):
    out = model if where == "same" else model / "sub"
    before = tree_digest(model)
    result = cli(model, out, "--to", "1.8", "--force")
    assert_one_line_error(result, "would overwrite the input")
    assert tree_digest(model) == before


def test_unknown_op_is_reported_by_node_and_op(cli, tmp_path):
    from transpiler.io.protos import graph_pb2, text_format

    graph = text_format.Parse('node { name: "mystery" op: "TotallyCustomOp" }', graph_pb2.GraphDef())
    path = tmp_path / "custom.pbtxt"
    path.write_text(text_format.MessageToString(graph))
    result = cli(path, tmp_path / "out.pbtxt", "--to", "1.8")
    assert result.returncode == 1
    assert "TotallyCustomOp" in result.stderr and "mystery" in result.stderr
    assert "unknown to every known release" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.pbtxt").exists()


def test_help_reads_well(cli):
    result = cli("--help")
    assert result.returncode == 0
    for word in ("check IN --to", "releases", "--force", "exit status"):
        assert word in result.stdout


# ---------------------------------------------------------------------------
# the filesystem: OUT above IN, links out of IN, leftovers of killed runs, long names


def test_out_that_contains_the_input_is_refused_even_with_force(cli, tmp_path, model):
    (tmp_path / "other.txt").write_text("keep me")
    before = tree_digest(tmp_path)
    result = cli(model, tmp_path, "--to", "1.8", "--force")
    assert_one_line_error(result, "would overwrite the input")
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("link", ["file_outside", "dir_outside", "dangling", "loop"])
def test_links_in_the_input_are_refused(cli, tmp_path, model, link):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0\n")
    target = {"file_outside": secret / "passwd", "dir_outside": secret, "dangling": tmp_path / "nothing",
              "loop": model / "assets" / "loop"}[link]
    (model / "assets" / ("loop" if link == "loop" else "linked")).symlink_to(target)
    result = cli(model, tmp_path / "out", "--to", "1.8")
    assert_one_line_error(result, "symbolic link")
    assert not (tmp_path / "out").exists()


def test_leftovers_of_a_killed_run_are_removed(cli, tmp_path, model):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / (".tf-transpile-%s-abc" % dead.stdout.strip())
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "big").write_bytes(b"x" * 1000)
    result = cli(model, tmp_path / "out", "--to", "1.8")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_out_name_near_the_length_limit(cli, tmp_path, model):
    out = tmp_path / ("m" * 250)
    result = cli(model, out, "--to", "1.8")
    assert result.returncode == 0, result.stderr
    assert (out / "saved_model.pb").is_file()


def test_json_on_every_outcome(cli, tmp_path):
    """(--format markdown likewise: the two tests below.)"""

    bad = cli(tmp_path / "missing", tmp_path / "out", "--to", "1.8", "--format", "json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["exit_code"] == 2
    assert "no such file" in json.loads(bad.stdout)["error"] and len(bad.stderr.strip().splitlines()) == 1
    custom = tmp_path / "custom.pbtxt"
    custom.write_text(CUSTOM_OP_GRAPH)
    refused = cli(custom, tmp_path / "out.pbtxt", "--to", "1.8", "--format", "json")
    document = json.loads(refused.stdout)
    assert refused.returncode == 1 and document["exit_code"] == 1 and not document["ok"]
    assert [(p["node"], p["op"]) for p in document["problems"]] == [("y", "MyCustomOp")]
    assert not (tmp_path / "out.pbtxt").exists()


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_a_refusal_is_one_document_on_stdout(cli, tmp_path, fmt):
    custom = tmp_path / "custom.pbtxt"
    custom.write_text(CUSTOM_OP_GRAPH)
    result = cli(custom, tmp_path / "out.pbtxt", "--to", "1.8", "--format", fmt)
    assert result.returncode == 1 and not (tmp_path / "out.pbtxt").exists()
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # the report is on stdout only
    if fmt == "json":
        document = json.loads(result.stdout)
        assert document["exit_code"] == 1 and "nothing written" in document["error"]
    else:
        assert result.stdout.startswith("## tf-transpile: ") and "| MyCustomOp | 1 |" in result.stdout
        assert "**Error (exit status 1):**" in result.stdout and "nothing written" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "markdown"])
@pytest.mark.parametrize("argv", [["{tmp}/missing", "{tmp}/out", "--to", "1.8"],
                                  ["check", "{tmp}/missing", "--to", "1.8"],
                                  ["check", "--to", "1.8"],  # usage: IN missing
                                  ["{graph}", "{tmp}/o.pb", "--to", "1.8", "--no-such-option"],
                                  ["rules", "list", "--to", "0.1"],
                                  ["releases", "--bogus"]])
def test_bad_input_and_usage_give_a_document_too(cli, tmp_path, corpus_case, argv, fmt):
    args = [a.format(tmp=tmp_path, graph=corpus_case("rust__addition_tf217/model.pb")) for a in argv] + ["--format", fmt]
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if fmt == "json":
        document = json.loads(result.stdout)  # exactly one JSON document
        assert document["exit_code"] == 2 and document["error"]
    else:
        assert result.stdout.startswith("## tf-transpile: error")
        assert "**Error (exit status 2):**" in result.stdout
