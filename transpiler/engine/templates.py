"""Decomposition templates: jinja2 (sandboxed) rendering YAML node lists.

A template sees the matched node (``name``, ``op``, ``inputs``, ``attrs``,
``dtypes``, ``device``, ``target``) and renders a list of nodes:

    - name: "{{ name }}/scaled"
      op: Mul
      inputs: ["{{ inputs[0] }}", "{{ name }}/alpha"]
      attrs: {T: "{{ attrs.T }}"}

Rendering happens in jinja2's sandbox: rule files are data from users and
must not run code. The one file a template may import is the shared macros
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
from jinja2.sandbox import SandboxedEnvironment

from transpiler.engine.builtin import builtin_rules_dir

#: The shared macros a template may import, by name: nothing else is loadable.
MACRO_FILES = ("macros.j2",)


def _load_macros(name: str) -> Optional[str]:
    if name not in MACRO_FILES:
        return None  # jinja2 then raises TemplateNotFound
    return (builtin_rules_dir() / name).read_text()


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                            loader=jinja2.FunctionLoader(_load_macros))
#: `{{ x | tojson }}` writes any value as YAML-compatible JSON (lists, floats, strings).
_ENV.filters["tojson"] = lambda value: json.dumps(value)


class TemplateError(ValueError):
    """A template that fails to render or renders something that is not a node list."""


@dataclasses.dataclass
class NodeSpec:
    name: str
    op: str
    inputs: List[str]
    attrs: Dict[str, Any]
    control_inputs: List[str]
    device: Optional[str] = None


def check_template(source: str) -> Optional[str]:
    """A syntax problem in `source`, or None."""
    try:
        _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return "template line %d: %s" % (exc.lineno, exc.message)
    return None


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(source: str, context: Dict[str, Any]) -> Any:
    """Render a template and parse the result as YAML."""
    try:
        text = _compiled(source).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError("template: %s" % exc) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError("template rendered invalid YAML: %s" % str(exc).splitlines()[0]) from None


def render_nodes(source: str, context: Dict[str, Any]) -> List[NodeSpec]:
    items = render(source, context)
    if not isinstance(items, list) or not items:
        raise TemplateError("template must render a non-empty list of nodes")
    return [_node_spec(item) for item in items]


def render_strings(items: List[str], context: Dict[str, Any]) -> List[str]:
    return [_compiled(str(item)).render(**context) for item in items]


def _node_spec(item: Any) -> NodeSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("op"), str):
        raise TemplateError("each rendered node needs a name and an op, got %r" % (item,))
    unknown = set(item) - {"name", "op", "inputs", "attrs", "control_inputs", "device"}
    if unknown:
        raise TemplateError("node %s: unknown field %s" % (item["name"], sorted(unknown)[0]))
    return NodeSpec(item["name"], item["op"], [str(i) for i in item.get("inputs") or []],
                    dict(item.get("attrs") or {}), [str(c) for c in item.get("control_inputs") or []],
                    item.get("device"))
