"""Load rule files (rules/*.yaml) and check them against the rule schema.

Rule files are untrusted input. A file is read up to MAX_FILE_BYTES, must be
UTF-8, and is parsed by safe_yaml (safe tags only, bounded nesting and alias
expansion). Every field is then checked against ``data/rule.schema.json``
(the schema editors use; `_validate` interprets the keywords it uses), and
the templates parse in the sandbox. A bad rule file is one RuleFileError
naming file:line, rule id and field, never a traceback:
"rules/x.yaml:12: rule 'leaky-relu': field 'match.op': required".
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from transpiler.engine import RuleError, safe_yaml
from transpiler.engine.builtin import builtin_rules_dir

ACTIONS = ("rename", "decompose", "strip_default_attrs", "refuse")

#: Larger rule files are refused (the largest built-in one is 37 KB).
MAX_FILE_BYTES = 256 * 1024
#: Elements an example input may hold (its shape's product): `rules test` makes arrays of that size.
MAX_EXAMPLE_ELEMENTS = 1 << 20
#: Key under which the loader stores, in every mapping, the line of the mapping (key None) and of each key.
LINES = "__lines__"


class RuleFileError(RuleError):
    """A rule file that does not follow the schema."""


@dataclasses.dataclass
class Rule:
    """One rewrite, as data. See docs/rules.md for the field reference."""

    id: str
    family: str
    why: str
    match: Dict[str, Any]
    when: Dict[str, Any]
    action: str
    spec: Any
    outputs: Optional[List[str]] = None
    priority: int = 0
    examples: List[dict] = dataclasses.field(default_factory=list)
    source: str = ""

    @property
    def op(self) -> str:
        return self.match["op"]

    def templates(self) -> List[Tuple[str, str]]:
        """(field, source) of each template of the rule: decompose or refuse, and outputs."""
        found = [(self.action, self.spec)] if self.action in ("decompose", "refuse") else []
        if isinstance(self.outputs, str):
            found.append(("outputs", self.outputs))
        else:
            found += [("outputs[%d]" % i, o) for i, o in enumerate(self.outputs or [])]
        return found


class _LineLoader(safe_yaml.BoundedLoader):
    """The bounded safe loader, remembering in each mapping the line of the mapping and of each key."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        lines = {None: node.start_mark.line + 1}
        for key_node, _ in node.value:
            lines.setdefault(self.construct_object(key_node), key_node.start_mark.line + 1)  # memoized
        mapping[LINES] = lines
        return mapping


@dataclasses.dataclass
class _Where:
    file: str
    line: int
    rule: Optional[str]

    def fail(self, field: str, message: str, line: Optional[int] = None) -> RuleFileError:
        rule = " rule '%s':" % self.rule if self.rule else ""
        return RuleFileError("%s:%d:%s field '%s': %s" % (self.file, line or self.line, rule, field, message))


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads((resources.files("transpiler") / "data" / "rule.schema.json").read_text())


def schema() -> dict:
    """The JSON Schema of rule files (a copy to keep)."""
    return copy.deepcopy(_schema())


def load_rule_file(path: Path) -> List[Rule]:
    """The rules of one file; RuleFileError (one line, file:line, rule, field) when it is not a valid rule file."""
    path = Path(path)
    text = _read(path)
    try:
        doc = safe_yaml.load(text, _LineLoader)
    except yaml.YAMLError as exc:
        line, problem = safe_yaml.describe(exc, text)
        what = "YAML over the limits" if isinstance(exc, safe_yaml.LimitError) else "not valid YAML"
        raise RuleFileError("%s:%d: %s (%s)" % (path, line, what, problem)) from None
    where = _Where(str(path), 1, None)
    if not isinstance(doc, dict):
        raise where.fail("rules", "a rule file is a mapping with a 'rules' list")
    root = _schema()
    shallow = dict(root, properties=dict(root["properties"], rules={"type": "array"}))  # rules: below, with ids
    _validate(doc, shallow, "", where, _line(doc))
    family = doc.get("family", path.stem)
    rule_line = _line(doc, "rules")
    rules = [_parse_rule(raw, "rules[%d]" % i, family, where, rule_line) for i, raw in enumerate(doc["rules"])]
    _no_duplicate_ids(rules, where)
    return rules


