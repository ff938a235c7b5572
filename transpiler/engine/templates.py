"""Decomposition templates: jinja2 (sandboxed, with limits) rendering YAML node lists.

A template sees the matched node (``name``, ``op``, ``inputs``, ``attrs``,
``dtypes``, ``device``, ``target``) and renders a list of nodes:

    - name: "{{ name }}/scaled"
      op: Mul
      inputs: ["{{ inputs[0] }}", "{{ name }}/alpha"]
      attrs: {T: "{{ attrs.T }}"}

Rule files are data from users: templates render in the sandbox of
sandbox.py (no Python internals, bounded time, loops, data and output) and
the YAML they render is read by safe_yaml. Every failure, whatever raised it,
is one TemplateError. The one file a template may import is the shared macros
file shipped with the built-in rules (``{% import "macros.j2" as m %}``,
rules/macros.j2); there is no other loader. Each template source is compiled
once and reused for every node it renders.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import jinja2
import yaml

from transpiler.engine import RuleError, safe_yaml, template_code, template_memo
from transpiler.engine.builtin import builtin_rules_dir
from transpiler.engine.sandbox import LimitedSandbox

#: The shared macros a template may import, by name: nothing else is loadable.
MACRO_FILES = ("macros.j2",)


def _load_macros(name: str) -> Optional[str]:
    if name not in MACRO_FILES:
        return None  # jinja2 then raises TemplateNotFound
    return (builtin_rules_dir() / name).read_text()


class _MacroLoader(jinja2.FunctionLoader):
    """Loads the shared macros, compiled once for every process (template_code.py)."""

    def load(self, environment: jinja2.Environment, name: str, globals=None) -> jinja2.Template:
        source, filename, uptodate = self.get_source(environment, name)
        code, _, _ = template_code.cached(name + "\0" + source,
                                          lambda _: (environment.compile(source, name, filename), None, None))
        return environment.template_class.from_code(environment, code, environment.make_globals(globals), uptodate)


#: `{{ x | tojson }}` writes any value as YAML-compatible JSON (lists, floats, strings).
_ENV = LimitedSandbox(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      loader=_MacroLoader(_load_macros), extra_filters={"tojson": json.dumps})


class TemplateError(RuleError, ValueError):
    """A template that fails to render or renders something that is not a node list."""


@dataclasses.dataclass
class NodeSpec:
    name: str
    op: str
    inputs: List[str]
    attrs: Dict[str, Any]
    control_inputs: List[str]
    device: Optional[str] = None


#: What a rendered node may say, and the type of each field.
_NODE_FIELDS = {"name": str, "op": str, "inputs": list, "attrs": dict, "control_inputs": list, "device": str}


def check_template(source: str) -> Optional[str]:
    """A problem parsing `source` (syntax, nesting too deep for the parser), or None."""
    try:
        _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return "template line %d: %s" % (exc.lineno, exc.message)
    except Exception as exc:  # RecursionError on deep nesting, MemoryError, ...
        return "template cannot be parsed: %s" % _describe(exc)
    return None


@dataclasses.dataclass(frozen=True)
class _Facts:
    """What rendering a template needs to know of it: its compiled form and what it reads."""

    template: jinja2.Template
    #: The context names it reads (None: not known, any may be read).
    reads: Optional[frozenset]
    #: The same when it only writes the node's names straight out (template_memo may stand in), else None.
    memo_reads: Optional[frozenset]


@functools.lru_cache(maxsize=4096)
def _facts(source: str) -> _Facts:
    """The template's facts, from the code an earlier process compiled when there is one (template_code.py);
    a source that does not parse raises its TemplateSyntaxError."""
    def analysed(_: str) -> tuple:
        tree = template_memo.parsed(source, _ENV)
        if tree is None:
            _ENV.parse(source)  # raises the syntax error
        return _ENV.compile(tree), template_memo.reads(source, _ENV), template_memo.memo_reads(source, _ENV)

    code, used, memo_used = template_code.cached(source, analysed)
    return _Facts(_ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None), used, memo_used)


def reads(sources: List[str]) -> Optional[frozenset]:
    """The context names templates `sources` read, or None when that is not known (any name may be read)."""
    try:
        found = [_facts(source).reads for source in sources]
    except Exception:  # a template that does not parse: its render reports it
        return None
    return None if None in found else frozenset().union(*found)


def writes_names_only(sources: List[str]) -> bool:
    """Whether templates `sources` use the node's name and input names only by writing them out as they are
    (template_memo.memo_reads): nothing they render, ops and attrs included, then depends on those names."""
    try:
        return all(_facts(source).memo_reads is not None for source in sources)
    except Exception:  # a template that does not parse: its render reports it
        return False


def render_text(source: str, context: Dict[str, Any]) -> str:
    """`source` rendered with `context` within the sandbox's limits; any failure is a TemplateError."""
    return _rendering(template_memo.render, source, context)


