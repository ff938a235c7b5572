"""The parse cache of rule files (engine/rule_cache.py): same rules as a parse, never trusted blindly."""

import pickle

import pytest

from transpiler.engine import rule_cache
from transpiler.engine.rule_files import Rule, RuleFileError, builtin_rule_files, load_rule_file, load_rules

RULE = """rules:
  - id: my-strip
    why: test
    match: {op: "*"}
    strip_default_attrs: true
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory of its own, and no rules remembered by this process."""
    monkeypatch.setenv("TF_TRANSPILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rule_cache, "_memory", {})
    return tmp_path / "cache" / "rules"


def forget(monkeypatch):
    monkeypatch.setattr(rule_cache, "_memory", {})


def test_cached_rules_equal_parsed_ones(cache, monkeypatch):
    parsed = [r for path in builtin_rule_files() for r in load_rule_file(path)]
    first = load_rules()
    assert len(list(cache.glob("*.pickle"))) == len(builtin_rule_files())
    forget(monkeypatch)
    monkeypatch.setattr("transpiler.engine.rule_files.load_rule_file", lambda path: pytest.fail("parsed again"))
    second = load_rules()
    # repr: examples hold NaNs, which no two parses compare equal on
    assert repr(second) == repr(first)
    assert repr(sorted(second, key=lambda r: r.id)) == repr(sorted(parsed, key=lambda r: r.id))
    assert [r.lines for r in second] == [r.lines for r in first]


def test_a_changed_file_is_parsed_again(cache, tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(RULE)
    assert next(r for r in load_rules([path]) if r.id == "my-strip").why == "test"
    forget(monkeypatch)
    path.write_text(RULE.replace("why: test", "why: changed"))
    assert next(r for r in load_rules([path]) if r.id == "my-strip").why == "changed"


def test_an_invalid_file_is_never_cached(cache, tmp_path, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text(RULE.replace("match: {op: \"*\"}", "match: {}"))
    for _ in range(2):
        with pytest.raises(RuleFileError, match="match.op"):
            load_rules([path])
        forget(monkeypatch)
    assert not any(p.name.startswith("bad") for p in cache.glob("*"))


class Planted:
    def __reduce__(self):
        return (pytest.fail, ("the cache ran code from a planted file",))


def test_a_planted_or_damaged_cache_file_is_ignored(cache, tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(RULE)
    load_rules([path])
    files = sorted(cache.glob("*.pickle"))
    for i, file in enumerate(files):
        file.write_bytes(pickle.dumps([Planted()]) if i % 2 else b"\x80\x05garbage")
    forget(monkeypatch)
    rules = load_rules([path])
    assert any(r.id == "my-strip" for r in rules) and all(type(r) is Rule for r in rules)


def test_an_unwritable_cache_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TF_TRANSPILE_CACHE", str(blocker))
    monkeypatch.setattr(rule_cache, "_memory", {})
    assert load_rules()