def _read(path: Path) -> str:
    """The text of a rule file: at most MAX_FILE_BYTES, UTF-8."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RuleFileError("%s: cannot read rule file (%s)" % (path, exc.strerror or exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise RuleFileError("%s: rule file larger than %d bytes" % (path, MAX_FILE_BYTES))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RuleFileError("%s:%d: not UTF-8 (byte 0x%02x)" % (path, line, data[exc.start])) from None


def _parse_rule(raw: Any, field: str, family: str, top: _Where, line: int) -> Rule:
    if not isinstance(raw, dict):
        raise top.fail(field, "each rule is a mapping", line)
    where = _Where(top.file, _line(raw), raw["id"] if isinstance(raw.get("id"), str) else None)
    _validate(raw, _schema()["definitions"]["rule"], "", where, where.line)
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise where.fail("|".join(ACTIONS), "exactly one action is required, found %s" % (actions or "none"))
    if "outputs" in raw and actions != ["decompose"]:
        raise where.fail("outputs", "only a decompose rule has outputs", _line(raw, "outputs"))
    raw = _clean(raw)
    rule = Rule(id=raw["id"], family=family, why=raw["why"].strip(), match=raw["match"], when=raw.get("when", {}),
                action=actions[0], spec=raw[actions[0]], outputs=raw.get("outputs"),
                priority=raw.get("priority", 0), examples=raw.get("examples", []),
                source="%s:%d" % (where.file, where.line))
    for name, source in rule.templates():
        from transpiler.engine.templates import check_template

        problem = check_template(source)
        if problem:
            raise where.fail(name, problem)
    _check_examples(rule, where)
    return rule


def _check_examples(rule: Rule, where: _Where) -> None:
    """What the schema cannot say: a decomposition has examples, and example inputs are not huge."""
    if rule.action == "decompose" and not rule.examples:
        raise where.fail("examples", "a decomposition needs at least one example (it is its equivalence test)")
    for i, example in enumerate(rule.examples):
        for j, spec in enumerate(example.get("inputs", [])):
            if math.prod(spec.get("shape", [])) > MAX_EXAMPLE_ELEMENTS:
                raise where.fail("examples[%d].inputs[%d].shape" % (i, j),
                                 "more than %d elements" % MAX_EXAMPLE_ELEMENTS)


# ---- the schema's keywords ---------------------------------------------------
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
          "null": type(None)}
_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _validate(value: Any, spec: dict, field: str, where: _Where, line: int) -> None:
    """Raise where.fail(field, ...) unless `value` follows the JSON Schema `spec`.

    The keywords rule.schema.json uses: type, const, pattern, minimum, maximum, items,
    minItems, maxItems, properties, required, additionalProperties, propertyNames, $ref.
    """
    if "$ref" in spec:
        spec = _resolve(spec["$ref"])
    types = [spec["type"]] if isinstance(spec.get("type"), str) else spec.get("type")
    if types and not any(_is_type(value, t) for t in types):
        raise where.fail(field, "must be %s, not %s" % (" or ".join(_TYPE_NAMES[t] for t in types),
                                                        _describe(value)), line)
    if "const" in spec and not (type(value) is type(spec["const"]) and value == spec["const"]):
        raise where.fail(field, "must be %s" % json.dumps(spec["const"]), line)
    if isinstance(value, str) and "pattern" in spec and not re.search(spec["pattern"], value):
        raise where.fail(field, "%s does not match %s" % (_short(value), spec["pattern"]), line)
    if _is_type(value, "number"):
        if value < spec.get("minimum", value) or value > spec.get("maximum", value):
            raise where.fail(field, "%s is out of range" % value, line)
    if isinstance(value, list):
        _validate_list(value, spec, field, where, line)
    if isinstance(value, dict):
        _validate_mapping(value, spec, field, where)


def _validate_list(value: list, spec: dict, field: str, where: _Where, line: int) -> None:
    if not spec.get("minItems", 0) <= len(value) <= spec.get("maxItems", len(value)):
        raise where.fail(field, "%d items (from %s to %s)" % (len(value), spec.get("minItems", 0),
                                                              spec.get("maxItems", "any")), line)
    for i, item in enumerate(value):
        if "items" in spec:
            _validate(item, spec["items"], "%s[%d]" % (field, i), where, _line(item) if isinstance(item, dict) else line)


def _validate_mapping(mapping: dict, spec: dict, field: str, where: _Where) -> None:
    here = _line(mapping)
    for key in spec.get("required", ()):
        if key not in mapping:
            raise where.fail(_join(field, key), "required", here)
    known = spec.get("properties", {})
    extra = spec.get("additionalProperties", True)
    for key, value in mapping.items():
        if key == LINES:
            continue
        name, line = _join(field, key), _line(mapping, key)
        if "propertyNames" in spec:
            _validate(key if isinstance(key, str) else str(key), spec["propertyNames"], name, where, line)
        elif not isinstance(key, str):
            raise where.fail(name, "a field name must be a string, not %s" % _describe(key), line)
        if key in known:
            _validate(value, known[key], name, where, _line(value) if isinstance(value, dict) else line)
        elif extra is False:
            raise where.fail(name, "unknown field (allowed: %s)" % ", ".join(sorted(known)), line)
        elif isinstance(extra, dict):
            _validate(value, extra, name, where, _line(value) if isinstance(value, dict) else line)


def _resolve(ref: str) -> dict:
    node: Any = _schema()
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "number" and isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _TYPES[name])


def _describe(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    kind = next((t for t in ("boolean", "integer", "number", "string", "array", "object", "null") if _is_type(value, t)),
                None)
    return _TYPE_NAMES[kind] if kind else type(value).__name__


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _join(field: str, key: Any) -> str:
    return "%s.%s" % (field, key) if field else str(key)


def _line(mapping: dict, key: Any = None) -> int:
    """The line of `key` in `mapping` (of the mapping itself for None), as the loader recorded it."""
    lines = mapping.get(LINES, {})
    return lines.get(key, lines.get(None, 0))


def _clean(value: Any) -> Any:
    """Drop the loader's line marks."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != LINES}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _no_duplicate_ids(rules: List[Rule], where: _Where) -> None:
    seen = set()
    for rule in rules:
        if rule.id in seen:
            raise where.fail("id", "duplicate rule id '%s'" % rule.id, int(rule.source.rpartition(":")[2]))
        seen.add(rule.id)


def builtin_rule_files() -> List[Path]:
    """The rules shipped with the package (rules/*.yaml in a checkout)."""
    return sorted(builtin_rules_dir().glob("*.yaml"), key=lambda p: p.name)


def load_rules(extra_files: List[Path] = ()) -> List[Rule]:
    """Built-in rules, then the user's; a user rule with a built-in id replaces it."""
    by_id: Dict[str, Rule] = {}
    for path in builtin_rule_files() + [Path(p) for p in extra_files]:
        for rule in load_rule_file(path):
            by_id[rule.id] = rule
    return sorted(by_id.values(), key=lambda r: (-r.priority, r.family, r.id))