def _rendering(how: Callable, source: str, context: Dict[str, Any]) -> Any:
    """`how(source, memo_reads, context, real)` for a template_memo function `how`, any failure a TemplateError:
    the template is rendered once per kind of node when it only writes the node's names out (template_memo.py)."""
    try:
        facts = _facts(source)
        return how(source, facts.memo_reads, context, lambda ctx: _ENV.render(facts.template, ctx))
    except Exception as exc:
        raise TemplateError("template%s: %s" % (_line_of(exc), _describe(exc))) from None


def render(source: str, context: Dict[str, Any]) -> Any:
    """Render a template and parse the result as YAML."""
    return _parsed(render_text(source, context), _node_names(context))


def _parsed(text: str, names: List[str]) -> Any:
    """The YAML of a rendered `text` whose context had the node names `names`."""
    if _cacheable(text, names):
        found = _load_abstracted(text, names)
        if found is not _MISS:
            return found
    try:
        return safe_yaml.load_fast(text)
    except yaml.YAMLError as exc:
        line, problem = safe_yaml.describe(exc, text)
        raise TemplateError("template rendered invalid YAML (line %d): %s" % (line, problem)) from None


# ---- parsing each rendered shape once ----------------------------------------
# A template renders the same YAML for every node it matches but for the node's own names, so the text is
# parsed once with those names replaced by placeholders, and each render fills them back into the strings.
# That is the parse of the rendered text itself when the names are inert inside any YAML scalar (TF node
# names, without backslash, not starting with '-'), the text has no tags, anchors, aliases or escapes, and
# every filled-in string still reads as a string; otherwise the text is parsed as it is.

#: Rendered texts longer than this are parsed as they are (built-in templates render a few KB).
MAX_CACHED_TEXT = 16 * 1024
#: A name the placeholders may stand for (two characters at least: the shortest placeholder).
_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./>-]+\Z")
#: Names one text may have placeholders for (the first ones; the others stay in the text).
_MAX_NAMES = 256
#: Placeholders are template_memo's, as long as their names (so the shape has the text's lines, columns and
#: key lengths).
_OPEN, _FIRST = template_memo.OPEN, template_memo.FIRST
#: What a placeholder could change the meaning of (tags, anchors, aliases, escapes), and placeholders.
_UNCACHED = re.compile("[!&*\\\\\uE000-\uF8FF]")
#: Resolves plain scalars: a filled-in string must still read as a string unquoted.
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_MISS = object()


def _node_names(context: Dict[str, Any]) -> List[str]:
    """The matched node's name and its inputs' node names that placeholders may stand for, once each."""
    inputs = context.get("inputs")
    found = [context.get("name")] + [t.partition(":")[0] for t in inputs if isinstance(t, str)] \
        if isinstance(inputs, list) else [context.get("name")]
    return list(dict.fromkeys(n for n in found if isinstance(n, str) and _NAME.match(n)))[:_MAX_NAMES]


def _cacheable(text: str, names: List[str]) -> bool:
    """Whether `text` may be read from the parse of its shape (see above)."""
    return bool(names) and len(text) <= MAX_CACHED_TEXT and not _UNCACHED.search(text)


