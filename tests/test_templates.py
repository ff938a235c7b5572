"""Rule templates: the shared macros file is importable, nothing else is."""

import pytest

from transpiler.engine.templates import TemplateError, render_nodes


def test_shared_macros_render_nodes():
    nodes = render_nodes('{% from "macros.j2" import ivec %}\n{{ ivec("k", [1, 2]) }}\n', {})
    assert [(n.name, n.op) for n in nodes] == [("k", "Const")]


@pytest.mark.parametrize("source", ['{% include "/etc/passwd" %}', '{% import "../setup.cfg" as x %}',
                                    '{% extends "rules/math.yaml" %}', '{% import "other.j2" as x %}'])
def test_no_other_file_can_be_loaded(source):
    with pytest.raises(TemplateError, match="template"):
        render_nodes(source, {})


SHAPED = ('- {name: "{{ name }}/a", op: Neg, inputs: [{{ inputs[0] }}], attrs: {T: DT_FLOAT}}\n'
          '- {name: "{{ name }}", op: Relu, inputs: ["{{ name }}/a"], attrs: {T: DT_FLOAT, k: {v: [1, 2]}}}\n')


def test_names_filled_into_a_shared_shape_read_as_the_text_itself():
    """Firings of one shape get their own names and fresh lists and dicts; a filled-in plain scalar that
    would read as no string (`true`, `1.5`, `~`) makes the text be read as it is, as without the shape."""
    first = render_nodes(SHAPED, {"name": "n1", "inputs": ["x1"], "attrs": {}})
    second = render_nodes(SHAPED, {"name": "n2", "inputs": ["x2"], "attrs": {}})
    assert [(n.name, n.inputs) for n in first] == [("n1/a", ["x1"]), ("n1", ["n1/a"])]
    assert [(n.name, n.inputs) for n in second] == [("n2/a", ["x2"]), ("n2", ["n2/a"])]
    assert first[1].attrs == second[1].attrs == {"T": "DT_FLOAT", "k": {"v": [1, 2]}}
    assert first[1].attrs is not second[1].attrs and first[0].inputs is not second[0].inputs
    for odd in ("true", "Yes", "1.5", "~", "null", "0x1f"):
        with pytest.raises(TemplateError, match="tensor names"):
            render_nodes(SHAPED, {"name": "ab", "inputs": [odd], "attrs": {}})
    assert render_nodes(SHAPED, {"name": "ab", "inputs": ["truth"], "attrs": {}})[0].inputs == ["truth"]


def test_a_name_spelled_like_an_op_or_an_attr_key_stays_what_the_text_says():
    """A node named `Relu` or `T` puts a placeholder in the shape where the text has the op or an attr key: each
    firing still gets the op and attrs its own text reads as."""
    for name, source in (("Relu", "x1"), ("ab", "Neg"), ("T", "x1")):
        nodes = render_nodes(SHAPED, {"name": name, "inputs": [source], "attrs": {}})
        assert [(n.name, n.op, n.inputs) for n in nodes] == [(name + "/a", "Neg", [source]),
                                                              (name, "Relu", [name + "/a"])]
        assert nodes[1].attrs == {"T": "DT_FLOAT", "k": {"v": [1, 2]}}


@pytest.mark.parametrize("value", ["c0/n1", "true", "True", "n1", "1.5", "~", "null", "y", "Yes", "abc", "0x1f",
                                   ".inf", "<<", "=", "-1", "on", "", "2001-12-14", "_x"])
def test_reads_as_string_is_the_resolvers_answer(value):
    import yaml

    from transpiler.engine import templates

    expected = templates._RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == templates._STR_TAG
    assert templates._reads_as_string(value) == expected


def test_nodes_from_the_memos_shape_are_the_texts_own_and_share_one_recipe_per_key():
    """shaped_nodes fills the names into the parse of the memo's text for placeholders: the specs are those
    the text itself parses to, tensor names with ports too, and one key's contexts share the recipes a caller
    keys its own work on; a name that would read as no string there, or is no name, is read from the text."""
    from transpiler.engine import templates

    def from_text(context):
        return templates._rendered_nodes(templates.render_text(SHAPED, context), templates._node_names(context))

    contexts = [{"name": n, "inputs": [i], "attrs": {}} for n, i in
                [("n1", "x1"), ("n2", "y:1"), ("p3", "z/q:12"), ("n4", "a>b-c.d_e"), ("m5", "w6")]]
    found = [templates.shaped_nodes(SHAPED, context) for context in contexts]
    for context, (specs, recipes) in zip(contexts, found):
        assert specs == from_text(context) and recipes is not None
    assert found[0][1] is found[4][1] and found[1][1] is not found[0][1]  # one key: the names' lengths
    assert found[1][0][0].inputs == ["y:1"] and found[2][0][0].inputs == ["z/q:12"]
    braced = ('- {name: "{{ name }}/b{0}}", op: Neg, inputs: [{{ inputs[0] }}], control_inputs: ["{{ name }}/c{"],'
              ' device: "/cpu:{{ name }}"}\n- {name: "{{ name }}", op: Relu, inputs: ["{{ name }}/b{0}}"]}\n')
    specs, recipes = templates.shaped_nodes(braced, contexts[0])  # braces are str.format's: kept as text
    assert recipes is not None and specs == templates._rendered_nodes(
        templates.render_text(braced, contexts[0]), templates._node_names(contexts[0]))
    assert specs[0].name == "n1/b{0}}" and specs[0].control_inputs == ["n1/c{"] and specs[0].device == "/cpu:n1"
    assert specs[1].device is None
    for odd in ("1:20", "x y"):  # sexagesimal 80 in YAML 1.1 when plain; a space
        quoted = SHAPED.replace("[{{ inputs[0] }}]", '["{{ inputs[0] }}"]')
        specs, recipes = templates.shaped_nodes(quoted, {"name": "n1", "inputs": [odd], "attrs": {}})
        assert specs[0].inputs == [odd] and recipes is None


def test_renders_collect_their_cycles_while_a_conversion_pauses_collection():
    """While a conversion pauses cyclic collection (collections_paused), nothing is collected on its own, but
    every RENDERS_PER_COLLECTION-th render collects the young generation, so the cycles renders leave behind
    do not pile up; the collector is back on after the pause."""
    import gc
    import weakref

    from transpiler.engine import sandbox
    from transpiler.ir.graph import collections_paused

    class Cycle:
        pass

    env = sandbox.LimitedSandbox()
    template = env.from_string("{% macro m(x) %}{{ x }}{% endmacro %}{{ m(name) }}")
    assert gc.isenabled()
    with collections_paused():
        assert not gc.isenabled()
        while env._renders % sandbox.RENDERS_PER_COLLECTION != sandbox.RENDERS_PER_COLLECTION - 1:
            env.render(template, {"name": "n"})
        cycle = Cycle()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None  # no automatic collection while paused
        assert env.render(template, {"name": "n"}) == "n"
        assert alive() is None
    assert gc.isenabled()
