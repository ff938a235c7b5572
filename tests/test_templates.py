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
