"""Rule files, their templates and the YAML those render are untrusted input (issue 13).

Each hostile input is fed as a user would (`tf-transpile rules check FILE`,
`--rules FILE` in a conversion, or the engine's functions) and must give one
clear line, quickly: exit 2, one stderr line, no traceback, and the limit
that refused it is named.
"""

import textwrap
import time

import pytest
import yaml

from transpiler.engine import safe_yaml, sandbox
from transpiler.engine.rule_files import MAX_FILE_BYTES, RuleFileError, load_rule_file
from transpiler.engine.templates import TemplateError, render_nodes, render_strings, render_text


#: A rule head every case below completes (MulNoNan: the op of the graph in `model`).
HEAD = "rules:\n  - id: hostile\n    why: x\n    match: {op: MulNoNan}\n"
EXAMPLE = "    examples:\n      - inputs: [{dtype: DT_FLOAT, shape: [2]}, {dtype: DT_FLOAT, shape: [2]}]\n" \
          "        attrs: {T: DT_FLOAT}\n"


def decompose(template: str) -> str:
    """A rule file whose decomposition runs `template` first (indented into the block)."""
    body = textwrap.indent(template + '\n- {name: "{{ name }}", op: Neg, inputs: ["{{ inputs[0] }}"]}', " " * 6)
    return HEAD + "    decompose: |\n" + body + "\n" + EXAMPLE


