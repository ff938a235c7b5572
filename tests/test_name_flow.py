"""name_flow: a template the memo stands in for uses the node's names only by writing them out.

Two checks: small templates on either side of the line (each refused one has a use that could decide on a
name), and every built-in decomposition the analysis lets the memo take, rendered for its own examples with
names of other spellings and lengths, gives the memo the very text the real render gives."""

import numpy as np
import pytest

from transpiler.engine import template_memo, templates
from transpiler.engine.examples import NODE, build_example, target_for
from transpiler.engine.rule_files import load_rules
from transpiler.engine.rule_pass import RulePass
from transpiler.ir.graph import lift
from transpiler.knowledge.releases import catalog


def memoized(source: str) -> bool:
    return template_memo.memo_reads(source, templates._ENV) is not None


@pytest.mark.parametrize("source", [
    '{{ name }} {{ inputs[0] }}',
    '{% set p = name ~ "/" %}- {name: "{{ p }}x"}',
    '{% set p = name ~ "/" %}{% set q = p ~ "in" ~ 1 ~ "/" %}{{ q }}',
    '{% for side in ["x", "y"] %}{{ inputs[loop.index0] }}{{ name }}/{{ side }}{% endfor %}',
    '{% set last = attrs.k %}{{ name if last == 1 else name ~ "/b" }}',
    '{% macro m(n, v) %}{{ n }}: {{ v | tojson }}{% endmacro %}{{ m(name ~ "/c", [1]) }}',
    '{% macro nm(stage) %}{{ name if stage == "a" else name ~ stage }}{% endmacro %}{{ nm("b") }}',
    '{% from "macros.j2" import ivec %}{{ ivec(name ~ "/begin", [0]) }}',
    '{% import "macros.j2" as m %}{{ m.ivec(n=name, values=[0]) }}',
    '{% import "macros.j2" as m %}{{ m.zero_where_zero(name, attrs.T, inputs[0]) }}',
])
def test_names_only_written_out_let_the_memo_stand_in(source):
    assert memoized(source)


@pytest.mark.parametrize("source", [
    '{% if name == "a" %}x{% endif %}',                                   # a comparison
    '{{ name | upper }}',                                                 # a filter
    '{{ name.upper() }}',                                                 # a method
    '{{ name[0] }}',                                                      # a character of it
    '{% set p = name ~ "/" %}{% if "x" in p %}x{% endif %}',              # a test on a variable it reached
    '{{ [name] | tojson }}',                                              # a list (tojson escapes placeholders)
    '{{ inputs | length }}',                                              # the list itself
    '{{ inputs[name | length] }}',                                        # an index that depends on a name
    '{% for c in name %}{{ c }}{% endfor %}',                             # a loop over it
    '{% set ns = namespace(t=name) %}{{ ns.t }}',                         # a namespace
    '{{ name if name else "x" }}',                                        # a condition on it
    '{% macro m(n) %}{% if n %}x{% endif %}{% endmacro %}{{ m(name) }}',  # a macro that decides on it
    '{% macro m() %}{{ varargs[0] }}{% endmacro %}{{ m(name) }}',         # past a macro's parameters
    '{% macro nm() %}{{ name }}{% endmacro %}{% if nm() == "a" %}x{% endif %}',  # a macro's output decided on
    '{% set x %}{{ name }}{% endset %}{{ x }}',                           # a block assignment
    '{% from "macros.j2" import to_int32 %}{{ to_int32("n", "t", name) }}',  # an imported macro that decides
    '{% import "macros.j2" as m %}{{ m.ivec(name, [0]) | length }}',      # what an imported macro wrote
    '{% import "macros.j2" as m %}{{ m.no_such_macro(name) }}',           # a macro that is not there
])
def test_a_use_that_could_decide_on_a_name_keeps_every_render(source):
    assert not memoized(source)


RULES = load_rules()
SPELLINGS = [("n", ["ab", "cd:1", "ef"]), ("model/layer_1/op{x}", ["in/put:0", "q", "zz/zz"]),
             ("a" * 40, ["b" * 3, "c" * 17, "d"])]


def _memoized_decompositions():
    for rule in RULES:
        if rule.action == "decompose" and all(memoized(s) for _, s in rule.templates()):
            yield pytest.param(rule, id=rule.id)


def test_the_analysis_takes_the_built_in_decompositions_that_prefix_names():
    """Most built-in decompositions name their nodes `{{ p }}...` from `{% set p = name ~ "/" %}`: the memo
    stands in for those (batch-matmul-v2-to-v1 is BERT's most frequent); einsum keeps names in a namespace."""
    taken = {p.values[0].id for p in _memoized_decompositions()}
    assert {"leaky-relu-to-relu", "batch-matmul-v2-to-v1", "softmax-nd-to-2d", "div-no-nan"} <= taken
    assert "einsum" not in taken


@pytest.mark.parametrize("rule", list(_memoized_decompositions()))
def test_the_memos_text_is_the_real_render_for_any_names(rule):
    cat = catalog()
    for example in rule.examples:
        target = cat.resolve(example.get("target") or target_for(rule, cat, RULES, example.get("options")))
        rules = RulePass(RULES, cat.opset(target), example.get("options"))
        graph = lift(build_example(rule, example, rules, np.random.default_rng(0), sample=False)[0])
        context = rules.template_context(graph, graph[NODE])
        for _, source in rule.templates():
            facts = templates._facts(source)

            def real(ctx):
                return templates._ENV.render(facts.template, ctx)

            for name, inputs in SPELLINGS:
                named = dict(context, name=name, inputs=(inputs * 3)[:len(context["inputs"])])
                assert template_memo.render(source, facts.memo_reads, named, real) == real(named)