def _abstracted(text: str, names: List[str]) -> str:
    """`text` with the names replaced by their placeholders."""
    shape = text
    for index, name in sorted(enumerate(names), key=lambda item: -len(item[1])):  # longest first
        shape = shape.replace(name, template_memo.placeholder(index, name))
    return shape


def _fill_list(names: List[str]) -> List[tuple]:
    return [(template_memo.placeholder(index, name), name) for index, name in enumerate(names)]


def _load_abstracted(text: str, names: List[str]) -> Any:
    """The YAML of `text` from the parse of its shape (names as placeholders), or _MISS."""
    shape = _abstracted(text, names)
    try:
        parsed = _load_shape(shape)
    except yaml.YAMLError:
        return _MISS  # parsed again as it is, for the error message
    try:
        return _filled(parsed, _fill_list(names))
    except _NotAString:
        return _MISS


@functools.lru_cache(maxsize=256)
def _load_shape(shape: str) -> Any:
    return safe_yaml.load_fast(shape)


class _NotAString(Exception):
    """A filled-in plain scalar that would read as something else than a string."""


def _filled(value: Any, fill: List[tuple]) -> Any:
    """A fresh copy of `value` with the names back in its strings; _NotAString if one would read as no string."""
    kind = type(value)
    if kind is str:
        if _OPEN not in value:
            return value
        for placeholder, name in fill:
            value = value.replace(placeholder, name)
        if not _reads_as_string(value):
            raise _NotAString(value)
        return value
    # Items that are the same in the copy (numbers, strings without a placeholder) are taken without a call:
    # a shape has dozens of them, and the call per item was most of filling one in.
    if kind is list:
        return [_filled(v, fill) if (t := type(v)) is list or t is dict or t is str and _OPEN in v else v
                for v in value]
    if kind is dict:
        return {(_filled(k, fill) if type(k) is str and _OPEN in k else k):
                (_filled(v, fill) if (t := type(v)) is list or t is dict or t is str and _OPEN in v else v)
                for k, v in value.items()}
    return value


def _reads_as_string(value: str) -> bool:
    """Whether `value`, a plain scalar, reads as a string: what the resolver says, without asking it when no
    implicit type starts with the first character (a TF name's letter: nearly every filled-in string)."""
    resolvers = _RESOLVER.yaml_implicit_resolvers
    if value and value[0] not in resolvers and None not in resolvers and not _RESOLVER.yaml_path_resolvers:
        return True
    return _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG


def render_nodes(source: str, context: Dict[str, Any]) -> List[NodeSpec]:
    """The node list a template renders; the specs' attr values may be shared between calls (read-only)."""
    return shaped_nodes(source, context)[0]


def shaped_nodes(source: str, context: Dict[str, Any]) -> Tuple[List[NodeSpec], Optional[tuple]]:
    """`render_nodes(source, context)`, and the recipes its specs were filled from when the memo stood in for
    the render (template_memo.py), else None: the same tuple for every context of one memo key, so a caller may
    key work of its own on it (what follows from the ops and attrs alone, which a recipe holds as they are,
    `recipe_fixed`)."""
    found = _rendering(template_memo.shape, source, context)
    if found is not None and _fills_inertly(*found):
        recipes = _spec_recipes(found[0])
        if recipes is not None:
            try:
                return _filled_specs(recipes, found[1]), recipes
            except _NotAString:
                pass  # rendered as it is below
    return _rendered_nodes(render_text(source, context), _node_names(context)), None


#: A name the memo's placeholders may be filled back with in parsed YAML: a node name or a tensor name
#: (`node:N`; YAML ends a plain scalar only at a colon before a space or a flow indicator).
_INERT_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./>-]*(:[0-9]+)?\Z")
#: What a placeholder could change the meaning of in a memo's text (its own placeholders aside).
_UNCACHED_MEMO = re.compile(r"[!&*\\]")


