"""Docs that run: the rule in docs/rules.md is checked and tested like a user would."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def doc_rule_files():
    text = DOC.read_text()
    return re.findall(r"<!-- rule-example: (\S+) -->\n```yaml\n(.*?)```", text, re.S)


def test_docs_have_a_rule_example():
    assert doc_rule_files()


def test_doc_rule_checks_and_passes_its_examples(cli, tmp_path):
    for name, body in doc_rule_files():
        path = tmp_path / name
        path.write_text(body)
        checked = cli("rules", "check", path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        tested = cli("rules", "test", path)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert " ok " in tested.stdout and "FAIL" not in tested.stdout


def test_doc_rule_fires_in_a_real_conversion(cli, tmp_path):
    """A graph using MulNoNan converts for TF 1.12 only with the doc's rule."""
    from transpiler.io.protos import graph_pb2, text_format

    graph = text_format.Parse("""
        node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "y" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "mul_no_nan" op: "MulNoNan" input: "x" input: "y" attr { key: "T" value { type: DT_FLOAT } } }
    """, graph_pb2.GraphDef())
    model = tmp_path / "graph.pbtxt"
    model.write_text(text_format.MessageToString(graph))
    refused = cli(model, tmp_path / "plain.pbtxt", "--to", "1.12")
    assert refused.returncode == 1 and "MulNoNan" in refused.stderr and "mul_no_nan" in refused.stderr
    [(name, body)] = doc_rule_files()
    (tmp_path / name).write_text(body)
    done = cli(model, tmp_path / "out.pbtxt", "--to", "1.12", "--rules", tmp_path / name)
    assert done.returncode == 0, done.stderr
    assert "mul-no-nan-to-select x1" in done.stdout
    assert "MulNoNan" not in (tmp_path / "out.pbtxt").read_text()
