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
from typing import Any, Dict, List, Optional

import jinja2
import yaml

from transpiler.engine import RuleError, safe_yaml
from transpiler.engine.builtin import builtin_rules_dir
from transpiler.engine.sandbox import LimitedSandbox

#: The shared macros a template may import, by name: nothing else is loadable.
MACRO_FILES = ("macros.j2",)


def _load_macros(name: str) -> Optional[str]:
    if name not in MACRO_FILES:
        return None  # jinja2 then raises TemplateNotFound
    return (builtin_rules_dir() / name).read_text()


#: `{{ x | tojson }}` writes any value as YAML-compatible JSON (lists, floats, strings).
_ENV = LimitedSandbox(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      loader=jinja2.FunctionLoader(_load_macros), extra_filters={"tojson": json.dumps})


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


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render_text(source: str, context: Dict[str, Any]) -> str:
    """`source` rendered with `context` within the sandbox's limits; any failure is a TemplateError."""
    try:
        return _ENV.render(_compiled(source), context)
    except Exception as exc:
        raise TemplateError("template%s: %s" % (_line_of(exc), _describe(exc))) from None


def render(source: str, context: Dict[str, Any]) -> Any:
    """Render a template and parse the result as YAML."""
    text = render_text(source, context)
    try:
        return safe_yaml.load(text)
    except yaml.YAMLError as exc:
        line, problem = safe_yaml.describe(exc, text)
        raise TemplateError("template rendered invalid YAML (line %d): %s" % (line, problem)) from None


def render_nodes(source: str, context: Dict[str, Any]) -> List[NodeSpec]:
    items = render(source, context)
    if not isinstance(items, list) or not items:
        raise TemplateError("template must render a non-empty list of nodes")
    return [_node_spec(item) for item in items]


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