def _fills_inertly(text: str, names: List[str]) -> bool:
    """Whether the parse of the memo's `text` with `names` filled into its strings is the parse of the text with
    the names in (see "parsing each rendered shape once")."""
    return _inert_text(text) and all(_INERT_NAME.match(name) for name in names)


@functools.lru_cache(maxsize=256)
def _inert_text(text: str) -> bool:
    """The text's own part of `_fills_inertly`, once per memo text (the same str for every firing of a shape)."""
    return len(text) <= MAX_CACHED_TEXT and not _UNCACHED_MEMO.search(text)


def _rendered_nodes(text: str, names: List[str]) -> List[NodeSpec]:
    """The NodeSpecs of a rendered `text` whose context had the node names `names`."""
    if _cacheable(text, names):
        recipes = _spec_recipes(_abstracted(text, names))
        if recipes is not None:
            try:
                return _filled_specs(recipes, names)
            except _NotAString:
                pass  # read as it is below
    items = _parsed(text, names)
    if not isinstance(items, list) or not items:
        raise TemplateError("template must render a non-empty list of nodes")
    return [_node_spec(item) for item in items]


def recipe_fixed(recipe: tuple) -> bool:
    """Whether the NodeSpecs a recipe fills have its op and attrs whatever the names (no name is in them)."""
    return type(recipe[1]) is str and not recipe[4]


class Recipes(tuple):
    """The `_recipe` of each NodeSpec of a rendered shape, and all the shape's strings (each node's name, op,
    inputs, control inputs and device when it has one) as one str.format string, `text` (`_pieces`' formats
    joined by _SEP), so that a firing fills them all with one call: `checked` are the strings with a
    placeholder (each must still read as a string), `layout` per node where its strings start, where its inputs
    and control inputs end, whether a device follows, its attrs, and whether they hold a placeholder."""

    text: str
    checked: Tuple[int, ...]
    layout: Tuple[tuple, ...]


#: Separates the strings of a shape in Recipes.text: a private use character, which neither a shape's literal
#: text (template_memo and _UNCACHED keep those out) nor a name (_INERT_NAME, _NAME) has.
_SEP = "\uE002"


@functools.lru_cache(maxsize=256)
def _spec_recipes(shape: str) -> Optional[Recipes]:
    """How to make each node of a rendered shape for given names, or None when it is no valid node list.
    Parsed and checked once per shape, since filling names into strings changes no type (and any failure is
    left to the text itself, for the error message its names give)."""
    try:
        items = _load_shape(shape)
        if not isinstance(items, list) or not items:
            return None
        specs = [_node_spec(item) for item in items]
    except (yaml.YAMLError, TemplateError):
        return None
    strings, layout = [], []
    for spec in specs:
        start = len(strings)
        strings += [spec.name, spec.op] + spec.inputs + spec.control_inputs
        layout.append((start, start + 2 + len(spec.inputs), len(strings), spec.device is not None, spec.attrs,
                       _has_placeholder(spec.attrs)))
        if spec.device is not None:
            strings.append(spec.device)
    if any(_SEP in text for text in strings):
        return None
    pieces = [_pieces(text) for text in strings]
    found = Recipes(_recipe(spec) for spec in specs)
    found.text = _SEP.join(p[0] if type(p) is tuple else _literal(p) for p in pieces)
    found.checked = tuple(i for i, p in enumerate(pieces) if type(p) is tuple)
    found.layout = tuple(layout)
    return found


#: A placeholder in a shape: its index is the character after _OPEN (see template_memo.placeholder).
_PLACEHOLDER = re.compile("\uE000([\uE100-\uF8FF])\uE001*")


def _pieces(value: str) -> Union[str, tuple]:
    """`value` itself when it has no placeholder, else a 1-tuple of a str.format string of it: its literal text
    (braces doubled) and, for each placeholder, ``{i}`` for the index of the name it stands for (filled with one
    call per string, not a step per piece)."""
    if _OPEN not in value:
        return value
    parts = []
    for i, part in enumerate(_PLACEHOLDER.split(value)):
        parts.append("{%d}" % (ord(part) - _FIRST) if i % 2 else _literal(part))
    return ("".join(parts),)


