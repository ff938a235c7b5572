"""Rules: every built-in rule file loads, every decomposition proves itself on
its own examples in the host TF, and bad rule files fail with file:line."""

import textwrap

import pytest

from transpiler.engine.examples import run_examples
from transpiler.engine.rule_files import RuleFileError, builtin_rule_files, load_rule_file, load_rules

RULES = load_rules()


def _examples():
    """Every rule example; CI runs each rule's first and every target-specific one (52 of 150), the rest
    are marked full_matrix (pytest --full-matrix)."""
    for rule in RULES:
        for i, example in enumerate(rule.examples):
            marks = [] if i == 0 or example.get("target") else [pytest.mark.full_matrix]
            yield pytest.param(rule.id, i, marks=marks, id="%s[%d]" % (rule.id, i))


WITH_EXAMPLES = list(_examples())


def test_builtin_rule_files_are_found():
    names = {p.name for p in builtin_rule_files()}
    assert {"attrs.yaml", "batch_norm.yaml", "activations.yaml"} <= names


def test_every_decomposition_has_examples():
    missing = [r.id for r in RULES if r.action == "decompose" and not r.examples]
    assert not missing, "decompositions without an equivalence example: %s" % missing


@pytest.mark.parametrize("rule_id,index", WITH_EXAMPLES)
def test_rule_example_is_numerically_equivalent(rule_id, index):
    rule = next(r for r in RULES if r.id == rule_id)
    result = run_examples(rule, RULES)[index]
    assert result.ok, "%s example %d (target %s): %s" % (rule_id, index, result.target, result.message)


def write(tmp_path, text):
    path = tmp_path / "my_rules.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,fragment", [
    ("rules:\n  - id: a\n    why: x\n    match: {op: Foo}\n", "my_rules.yaml:2: rule 'a': field 'rename|decompose"),
    ("rules:\n  - id: a\n    why: x\n    match: {opp: Foo}\n    refuse: no\n", "field 'match.op'"),
    ("rules:\n  - id: a\n    match: {op: Foo}\n    refuse: no\n", "field 'why': required"),
    ("rules:\n  - id: a\n    why: x\n    match: {op: Foo}\n    decompose: '{{ name '\n    examples: [{}]\n",
     "field 'decompose': template line 1"),
    ("rules:\n  - id: a\n    why: x\n    match: {op: Foo}\n    decompose: '- {name: x, op: Neg}'\n", "field 'examples'"),
    ("rules: [\n", "my_rules.yaml:2: not valid YAML"),
    ("rules:\n  - id: a\n    why: x\n    match: {op: Foo}\n    refuse: r\n  - id: a\n    why: y\n    match: {op: Foo}\n"
     "    refuse: r\n", "duplicate rule id 'a'"),
])
def test_bad_rule_file_is_one_clear_error(tmp_path, text, fragment):
    with pytest.raises(RuleFileError) as err:
        load_rule_file(write(tmp_path, text))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_user_rule_overrides_builtin_by_id(tmp_path):
    path = write(tmp_path, """
        rules:
          - id: leaky-relu-to-relu
            why: my own
            match: {op: LeakyRelu}
            refuse: not today
    """)
    rules = load_rules([path])
    [rule] = [r for r in rules if r.id == "leaky-relu-to-relu"]
    assert rule.action == "refuse" and rule.why == "my own"


def test_bad_rule_file_on_cli_is_one_line(cli, tmp_path, corpus_case):
    path = write(tmp_path, "rules:\n  - id: broken\n    why: x\n    match: {op: Foo}\n")
    result = cli(corpus_case("tensorflow__sm_half_plus_two_v2_2018"), tmp_path / "out", "--to", "1.8", "--rules", path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "my_rules.yaml:2" in result.stderr
    assert not (tmp_path / "out").exists()


def test_builtin_rules_lint_clean_against_the_opset_data():
    from transpiler.cli.rules import lint_file

    problems = [p for path in builtin_rule_files() for p in lint_file(path)]
    assert not problems, problems
