"""Render a decomposition template once per kind of node, not once per node.

A rule that fires on 25 000 LeakyRelu nodes renders the same text 25 000
times but for the node's own names: rendering (jinja2 in the sandbox) is most
of the cost of a firing. When a template uses the names only by writing them
out (``{{ name }}``, ``{{ inputs[i] }}``, joined into other names with ``~``,
kept in a variable or handed to a macro that only writes them out in turn:
name_flow.py tells), nothing it decides depends on them, and its text for a
node is its text for placeholders of the same lengths with the names put back.
So the template is rendered once for placeholders per key (the lengths of the
names and the values of everything else the template reads), and each node
gets that text with its names filled in.

The sandbox's budget charges only sizes, which the same-length placeholders
keep, so a render the memo stands in for would have passed the same limits.
A template that reads anything else of the context (``const``,
``producer_attrs``, random ``lipsum``), or a context that is not plain data,
is rendered as it is every time; so is any render that fails (its error is
the real render's).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from jinja2 import meta, nodes

from transpiler.engine import name_flow
from transpiler.ir.attrs import plain_key as _frozen

#: Context entries a memoized template may read; their values (plain data) key the memo.
_DATA = frozenset({"op", "attrs", "dtypes", "shapes", "device", "target"})
#: Context helpers whose answers depend only on the target release (keyed by it).
_TARGET_HELPERS = frozenset({"has_op"})
#: Globals that are functions of their arguments alone.
_PURE_GLOBALS = frozenset({"range"})
_NAMES = name_flow.NAMES
#: Placeholder i: OPEN, chr(FIRST + i), then PAD up to the name's length: characters of the private use area,
#: which no name has, YAML reads as plain text, and no implicit type (number, bool, null, date) matches.
OPEN, PAD, FIRST = "\uE000", "\uE001", 0xE100
_PRIVATE = re.compile("[\uE000-\uF8FF]")
#: Rendered texts kept (a few per rule and name length in practice); the memo starts over when full.
MAX_ENTRIES = 4096

_memo: Dict[tuple, Optional[str]] = {}
_NOT_PLAIN = object()


@functools.lru_cache(maxsize=1024)
def parsed(source: str, env) -> Optional[nodes.Template]:
    """The template's syntax tree, or None when it does not parse (its render raises the error).

    One tree serves the analyses here and the compilation (templates._facts): jinja2's optimizer
    folds constant expressions in place when compiling, which changes no name the analyses look at."""
    try:
        return env.parse(source)
    except Exception:
        return None


#: Tags through which a template may hand its context to another template (an import only `with context`).
_INCLUDING = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


@functools.lru_cache(maxsize=1024)
def reads(source: str, env) -> Optional[frozenset]:
    """The context names `source` reads (macro bodies included), or None when that cannot be told (it does
    not parse, or includes another template or imports one `with context`, which may read the context too;
    an import without context, jinja2's default, gives the imported macros none of it)."""
    tree = parsed(source, env)
    if tree is None or any(getattr(tag, "with_context", True) for tag in tree.find_all(_INCLUDING)):
        return None
    return frozenset(meta.find_undeclared_variables(tree))


@functools.lru_cache(maxsize=1024)
def memo_reads(source: str, env) -> Optional[frozenset]:
    """The context names `source` reads, if it only ever writes the node's names straight out; else None."""
    used = reads(source, env)
    if used is None or not used <= _DATA | _TARGET_HELPERS | _PURE_GLOBALS | _NAMES:
        return None
    return used if name_flow.writes_names_only(parsed(source, env), lambda name: _module(name, env)) else None


def _module(name: str, env) -> Optional[nodes.Template]:
    """The syntax tree of the template `name` a template imports (the shared macros), or None."""
    try:
        source = env.loader.get_source(env, name)[0]
    except Exception:  # TemplateNotFound: any other name; no loader
        return None
    return parsed(source, env)


@functools.lru_cache(maxsize=1024)
def _keyed(used: frozenset) -> Tuple[str, ...]:
    """The entries of the context whose values key the memo, in order."""
    return tuple(sorted(used - _NAMES - _PURE_GLOBALS))


def _key(source: str, used: frozenset, context: Dict[str, Any], names: List[str]) -> Optional[tuple]:
    try:
        data = tuple([(k, context["target"] if k in _TARGET_HELPERS else _frozen(context[k])) for k in _keyed(used)])
        hash(data)
    except (KeyError, TypeError):
        return None
    return source, tuple(len(n) for n in names), data


def placeholder(index: int, name: str) -> str:
    """The placeholder for names[index] = `name`: as long as the name (two characters at least)."""
    return OPEN + chr(FIRST + index) + PAD * (len(name) - 2)


def render(source: str, used: Optional[frozenset], context: Dict[str, Any],
           real: Callable[[Dict[str, Any]], str]) -> str:
    """`real(context)` (template `source` rendered in the sandbox), from the memo when the template allows:
    `used` is its memo_reads (None: it does not)."""
    found = shape(source, used, context, real)
    if found is None:
        return real(context)
    text, names = found
    for index, name in enumerate(names):
        text = text.replace(placeholder(index, name), name)
    return text


def shape(source: str, used: Optional[frozenset], context: Dict[str, Any],
          real: Callable[[Dict[str, Any]], str]) -> Optional[Tuple[str, List[str]]]:
    """(text, names): what `render` fills in, the memo's text for `context` with placeholder i (see
    `placeholder`) where names[i] is, names being [name] + inputs; the same str object for every context of
    one key. None when the memo cannot stand in: `real(context)` is then the render."""
    inputs = context.get("inputs")
    names = [context.get("name")] + (list(inputs) if isinstance(inputs, list) else [])
    if used is None or not isinstance(inputs, list) or len(names) > 0x1000 or \
            not all(isinstance(n, str) and len(n) >= 2 and not _PRIVATE.search(n) for n in names):
        return None
    key = _key(source, used, context, names)
    if key is None:
        return None
    if key not in _memo:
        text = _shape(context, names, real)
        if len(_memo) >= MAX_ENTRIES:
            _memo.clear()
        _memo[key] = text
    text = _memo[key]
    return None if text is None else (text, names)


def _shape(context: Dict[str, Any], names: List[str], real: Callable[[Dict[str, Any]], str]) -> Optional[str]:
    """The text for placeholders, or None when it cannot stand in (private use characters of its own).

    A render that fails raises: the names reach no operation, so the real render fails the same way
    (rendering a hostile template twice would double the time it takes to refuse it). Only an error
    that quotes a placeholder is left to the real render, for its message."""
    placeholders = [placeholder(i, n) for i, n in enumerate(names)]
    try:
        text = real(dict(context, name=placeholders[0], inputs=placeholders[1:]))
    except Exception as exc:
        if _PRIVATE.search(str(exc)):
            return None
        raise
    rest = text
    for stand_in in placeholders:
        rest = rest.replace(stand_in, "")
    return None if _PRIVATE.search(rest) else text