def _literal(text: str) -> str:
    """`text` as literal text of a str.format string."""
    return text.replace("{", "{{").replace("}", "}}")


def _has_placeholder(value: Any) -> bool:
    if type(value) is str:
        return _OPEN in value
    if type(value) is list:
        return any(_has_placeholder(v) for v in value)
    if type(value) is dict:
        return any(_has_placeholder(k) or _has_placeholder(v) for k, v in value.items())
    return False


def _recipe(spec: NodeSpec) -> tuple:
    """(name, op, inputs, attrs, attrs with placeholders?, control inputs, device) of a shape's NodeSpec: strings
    as `_pieces` (any of them, the op too: a name may be spelled like an op, `Const`, and the shape then has a
    placeholder there), attrs as they are (filled with `_filled` in the rare shape with a name in one)."""
    return (_pieces(spec.name), _pieces(spec.op), [_pieces(t) for t in spec.inputs], spec.attrs, _has_placeholder(spec.attrs),
            [_pieces(t) for t in spec.control_inputs], _pieces(spec.device) if spec.device else spec.device)


def _filled_specs(recipes: Recipes, names: List[str]) -> List[NodeSpec]:
    """The NodeSpecs of a shape's `recipes` with `names` back in their strings: what `_node_spec` of the filled-in
    parse gives; _NotAString if a filled-in string would read as no string. Their lists and attrs dicts are
    fresh; the attr values are the shape's own (shared, read-only)."""
    values = recipes.text.format(*names).split(_SEP)
    resolvers = _RESOLVER.yaml_implicit_resolvers
    firsts = {values[i][:1] for i in recipes.checked}
    if "" in firsts or not firsts.isdisjoint(resolvers) or None in resolvers or _RESOLVER.yaml_path_resolvers:
        for i in recipes.checked:  # what _reads_as_string would not decide by the first character alone
            if not _reads_as_string(values[i]):
                raise _NotAString(values[i])
    return [NodeSpec(values[start], values[start + 1], values[start + 2:inputs_end],
                     _filled(attrs, _fill_list(names)) if named else dict(attrs), values[inputs_end:control_end],
                     values[control_end] if has_device else None)
            for start, inputs_end, control_end, has_device, attrs, named in recipes.layout]


def render_strings(items: List[str], context: Dict[str, Any]) -> List[str]:
    return [render_text(str(item), context) for item in items]


def _node_spec(item: Any) -> NodeSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("op"), str):
        raise TemplateError("each rendered node needs a name and an op, got %s" % _clip(item))
    for key, value in item.items():
        kind = _NODE_FIELDS.get(key)
        if kind is None:
            raise TemplateError("node %s: unknown field %s" % (item["name"], key))
        if value is not None and not isinstance(value, kind):
            raise TemplateError("node %s: field %s must be a %s, got %s" % (item["name"], key, kind.__name__,
                                                                           _clip(value)))
    for key in ("inputs", "control_inputs"):
        if not all(isinstance(t, str) for t in item.get(key) or []):
            raise TemplateError("node %s: %s must be tensor names (strings)" % (item["name"], key))
    return NodeSpec(item["name"], item["op"], list(item.get("inputs") or []), dict(item.get("attrs") or {}),
                    list(item.get("control_inputs") or []), item.get("device"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplateNotFound):
        return "cannot load %r: a template may import only %s" % (exc.name, ", ".join(MACRO_FILES))
    if isinstance(exc, RecursionError):  # jinja2's parser and compiled code recurse per nesting level
        return "nested too deeply (RecursionError)"
    if isinstance(exc, jinja2.TemplateError) and exc.message:
        return exc.message
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _line_of(exc: BaseException) -> str:
    """' line N' of the template line that raised `exc` (jinja2 rewrites tracebacks to template lines)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return " line %d" % line if line else ""


def _clip(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
