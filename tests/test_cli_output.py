"""How much the command line prints: --format markdown, -q/--quiet, -v/--verbose, and the progress line."""

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from host_runner import build_with_host_tf

from transpiler.cli import output

ROOT = Path(__file__).resolve().parent.parent
GOOD_GRAPH = "rust__addition_tf217/model.pb"  # AddV2: one rule fires for 1.4
CUSTOM_OP_GRAPH = ('node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }\n'
                   'node { name: "y" op: "MyCustomOp" input: "x" }\n')

#: A TF 1.x SavedModel with one 4M-float variable (16 MB of checkpoint), written by the host's TF.
BIG_SAVED_MODEL = """
import sys
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
with tf.Graph().as_default() as g:
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    w = tf.Variable(np.ones((4, 1 << 20), np.float32), name="w")
    y = tf.identity(tf.reduce_sum(tf.matmul(x, w), axis=1), name="y")
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        b = tf.saved_model.builder.SavedModelBuilder(sys.argv[1])
        sig = tf.saved_model.predict_signature_def({"x": x}, {"y": y})
        b.add_meta_graph_and_variables(s, ["serve"], signature_def_map={"serving_default": sig})
        b.save()
"""


def run_in_pty(*args, env=None):
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe): (returncode, stdout, terminal text)."""
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "transpiler"] + [str(a) for a in args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    stdout, _ = proc.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(master)
    return proc.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def big_saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "model"
    build_with_host_tf(BIG_SAVED_MODEL, path)
    return path


@pytest.fixture(scope="module")
def big_graph(tmp_path_factory):
    """A 20000-node frozen graph (bench/bench_scale.py's), LeakyRelu for a rule to fire on."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_scale import synthetic_graph
    finally:
        sys.path.pop(0)
    path = tmp_path_factory.mktemp("graph") / "big.pb"
    path.write_bytes(synthetic_graph(20000).SerializeToString())
    return path


# ---------------------------------------------------------------------------
# --format markdown


def test_markdown_report_of_a_conversion(cli, tmp_path, corpus_case):
    result = cli(corpus_case(GOOD_GRAPH), tmp_path / "out.pb", "--to", "1.4", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("## tf-transpile: ") and "for TF 1.4" in text.splitlines()[0]
    assert "Nothing blocks loading in TF 1.4." in text
    assert "| Rule | Count |" in text and "| add-v2-to-add | 1 |" in text
    assert "Wrote %s for TF 1.4" % (tmp_path / "out.pb") in text
    assert "### Passes" not in text  # only with -v


def test_markdown_check_lists_every_problem_in_a_table(cli, tmp_path):
    custom = tmp_path / "custom.pbtxt"
    custom.write_text(CUSTOM_OP_GRAPH)
    result = cli("check", custom, "--to", "1.8", "--format", "markdown")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## tf-transpile: ") and "**1 problem(s) block loading in TF 1.8" in result.stdout
    header = lines.index("| Op | Count | Reason | Nodes |")
    assert lines[header + 1] == "|---|---|---|---|"
    assert lines[header + 2].startswith("| MyCustomOp | 1 | op unknown to every known release") and \
        lines[header + 2].endswith("| y |")


def test_markdown_listings(cli):
    rules = cli("rules", "list", "--to", "1.8", "--format", "markdown")
    assert rules.returncode == 0
    lines = rules.stdout.splitlines()
    assert lines[0].startswith("## tf-transpile: ") and "active for TF 1.8" in lines[0]
    assert lines[2] == "| ID | FAMILY | MATCH | ACTION | WHEN |" and lines[3] == "|---|---|---|---|---|"
    assert len(lines) - 4 == int(lines[0].split()[2])  # one row per rule
    releases = cli("releases", "--format", "markdown")
    assert releases.returncode == 0 and "| Release | Full version | GraphDef version | Ops |" in releases.stdout
    assert "| 1.8 | 1.8.0 |" in releases.stdout
    listed = json.loads(cli("releases", "--format", "json").stdout)
    assert any(r["release"] == "1.8" and r["full"] == "1.8.0" and r["ops"] > 0 for r in listed)


def test_md_cells_escape_pipes_and_newlines():
    from transpiler.pipeline.markdown import md_table

    assert md_table(("a", "b"), [("x|y", "1\n2")]) == ["| a | b |", "|---|---|", "| x\\|y | 1 2 |"]


# ---------------------------------------------------------------------------
# -q / -v


def test_quiet_prints_nothing_on_success_and_the_error_on_failure(cli, tmp_path, corpus_case):
    done = cli("-q", corpus_case(GOOD_GRAPH), tmp_path / "out.pb", "--to", "1.4")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert (tmp_path / "out.pb").is_file()
    checked = cli("check", corpus_case(GOOD_GRAPH), "--to", "1.15", "--quiet")
    assert checked.returncode == 0 and checked.stdout == ""
    blocked = cli("check", corpus_case(GOOD_GRAPH), "--to", "1.4", "-q")  # the problems are the answer
    assert blocked.returncode == 1 and "AddV2" in blocked.stdout
    missing = cli("-q", tmp_path / "missing", tmp_path / "o", "--to", "1.8")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    as_json = cli("-q", corpus_case(GOOD_GRAPH), tmp_path / "out2.pb", "--to", "1.4", "--format", "json")
    assert json.loads(as_json.stdout)["ok"] is True and as_json.stderr == ""


def test_verbose_shows_each_pass_with_its_time_and_firings(cli, tmp_path, corpus_case):
    result = cli(corpus_case(GOOD_GRAPH), tmp_path / "out.pb", "--to", "1.4", "-v")
    assert result.returncode == 0, result.stderr
    passes = [line.split() for line in result.stdout.splitlines() if line.startswith("pass ")]
    names = [p[1] for p in passes]
    assert "rules" in names and "inline-calls" in names
    rules = passes[names.index("rules")]
    assert rules[3] == "s" and float(rules[2]) >= 0 and rules[4:6] == ["1", "firing(s)"]
    assert "rules fired: add-v2-to-add x1" in result.stdout
    plain = cli(corpus_case(GOOD_GRAPH), tmp_path / "plain.pb", "--to", "1.4")
    assert not [line for line in plain.stdout.splitlines() if line.startswith("pass ")]
    document = json.loads(cli(corpus_case(GOOD_GRAPH), tmp_path / "j.pb", "--to", "1.4", "--format", "json").stdout)
    assert {"name", "seconds", "firings", "nodes", "graph"} <= set(document["passes"][0])
    md = cli("--verbose", corpus_case(GOOD_GRAPH), tmp_path / "m.pb", "--to", "1.4", "--format", "markdown")
    assert "### Passes" in md.stdout and "| Graph | Pass | Seconds | Firings | Nodes |" in md.stdout


def test_global_flags_anywhere():
    assert output.split_global_flags(["-q", "check", "m", "--to", "1.8"]) == (output.QUIET, ["check", "m", "--to", "1.8"])
    assert output.split_global_flags(["check", "m", "--verbose"]) == (output.VERBOSE, ["check", "m"])
    assert output.split_global_flags(["x", "--", "-v"]) == (output.NORMAL, ["x", "--", "-v"])


def test_help_documents_the_global_flags_formats_and_exit_codes(cli):
    text = cli("--help").stdout
    for word in ("-q, --quiet", "-v, --verbose", "--format text|json|markdown", "progress", "exit status",
                 "130 interrupted", "3 an internal error", "2 bad input"):
        assert word in text, word
    readme = (ROOT / "README.md").read_text()
    for word in ("--format markdown", "-q", "--verbose", "tf-transpile[tensorflow]", "130", "--timeout"):
        assert word in readme, word


# ---------------------------------------------------------------------------
# progress


def test_progress_line_renders_and_ends_its_line():
    import io

    stream = io.StringIO()
    line = output.ProgressLine(stream, delay=0)
    for done in range(0, 11):
        line("copying checkpoint (bytes)", done * 1000000, 10000000)
    text = stream.getvalue()
    assert text.startswith("\rcopying checkpoint (bytes) [") and text.endswith("] 100%  10.0/10.0 MB\n")
    assert output.render_progress("passes over the graph (nodes)", 50, 200) == \
        "passes over the graph (nodes) [########......................]  25%  50/200"
    quiet = io.StringIO()
    short = output.ProgressLine(quiet, delay=60)  # work shorter than the delay shows nothing
    short("x (bytes)", 1, 2)
    short("x (bytes)", 2, 2)
    assert quiet.getvalue() == ""


def test_progress_on_a_terminal_for_checkpoint_bytes(tmp_path, big_saved_model):
    code, stdout, terminal = run_in_pty(big_saved_model, tmp_path / "out", "--to", "1.8",
                                        env={output.PROGRESS_DELAY_ENV: "0"})
    assert code == 0, terminal
    bars = [part for part in terminal.replace("\n", "\r").split("\r") if part.startswith("copying checkpoint")]
    assert len(bars) >= 2, terminal  # redrawn as it goes: the 16 MB copy is 4 chunks
    assert bars[-1].endswith("100%  16.8/16.8 MB"), bars[-1]
    assert "\rcopying checkpoint" in terminal and "wrote" in stdout  # the bar stays off stdout
    assert (tmp_path / "out" / "variables" / "variables.index").is_file()


def test_progress_on_a_terminal_for_nodes_through_the_passes(tmp_path, big_graph):
    code, stdout, terminal = run_in_pty(big_graph, tmp_path / "out.pb", "--to", "1.4",
                                        env={output.PROGRESS_DELAY_ENV: "0"})
    assert code == 0, terminal
    bars = [part for part in terminal.replace("\n", "\r").split("\r") if part.startswith("passes over the graph")]
    assert bars and bars[-1].startswith("passes over the graph (nodes) [%s] 100%%" % ("#" * output.BAR_WIDTH))
    assert "rules fired: leaky-relu-to-relu x5000" in stdout


def test_no_progress_off_a_terminal_or_with_quiet(cli, tmp_path, big_saved_model):
    env = dict(os.environ, **{output.PROGRESS_DELAY_ENV: "0"})
    piped = subprocess.run([sys.executable, "-m", "transpiler", str(big_saved_model), str(tmp_path / "a"),
                            "--to", "1.8"], capture_output=True, text=True, env=env, timeout=600)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    code, stdout, terminal = run_in_pty("-q", big_saved_model, tmp_path / "b", "--to", "1.8",
                                        env={output.PROGRESS_DELAY_ENV: "0"})
    assert code == 0 and terminal == "" and stdout == ""


def test_verify_markdown_has_a_row_per_output_and_the_verdict():
    from transpiler.cli.verify import verify_markdown
    from transpiler.verify.compare import OutputCheck
    from transpiler.verify.verify import SignatureCheck, VerifyReport

    report = VerifyReport("in/", "out/", "1.8", target_tf="1.8.0", reference="host python3", reference_tf="2.21.0",
                          signatures=[SignatureCheck("serving_default", ["serve"], False, [
                              OutputCheck("y", "float32", [1], [1], True, 0.0, 0.0),
                              OutputCheck("z|w", "float32", [2], [2], False, 0.5, 0.25, detail="differs")]),
                              SignatureCheck("other", ["serve"], False, error="OUT does not load")])
    lines = verify_markdown(report).splitlines()
    assert lines[0] == "## tf-transpile verify: out/ in TF 1.8.0"
    assert lines[2].startswith("**verify: FAIL out/ in TF 1.8.0: 1/2 outputs match")
    assert "| [serve] serving_default | y | ok | float32 | [1] | 0 | 0 |  |" in lines
    assert "| [serve] serving_default | z\\|w | FAIL | float32 | [2] | 0.5 | 0.25 | differs |" in lines
    assert "| [serve] other |  | FAIL |  |  |  |  | OUT does not load |" in lines
    from transpiler.verify.variables import VariablesCheck

    report.variables = [VariablesCheck(["serve"], False, 1, 2, ["dense/bias: missing in OUT"])]
    lines = verify_markdown(report).splitlines()
    assert "- variables [serve] 1 trainable in OUT, 2 in IN: FAIL" in lines
    assert "  - FAIL dense/bias: missing in OUT" in lines


def test_a_failure_midway_ends_the_progress_line_first(monkeypatch, capsys):
    """An error after a half-drawn bar starts on a line of its own."""
    import importlib
    import io

    from transpiler.errors import TranspileError

    cli_main = importlib.import_module("transpiler.cli.main")  # the module (transpiler.cli.main is also main())

    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setenv(output.PROGRESS_DELAY_ENV, "0")

    def half_then_fail(argv):
        output.progress_callback(terminal)("copying checkpoint (bytes)", 1, 2)
        raise TranspileError("disk full")

    monkeypatch.setattr(cli_main, "_run", half_then_fail)
    assert cli_main.main(["whatever"]) == 2
    assert terminal.getvalue().endswith("50%  0.0/0.0 MB\n")
    assert capsys.readouterr().err == "tf-transpile: error: disk full\n"


def test_quiet_rule_tools_print_only_problems(cli, tmp_path):
    clean = cli("rules", "check", ROOT / "rules" / "activations.yaml", "-q")
    assert clean.returncode == 0 and clean.stdout == "" and clean.stderr == ""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: typo\n    match: {op: Reluu}\n    rename: {op: Relu}\n")
    found = cli("-q", "rules", "check", bad)
    assert found.returncode == 2 and "rule 'typo'" in found.stderr  # a problem is an error: printed
    assert "file(s)" not in found.stdout  # the footer is not a problem
