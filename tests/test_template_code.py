"""engine/template_code: a template's compiled code and read sets, kept for later processes."""

import marshal
import sys

import pytest

from transpiler.engine import template_code, templates

SOURCE = '- {name: "{{ name }}", op: Identity, inputs: ["{{ inputs[0] }}"], attrs: {T: {{ attrs.T }}}}\n'
CONTEXT = dict(name="layer/out", op="Relu", inputs=["layer/in"], attrs={"T": "DT_FLOAT"}, dtypes=["DT_FLOAT"],
               shapes=[None], device="", target="1.8")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The cache in a directory of the test's own, writing on (as Python does by default)."""
    monkeypatch.setattr(template_code, "CACHE_DIR", tmp_path / "__pycache__")
    monkeypatch.setattr(template_code, "_room", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    templates._facts.cache_clear()
    templates._ENV.cache.clear()    # jinja2's own cache of loaded templates (the macros an earlier test loaded)
    yield tmp_path / "__pycache__"
    templates._facts.cache_clear()
    templates._ENV.cache.clear()


def _counting():
    calls = []

    def analyse(text):
        calls.append(text)
        return compile("x = 1", "<t>", "exec"), frozenset({"name"}), None
    return analyse, calls


def test_facts_are_made_once_and_read_back(cache):
    analyse, calls = _counting()
    first = template_code.cached("a template", analyse)
    again = template_code.cached("a template", analyse)
    assert len(calls) == 1 and again[1:] == first[1:] == (frozenset({"name"}), None)
    assert template_code.cached("another template", analyse) and len(calls) == 2


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", marshal.dumps((1, 2, 3)), marshal.dumps(("code", None)),
                                    marshal.dumps((compile("x", "t", "eval"), frozenset({1}), None))])
def test_a_damaged_or_foreign_file_is_made_again(cache, damage):
    analyse, calls = _counting()
    path = template_code.path_for("a template")
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    assert template_code.cached("a template", analyse)[1] == frozenset({"name"})
    assert len(calls) == 1 and template_code._read(path) is not None   # rewritten whole


def test_nothing_is_written_when_bytecode_writing_is_off(cache, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    analyse, calls = _counting()
    template_code.cached("a template", analyse)
    template_code.cached("a template", analyse)
    assert len(calls) == 2 and not cache.exists()


def test_an_unwritable_cache_is_harmless(cache, monkeypatch, tmp_path):
    (tmp_path / "a file").write_text("")
    monkeypatch.setattr(template_code, "CACHE_DIR", tmp_path / "a file" / "__pycache__")
    analyse, calls = _counting()
    assert template_code.cached("a template", analyse)[1] == frozenset({"name"})


def test_at_most_max_files_are_kept_and_a_full_store_starts_over(cache, monkeypatch):
    monkeypatch.setattr(template_code, "MAX_FILES", 2)
    analyse, _ = _counting()
    for i in range(4):
        template_code.cached("template %d" % i, analyse)
    assert sorted(cache.iterdir()) == sorted(template_code.path_for("template %d" % i) for i in (0, 1))
    monkeypatch.setattr(template_code, "_room", None)   # the next process finds the store full
    template_code.cached("template 9", analyse)
    assert list(cache.iterdir()) == [template_code.path_for("template 9")]


def test_a_template_renders_from_stored_code_without_compiling(cache, monkeypatch):
    fresh = templates.render_nodes(SOURCE, CONTEXT)
    assert len(list(cache.iterdir())) == 1
    templates._facts.cache_clear()       # as a new process: only the file is left

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")
    monkeypatch.setattr(templates._ENV, "compile", no_compiling)
    monkeypatch.setattr(templates._ENV, "parse", no_compiling)
    assert templates.render_nodes(SOURCE, CONTEXT) == fresh
    assert templates.reads([SOURCE]) == frozenset({"name", "inputs", "attrs"})


def test_the_shared_macros_load_from_stored_code(cache, monkeypatch):
    source = '{% from "macros.j2" import ivec %}{{ ivec(name ~ "/v", [1, 2]) }}\n'
    fresh = templates.render_nodes(source, CONTEXT)
    templates._facts.cache_clear()
    templates._ENV.cache.clear()         # jinja2's own cache of loaded templates

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")
    monkeypatch.setattr(templates._ENV, "compile", no_compiling)
    assert templates.render_nodes(source, CONTEXT) == fresh
