"""`tf-transpile rules check|test|list`: every problem of a file at once, did-you-mean for op names, the table."""

import json

import pytest

from transpiler.engine.rule_files import RuleFileError, load_rule_file
from transpiler.knowledge.releases import catalog

EXAMPLE = ("    examples:\n"
           "      - inputs: [{dtype: DT_FLOAT, shape: [2]}, {dtype: DT_FLOAT, shape: [2]}]\n"
           "        attrs: {T: DT_FLOAT}\n")

#: Two rules, each with a schema problem: priority a list (line 5), an unknown match field (line 9).
TWO_SCHEMA_PROBLEMS = """\
rules:
  - id: first
    why: x
    match: {op: MulNoNan}
    priority: [1]
    refuse: r
  - id: second
    why: x
    match: {op: MulNoNan, bogus: 1}
    refuse: r
"""

#: A typo in match.op (line 4) and one in an op the decomposition emits (line 9).
TWO_TYPOS = """\
rules:
  - id: typo-match
    why: x
    match: {op: MulNoNann}
    refuse: r
  - id: typo-emitted
    why: x
    match: {op: MulNoNan}
    decompose: |
      - {name: "{{ name }}", op: Negg, inputs: ["{{ inputs[0] }}"]}
""" + EXAMPLE


def write(tmp_path, text, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rules_check_lists_every_schema_problem_of_a_file_with_its_line(cli, tmp_path):
    path = write(tmp_path, TWO_SCHEMA_PROBLEMS)
    result = cli("rules", "check", path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert errors[0].startswith("tf-transpile: error: %s:5: rule 'first': field 'priority'" % path)
    assert errors[1].startswith("tf-transpile: error: %s:9: rule 'second': field 'match.bogus'" % path)
    assert "1 file(s), 2 problem(s)" in result.stdout


def test_rules_check_lists_schema_problems_and_findings_together(cli, tmp_path):
    path = write(tmp_path, TWO_SCHEMA_PROBLEMS + TWO_TYPOS.replace("rules:\n", ""))
    result = cli("rules", "check", path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 2
    findings = result.stdout.strip().splitlines()[:-1]
    assert [line.split(": ")[0] for line in findings] == ["%s:13" % path, "%s:18" % path]
    assert "did you mean MulNoNan?" in findings[0] and "did you mean Neg?" in findings[1]
    assert "4 problem(s)" in result.stdout


def test_a_typo_in_an_op_name_gets_did_you_mean(cli, tmp_path):
    path = write(tmp_path, TWO_TYPOS)
    result = cli("rules", "check", path)
    assert result.returncode == 1 and not result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ("%s:4: rule 'typo-match': field 'match.op': op MulNoNann is unknown to every known "
                        "release; did you mean MulNoNan?" % path)
    assert lines[1].startswith("%s:9: rule 'typo-emitted': field 'decompose (example 0)': emits op Negg" % path)
    assert lines[1].endswith("did you mean Neg?")
    assert lines[2] == "1 file(s), 2 problem(s)"


@pytest.mark.parametrize("command", ["check", "test"])
def test_a_typo_in_match_op_is_never_an_internal_error(cli, tmp_path, command):
    """A decomposition of a mistyped op: its example cannot be built; that is the rule's failure, not a bug."""
    text = ("rules:\n  - id: typo\n    why: x\n    match: {op: MulNoNann}\n    decompose: |\n"
            '      - {name: "{{ name }}", op: Neg, inputs: ["{{ inputs[0] }}"]}\n' + EXAMPLE)
    result = cli("rules", command, write(tmp_path, text))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "did you mean MulNoNan?" in result.stdout


@pytest.mark.parametrize("command", ["check", "test"])
def test_a_typo_in_an_example_attr_is_never_an_internal_error(cli, tmp_path, command):
    text = ("rules:\n  - id: typo\n    why: x\n    match: {op: MulNoNan}\n    decompose: |\n"
            '      - {name: "{{ name }}", op: Neg, inputs: ["{{ inputs[0] }}"]}\n'
            + EXAMPLE.replace("attrs: {T:", "attrs: {TT:"))
    result = cli("rules", command, write(tmp_path, text))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "internal error" not in result.stderr
    assert "has no attr 'TT'; did you mean T?" in result.stdout


def test_rules_list_is_an_aligned_table_with_a_header(cli):
    result = cli("rules", "list", "--to", "1.8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header, rows, total = lines[0], lines[1:-1], lines[-1]
    assert header.split() == ["ID", "FAMILY", "MATCH", "ACTION", "WHEN"]
    starts = [header.index(name) for name in ("FAMILY", "MATCH", "ACTION", "WHEN")]
    for row in rows:
        for start in starts:
            assert row[start - 2:start] == "  " and row[start] != " ", (row, start)
    assert total == "%d rule(s) active for TF 1.8" % len(rows)
    assert any(row.split()[0] == "leaky-relu-to-relu" for row in rows)


def test_rules_list_json(cli):
    text = cli("rules", "list", "--to", "1.8")
    result = cli("rules", "list", "--to", "1.8", "--format", "json")
    assert result.returncode == 0, result.stderr
    rules = json.loads(result.stdout)
    assert [r["id"] for r in rules] == [line.split()[0] for line in text.stdout.splitlines()[1:-1]]
    leaky = next(r for r in rules if r["id"] == "leaky-relu-to-relu")
    assert leaky["match"]["op"] == "LeakyRelu" and leaky["action"] == "decompose" and leaky["examples"] >= 1
    assert leaky["source"].rpartition(":")[0].endswith("activations.yaml")
    strip = next(r for r in rules if r["action"] == "strip_default_attrs")
    assert strip["strips"] and set(strip["strips"][0]) == {"op", "attr", "added_in"}


# ---------------------------------------------------------------------------
# in process


def test_close_ops():
    assert catalog().close_ops("MulNoNann")[0] == "MulNoNan"
    assert catalog().close_ops("fusedbatchnormv3")[0] == "FusedBatchNormV3"
    assert catalog().close_ops("CompletelyDifferentThing") == []


def test_load_rule_file_reports_every_problem(tmp_path):
    path = write(tmp_path, TWO_SCHEMA_PROBLEMS)
    with pytest.raises(RuleFileError) as err:
        load_rule_file(path)
    assert str(err.value).startswith("%s:5: rule 'first': field 'priority'" % path)
    assert "and 1 more problem(s)" in str(err.value) and "\n" not in str(err.value)
    assert [p.split(": ")[0] for p in err.value.problems] == ["%s:5" % path, "%s:9" % path]
    problems = []
    assert load_rule_file(write(tmp_path, TWO_SCHEMA_PROBLEMS + TWO_TYPOS.replace("rules:\n", "")), problems)
    assert len(problems) == 2
