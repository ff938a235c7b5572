"""YAML from untrusted text: rule files and what rule templates render.

Safe loading (plain data, no Python objects) plus the bounds a hostile
document needs: nesting depth (PyYAML's composer recurses, deep brackets end
in RecursionError) and the size of the document with its aliases expanded (an
alias costs nothing to parse, but everything that walks the data afterwards
pays for every expansion: nine levels of ten aliases is a billion nodes).
Timestamps stay strings, so the data is what JSON could hold (plus binary).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Tuple

import yaml

#: Mappings and sequences nested deeper than this are refused.
MAX_DEPTH = 64
#: Nodes of a document with every alias expanded (100 000 is ~10x the largest built-in rule file).
MAX_NODES = 100_000


class LimitError(yaml.MarkedYAMLError):
    """A document over one of the bounds; `problem` says which, `problem_mark` where."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts, while composing, each node's size with aliases expanded, and its depth."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        #: id(node) -> nodes in its expansion; nodes stay alive in the tree, so ids stay unique.
        self._sizes: Dict[int, int] = {}

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitError(problem="nested deeper than %d levels" % MAX_DEPTH, problem_mark=mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias and id(node) not in self._sizes:  # the anchored node is still being composed
            raise LimitError(problem="an alias refers to its own anchor (a recursive structure)", problem_mark=mark)
        if not alias:
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if self._sizes[id(node)] > MAX_NODES:
            raise LimitError(problem="more than %d nodes with aliases expanded" % MAX_NODES, problem_mark=mark)
        return node


def _children(node: yaml.Node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return ()


# Dates stay the strings they were written as: rule data is JSON-like.
BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load(text: str, loader: type = BoundedLoader) -> Any:
    """The one YAML document in `text`; raises yaml.YAMLError (LimitError over the bounds)."""
    return yaml.load(text, Loader=loader)


#: libyaml's loader with BoundedLoader's constructors (None without libyaml): what load_fast parses with.
CBoundedLoader = None
if getattr(yaml, "CSafeLoader", None) is not None:
    class CBoundedLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """CSafeLoader with dates kept as strings (as BoundedLoader): composes in C, without the bounds."""

    CBoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)

#: The longest text load_fast gives to libyaml: one node takes at least two characters, so no text this long
#: without aliases has MAX_NODES nodes, and its block nesting stays a few hundred levels deep.
MAX_FAST_TEXT = 128 * 1024
#: What sends a text to the pure-Python loader: aliases and anchors (whose expansion it counts), tags.
_NOT_FAST = re.compile(r"[&*!]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def load_fast(text: str) -> Any:
    """`load(text)`, parsed in C (libyaml, 20-50x faster) where that is safe: the same value, or the same
    error, which the pure-Python loader raises with its marks.

    libyaml's composer has no depth limit and recurses in C (a hundred thousand nested brackets crash the
    process), so it only sees text under MAX_FAST_TEXT, without aliases or tags, whose brackets (counted
    even inside strings: an over-estimate) nest at most MAX_DEPTH deep; its result must also be at most
    MAX_DEPTH deep. Anything else, and any error, goes to `load`.
    """
    if (CBoundedLoader is None or len(text) > MAX_FAST_TEXT or _NOT_FAST.search(text)
            or _bracket_depth(text) > MAX_DEPTH):
        return load(text)
    try:
        value = yaml.load(text, Loader=CBoundedLoader)
    except yaml.YAMLError:
        return load(text)
    return value if _depth(value) <= MAX_DEPTH else load(text)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", text):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _depth(value: Any) -> int:
    """The nesting of `value` as BoundedLoader counts it: a scalar is 1, a collection one more than its
    deepest key or item."""
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max((max(_depth(k), _depth(v)) for k, v in value.items()), default=0)
    return 1


def describe(exc: yaml.YAMLError, text: str) -> Tuple[int, str]:
    """(line, one-line description) of an error `load(text)` raised; line 0 when unknown."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):  # bad characters: only an offset
        line = text.count("\n", 0, exc.position) + 1
    else:
        line = 0
    message = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    return line, " ".join(str(message).split())