def aliases(levels: int, width: int = 10) -> str:
    """YAML anchors, each level `width` aliases of the one before: width**levels nodes when expanded."""
    lines = ["l0: &l0 [%s]" % ", ".join(["x"] * width)]
    lines += ["l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * width)) for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


BOMB = aliases(8)  # 10**9 nodes expanded, 1 KB of text


#: (name, rule file text, fragment of the one error line)
BAD_FILES = [
    ("priority-list", HEAD + "    refuse: r\n    priority: [1]\n", "field 'priority': must be an integer, not a list"),
    ("priority-nan", HEAD + "    refuse: r\n    priority: .nan\n", "field 'priority': must be an integer, not nan"),
    ("priority-bool", HEAD + "    refuse: r\n    priority: true\n", "must be an integer, not true or false"),
    ("family-int", "family: 3\n" + HEAD + "    refuse: r\n", ":1: field 'family': must be a string, not an integer"),
    ("family-list", "family: [a, b]\n" + HEAD + "    refuse: r\n", "field 'family': must be a string, not a list"),
    ("id-int", HEAD.replace("id: hostile", "id: 7") + "    refuse: r\n", "field 'id': must be a string"),
    ("id-newline", HEAD.replace("id: hostile", 'id: "a\\nb"') + "    refuse: r\n", "field 'id': 'a\\nb' does not match"),
    ("match-key-int", HEAD.replace("{op: MulNoNan}", "{op: MulNoNan, 3: 4}") + "    refuse: r\n",
     "field 'match.3': a field name must be a string"),
    ("const-inputs-key", HEAD.replace("{op: MulNoNan}", "{op: MulNoNan, const_inputs: {'²': 1}}") + "    refuse: r\n",
     "field 'match.const_inputs.²'"),
    ("when-date", HEAD + "    refuse: r\n    when: {target_before: 2020-01-01}\n", "field 'when.target_before'"),
    ("when-float", HEAD + "    refuse: r\n    when: {target_before: 1.10}\n", "must be a string, not a number"),
    ("rules-mapping", "rules: {a: 1}\n", "field 'rules': must be a list, not a mapping"),
    ("rule-string", "rules: [abc]\n", "field 'rules[0]': each rule is a mapping"),
    ("examples-tolerance", decompose("").replace("attrs: {T: DT_FLOAT}", "attrs: {T: DT_FLOAT}\n        tolerance: abc"),
     "field 'examples[0].tolerance': must be a number, not a string"),
    ("examples-shape", decompose("").replace("shape: [2]}, {", "shape: [100000, 100000]}, {"),
     "field 'examples[0].inputs[0].shape': more than 1048576 elements"),
    ("examples-input-field", decompose("").replace("shape: [2]}, {", "shape: [2], valuez: [1, 2]}, {"),
     "field 'examples[0].inputs[0].valuez': unknown field"),
    ("outputs-on-refuse", HEAD + "    refuse: r\n    outputs: [a]\n", "field 'outputs': only a decompose rule"),
    ("python-tag", "rules: !!python/object/apply:os.system [echo]\n", "not valid YAML (could not determine a constructor"),
    ("control-character", HEAD + '    refuse: "r\\x00"\n'.replace("\\x00", "\x00"),
     ":5: not valid YAML (special characters are not allowed)"),
    ("two-documents", "rules: []\n---\nrules: []\n", ":2: not valid YAML"),
    ("deep-brackets", "rules: " + "[" * 50000 + "]" * 50000 + "\n", ":1: YAML over the limits (nested deeper than 64"),
    ("alias-bomb-why", BOMB + HEAD.replace("why: x", "why: *l8") + "    refuse: r\n",
     "YAML over the limits (more than 100000 nodes with aliases expanded)"),
    ("alias-bomb-match", BOMB + HEAD.replace("{op: MulNoNan}", "{op: MulNoNan, attrs: {T: *l8}}") + "    refuse: r\n",
     "more than 100000 nodes with aliases expanded"),
    ("alias-bomb-examples", BOMB + decompose("").replace("attrs: {T: DT_FLOAT}", "attrs: {T: *l8}"),
     "more than 100000 nodes with aliases expanded"),
    ("merge-key-bomb", "a: &a {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1, k9: 1}\n"
     + "".join("m%d: &m%d {<<: [%s]}\n" % (i, i, ", ".join(["*" + ("a" if i == 0 else "m%d" % (i - 1))] * 10))
               for i in range(8)) + HEAD + "    refuse: r\n", "more than 100000 nodes with aliases expanded"),
    ("recursive-alias", HEAD.replace("{op: MulNoNan}", "&m {op: MulNoNan, attrs: {T: *m}}") + "    refuse: r\n",
     "an alias refers to its own anchor"),
    ("template-deep-brackets", HEAD + '    refuse: "{{ ' + "(" * 5000 + "1" + ")" * 5000 + ' }}"\n',
     "field 'refuse': template cannot be parsed: nested too deeply"),
    ("template-syntax", HEAD + "    refuse: '{{ x '\n", "field 'refuse': template line 1"),
]


def write(tmp_path, text, name="hostile.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_one_line(result, *fragments):
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-transpile: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---- YAML -----------------------------------------------------------------------------------------

def test_bounded_loader_accepts_ordinary_aliases():
    """Aliases themselves are fine: only their expansion is bounded."""
    doc = safe_yaml.load(aliases(3) + "top: [*l3]\n")
    assert len(doc["l3"]) == 10 and doc["top"][0][0][0][0] == ["x"] * 10
    assert safe_yaml.load("when: 2020-01-01\n") == {"when": "2020-01-01"}  # dates stay strings


@pytest.mark.parametrize("text,line,problem", [
    (BOMB + "top: *l8\n", 5, "more than 100000 nodes with aliases expanded"),  # l4 already has 111111
    ("[" * 50000 + "]" * 50000, 1, "nested deeper than 64 levels"),
    ("a: &a [1, *a]\n", 1, "an alias refers to its own anchor (a recursive structure)"),
    ("a: \x01\n", 1, "special characters are not allowed"),
], ids=["alias-bomb", "deep-brackets", "recursive-alias", "control-character"])
def test_bounded_loader_refuses_quickly(text, line, problem):
    """Refused on reading: the bomb is never expanded, the nesting never reaches the recursion limit.
    (Deep flow brackets cost PyYAML's scanner about a second: it looks 1024 characters ahead.)"""
    start = time.monotonic()
    with pytest.raises(yaml.YAMLError) as err:
        safe_yaml.load(text)
    assert time.monotonic() - start < 3
    assert safe_yaml.describe(err.value, text) == (line, problem)



@pytest.mark.parametrize("text,line,problem", [
    (BOMB + "top: *l8\n", 5, "more than 100000 nodes with aliases expanded"),
    ("[" * 50000 + "]" * 50000, 1, "nested deeper than 64 levels"),
    ("[" * 65 + "]" * 65, 1, "nested deeper than 64 levels"),
    ("".join("  " * i + "-\n" for i in range(70)), 65, "nested deeper than 64 levels"),  # no bracket at all
    ("a: &a [1, *a]\n", 1, "an alias refers to its own anchor (a recursive structure)"),
    ("a: \x01\n", 1, "special characters are not allowed"),
    ("a: [1\n", 2, "expected ',' or ']', but got '<stream end>'"),
], ids=["alias-bomb", "deep-brackets", "brackets-65", "deep-blocks", "recursive-alias", "control-character",
        "unclosed"])
def test_the_c_loader_path_refuses_what_the_bounded_loader_refuses(text, line, problem):
    """load_fast gives libyaml only what it can compose safely; the rest, and any error, is the bounded
    loader's, with the same line and words (libyaml crashes the process on deep enough nesting)."""
    with pytest.raises(yaml.YAMLError) as err:
        safe_yaml.load_fast(text)
    assert safe_yaml.describe(err.value, text) == (line, problem)


def test_the_c_loader_path_reads_every_rule_file_as_the_bounded_loader_does():
    """The same values for real YAML: every built-in rule file (documents of all styles, quoting, dates)
    and a rendered node list, each as a whole and cut into its top-level entries."""
    from transpiler.engine.rule_files import builtin_rule_files

    assert safe_yaml.CBoundedLoader is not None, "PyYAML without libyaml: load_fast never takes the C path"
    texts = [path.read_text() for path in builtin_rule_files()]
    texts += ['- {name: a/b, op: Const, attrs: {dtype: {type: DT_FLOAT}, value: {tensor: [1.5, -2, .inf]}}}\n'
              '- {name: "c:0", op: Neg, inputs: ["a/b:1", x], device: "", when: 2020-01-01, n: ~, y: yes}\n']
    checked = 0
    for text in texts:
        for part in [text] + ["rules:\n  - " + p for p in text.split("\n  - ")[1:]]:
            if len(part) <= safe_yaml.MAX_FAST_TEXT and not safe_yaml._NOT_FAST.search(part):
                assert yaml.load(part, Loader=safe_yaml.CBoundedLoader) == safe_yaml.load(part)
                checked += 1
            assert outcome(safe_yaml.load_fast, part) == outcome(safe_yaml.load, part)
    assert checked > 50


def outcome(load, text):
    """What `load(text)` gives: its value, or where and why it refused."""
    try:
        return load(text)
    except yaml.YAMLError as exc:
        return safe_yaml.describe(exc, text)

# ---- loading rule files --------------------------------------------------------------------------

@pytest.mark.parametrize("name,text,fragment", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_hostile_rule_file_is_one_line_error(tmp_path, name, text, fragment):
    start = time.monotonic()
    with pytest.raises(RuleFileError) as err:
        load_rule_file(write(tmp_path, text))
    assert time.monotonic() - start < 2
    assert fragment in str(err.value) and "hostile.yaml:" in str(err.value)
    assert "\n" not in str(err.value)


def test_non_utf8_rule_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((HEAD + "    refuse: 'caf\xe9'\n").encode("latin-1"))
    with pytest.raises(RuleFileError, match=r"latin1.yaml:5: not UTF-8 \(byte 0xe9\)"):
        load_rule_file(path)


def test_rule_file_over_the_size_bound(tmp_path):
    path = write(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n" + HEAD + "    refuse: r\n")
    with pytest.raises(RuleFileError, match="larger than %d bytes" % MAX_FILE_BYTES):
        load_rule_file(path)


@pytest.mark.parametrize("name,text,fragment", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_hostile_rule_file_on_rules_check(cli, tmp_path, name, text, fragment):
    assert_one_line(cli("rules", "check", write(tmp_path, text)), fragment, "hostile.yaml:")


def test_non_utf8_and_oversized_rule_files_on_rules_check(cli, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((HEAD + "    refuse: 'caf\xe9'\n").encode("latin-1"))
    assert_one_line(cli("rules", "check", path), "latin1.yaml:5: not UTF-8")
    path = write(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n" + HEAD + "    refuse: r\n")
    assert_one_line(cli("rules", "check", path), "larger than %d bytes" % MAX_FILE_BYTES)


def test_findings_against_the_opset_data_are_listed_with_exit_1(cli, tmp_path):
    """A file that loads and renders, but names an op no release has: a finding, not an error."""
    result = cli("rules", "check", write(tmp_path, HEAD.replace("MulNoNan", "NoSuchOp") + "    refuse: r\n"))
    assert result.returncode == 1 and not result.stderr
    assert "hostile.yaml:4: rule 'hostile': field 'match.op'" in result.stdout and "1 problem(s)" in result.stdout


def test_families_of_mixed_types_cannot_reach_the_sort(tmp_path):
    """load_rules sorts by (priority, family, id): every one is type-checked first."""
    from transpiler.engine.rule_files import load_rules

    good = write(tmp_path, "family: a\n" + HEAD + "    refuse: r\n", "good.yaml")
    bad = write(tmp_path, "family: 1\n" + HEAD.replace("hostile", "other") + "    refuse: r\n", "bad.yaml")
    with pytest.raises(RuleFileError, match="bad.yaml:1: field 'family': must be a string"):
        load_rules([good, bad])


def test_rule_in_a_conversion_is_checked_before_anything_runs(cli, tmp_path, model):
    result = cli(model, tmp_path / "out.pbtxt", "--to", "1.12", "--rules", write(tmp_path, BAD_FILES[1][1]))
    assert_one_line(result, "hostile.yaml:6: rule 'hostile': field 'priority': must be an integer, not nan")
    assert not (tmp_path / "out.pbtxt").exists()


# ---- rendering templates ----------------------------------------------------------------------------

#: (id, template, fragment of the error): every one must be refused in well under a second.
HOSTILE_TEMPLATES = [
    ("range-1e9", "{% for i in range(10**9) %}x{% endfor %}", "range() of 1000000000 numbers (at most 10000)"),
    ("nested-loops", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
     "loops ran more than 10000 iterations"),
    ("recursive-loop", "{% for x in [[1, [2]], [3]] * 5000 recursive %}{{ loop(x) if x is iterable }}{% endfor %}",
     "loops ran more than 10000 iterations"),
    ("lipsum-1e5", "{{ lipsum(10**5) }}", "lipsum() of up to 10000000 words (at most 10000)"),
    ("string-times-1e10", "{{ 'a' * 10**10 }}", "operator *: more than the 2097152 units of data"),
    ("list-times-1e10", "{{ [0] * 10**10 }}", "operator *: more than the 2097152 units of data"),
    ("power", "{{ 2 ** (10**10) }}", "2 ** 10000000000: an integer wider than 4096 bits"),
    ("repeated-product", "{% set ns = namespace(x=3) %}{% for i in range(100) %}{% set ns.x = ns.x * ns.x %}"
     "{% endfor %}", "an integer wider than 4096 bits"),
    ("doubling-concat", "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", "~: more than the 2097152 units of data"),
    ("doubling-list", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}"
     "{% endfor %}", "operator +: more than the 2097152 units of data"),
    ("long-concat", "{% set a = 'x' * 1000000 %}{{ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a ~ a }}", "~: more than"),
    ("join-separators", "{{ range(10000) | join('x' * 10000) }}", "join: more than the 2097152 units of data"),
    ("replace-method", "{{ ('x' * 1000).replace('x', 'y' * 100000) }}", "replace: more than the 2097152 units"),
    ("replace-filter", "{{ ('x' * 1000) | replace('x', 'y' * 100000) }}", "replace: more than the 2097152 units"),
    ("center-method", "{{ 'x'.center(10**9) }}", "center(): 1000000000 is more than 10000"),
    ("center-filter", "{{ 'x' | center(10**9) }}", "filter center: 1000000000 is more than 10000"),
    ("slice-filter", "{{ [1] | slice(10**9) | list }}", "filter slice: 1000000000 is more than 10000"),
    ("sum-of-lists", "{{ [[1]] * 1000 | sum(start=[]) }}", "sum() adds numbers"),
    ("output", "{% for i in range(10000) %}{{ 'z' * 1000 }}{% endfor %}", "more than 131072 characters of output"),
    ("macro-output", "{% macro m() %}{% for i in range(10000) %}{{ 'z' * 1000 }}{% endfor %}{% endmacro %}{{ m() }}",
     "more than the 2097152 units of data"),
    ("macro-recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "calls nested deeper than 50"),
    ("str-format", "{{ '{:>999999999}'.format(1) }}", "access to attribute 'format' of 'str' object is unsafe"),
    ("percent-format", "{{ '%999999999d' % 1 }}", "string formatting with % is not available"),
    ("format-filter", "{{ '%999999999d' | format(1) }}", "No filter named 'format'"),
    ("to-bytes", "{{ (1).to_bytes(10**9, 'big') }}", "access to attribute 'to_bytes' of 'int' object is unsafe"),
    ("mutate-list", "{% set l = [1] %}{{ l.append(l) }}", "access to attribute 'append' of 'list' object is unsafe"),
    ("security", "{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("undefined", "{{ attrs.nope }}", "'dict object' has no attribute 'nope'"),
    ("overflow", "{{ 10.0 ** 400 }}", "OverflowError"),
    ("zero-division", "{{ 1 // 0 }}", "ZeroDivisionError: integer division or modulo by zero"),
    ("type-error", "{{ 1 + 'a' }}", "TypeError: unsupported operand"),
    ("deep-brackets", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply (RecursionError)"),
    ("include", "{% include '/etc/passwd' %}", "cannot load '/etc/passwd': a template may import only macros.j2"),
]
TEMPLATE_IDS = [case[0] for case in HOSTILE_TEMPLATES]
CONTEXT = {"name": "n", "op": "MulNoNan", "inputs": ["x", "y"], "attrs": {"T": "DT_FLOAT"}}


@pytest.mark.parametrize("name,template,fragment", HOSTILE_TEMPLATES, ids=TEMPLATE_IDS)
def test_hostile_template_is_refused_in_well_under_a_second(name, template, fragment):
    start = time.monotonic()
    with pytest.raises(TemplateError) as err:
        render_text(template, CONTEXT)
    assert time.monotonic() - start < 1, "%s took %.2fs" % (name, time.monotonic() - start)
    assert fragment in str(err.value) and str(err.value).startswith("template")
    assert "\n" not in str(err.value)


def test_render_strings_turns_every_failure_into_template_error():
    """refuse reasons and outputs go through render_strings: SecurityError/UndefinedError used to escape."""
    for template in ("{{ ''.__class__ }}", "{{ nope }}", "{{ x.y }}"):
        with pytest.raises(TemplateError):
            render_strings(["{{ name }}", template], CONTEXT)


def test_wall_time_cap(monkeypatch):
    """A render that is slow without making data or looping much stops at the deadline."""
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.2)
    slow = "{% set s = 'y' * 1000000 %}{% for i in range(10000) %}{{ s.count('z') }}{% endfor %}"
    start = time.monotonic()
    with pytest.raises(TemplateError, match="rendering took longer than 0.2s"):
        render_text(slow, {})
    assert time.monotonic() - start < 1


def test_rendered_yaml_is_bounded_too():
    """A template can write an alias bomb: the node list is read with the same bounded loader."""
    with pytest.raises(TemplateError, match="more than 100000 nodes with aliases expanded"):
        render_nodes(BOMB + "- {name: n, op: Neg, attrs: {x: *l8}}\n", {})


@pytest.mark.parametrize("node,fragment", [
    ("{name: n, op: Neg, attrs: [1]}", "node n: field attrs must be a dict"),
    ("{name: n, op: Neg, inputs: x}", "node n: field inputs must be a list"),
    ("{name: n, op: Neg, inputs: [{a: 1}]}", "node n: inputs must be tensor names"),
    ("{name: n, op: Neg, device: [1]}", "node n: field device must be a str"),
    ("{name: [n], op: Neg}", "each rendered node needs a name and an op"),
])
def test_rendered_nodes_are_type_checked(node, fragment):
    with pytest.raises(TemplateError, match=fragment):
        render_nodes("- " + node, {})


def test_ordinary_templates_still_render():
    """What the built-in rules use: namespaces, loops, macros, ~, str methods, filters."""
    text = render_text("{% set ns = namespace(s='') %}{% for c in 'ab' %}{% set ns.s = ns.s ~ c.upper() %}"
                       "{{ loop.index }}{{ ',' if not loop.last }}{% endfor %} {{ ns.s }} {{ [2, 1] | sort | join('-') }}"
                       " {{ 'a b'.replace(' ', '').split(',') | tojson }} {{ (2 ** 10) * 3 }} {{ range(3) | list }}",
                       {})
    assert text == "1,2 AB 1-2 [\"ab\"] 3072 [0, 1, 2]"


HOSTILE_RULE_TEMPLATES = [(name, template, fragment) for name, template, fragment in HOSTILE_TEMPLATES
                          if name in ("range-1e9", "lipsum-1e5", "string-times-1e10", "power", "security",
                                      "undefined", "overflow", "zero-division", "type-error", "macro-recursion")]


# CI time: the in-process test above renders every template; through the CLI, `refuse` in CI and
# `decompose` (the same renderer, another field) under --full-matrix.
@pytest.mark.parametrize("action", ["refuse", pytest.param("decompose", marks=pytest.mark.full_matrix)])
@pytest.mark.parametrize("name,template,fragment", HOSTILE_RULE_TEMPLATES, ids=[c[0] for c in HOSTILE_RULE_TEMPLATES])
def test_hostile_template_in_a_conversion(cli, tmp_path, model, action, name, template, fragment):
    text = decompose(template) if action == "decompose" else HEAD + "    refuse: %s\n" % json_string(template)
    result = cli(model, tmp_path / "out.pbtxt", "--to", "1.12", "--rules", write(tmp_path, text))
    assert_one_line(result, "rule 'hostile' (", "hostile.yaml:2) on node mul_no_nan: template", fragment)
    assert not (tmp_path / "out.pbtxt").exists()


@pytest.mark.parametrize("name,template,fragment", HOSTILE_RULE_TEMPLATES, ids=[c[0] for c in HOSTILE_RULE_TEMPLATES])
def test_hostile_template_on_rules_check(cli, tmp_path, name, template, fragment):
    """`rules check` renders each template on the rule's examples."""
    result = cli("rules", "check", write(tmp_path, decompose(template)))
    assert_one_line(result, "hostile.yaml:5: rule 'hostile': field 'decompose' (example 0): template", fragment)


@pytest.mark.parametrize("field,text", [
    ("refuse", HEAD + "    refuse: \"{{ ''.__class__ }}\"\n" + EXAMPLE),
    ("outputs[1]", decompose("") + "    outputs: [\"{{ name }}\", \"{{ range(10**9) }}\"]\n"),
    ("outputs", decompose("") + "    outputs: \"{{ nope }}\"\n"),
])
def test_every_template_of_a_rule_is_rendered_by_rules_check(cli, tmp_path, field, text):
    result = cli("rules", "check", write(tmp_path, text))
    assert_one_line(result, "rule 'hostile': field '%s' (example 0): template" % field)


def json_string(text: str) -> str:
    """`text` as a YAML (JSON) double-quoted scalar."""
    import json

    return json.dumps(text)


@pytest.fixture
def model(tmp_path):
    """A GraphDef with one MulNoNan, which TF 1.12 lacks: user rules for it fire when converting for 1.12."""
    from transpiler.io.protos import graph_pb2, text_format

    graph = text_format.Parse("""
        node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "y" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "mul_no_nan" op: "MulNoNan" input: "x" input: "y" attr { key: "T" value { type: DT_FLOAT } } }
    """, graph_pb2.GraphDef())
    path = tmp_path / "graph.pbtxt"
    path.write_text(text_format.MessageToString(graph))
    return path
