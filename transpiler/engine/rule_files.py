"""Load rule files (rules/*.yaml) and check them against the rule schema.

Rule files are untrusted input. A file is read up to MAX_FILE_BYTES, must be
UTF-8, and is parsed by safe_yaml (safe tags only, bounded nesting and alias
expansion). Every field is then checked against ``data/rule.schema.json``
(the schema editors use; `_validate` interprets the keywords it uses), and
the templates parse in the sandbox. A bad rule file is one RuleFileError
naming file:line, rule id and field, never a traceback:
"rules/x.yaml:12: rule 'leaky-relu': field 'match.op': required". Loading
goes on past a problem to find the others: the error's message is the first
(and says how many more), its `problems` are all of them, one line each, in
file order (what `tf-transpile rules check` prints).
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
from typing import Any, Dict, List, Optional, Sequence, Tuple

from transpiler.engine import RuleError
from transpiler.engine.rule_cache import cached_rules
from transpiler.engine.builtin import builtin_rules_dir

ACTIONS = ("rename", "decompose", "strip_default_attrs", "refuse")

#: Larger rule files are refused (the largest built-in one is 37 KB).
MAX_FILE_BYTES = 256 * 1024
#: Elements an example input may hold (its shape's product): `rules test` makes arrays of that size.
MAX_EXAMPLE_ELEMENTS = 1 << 20
#: Key under which the loader stores, in every mapping, the line of the mapping (key None) and of each key.
LINES = "__lines__"


class RuleFileError(RuleError):
    """A rule file that does not follow the schema: `problems` lists every problem found (one line each)."""

    def __init__(self, message: str, line: int = 0, problems: Sequence[str] = ()):
        super().__init__(message)
        self.line = line
        self.problems = list(problems) or [str(self)]


def _combined(problems: List[RuleFileError]) -> RuleFileError:
    """One error for all the problems of a file: the first one's message, saying how many more there are."""
    problems = sorted(problems, key=lambda p: p.line)
    first = problems[0]
    if len(problems) == 1:
        return first
    more = "%s (and %d more problem(s) in the file: `tf-transpile rules check FILE` lists them all)" % (
        first, len(problems) - 1)
    return RuleFileError(more, first.line, [p for problem in problems for p in problem.problems])


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
    #: Line of each field in the file ("match.op", "when.target_lacks_op", "examples[0]", ...).
    lines: Dict[str, int] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def op(self) -> str:
        return self.match["op"]

    def where(self, field: str) -> str:
        """file:line of `field` of the rule (of the rule itself when its line is not known)."""
        file, _, line = self.source.rpartition(":")
        return "%s:%d" % (file, self.lines.get(field) or int(line or 0)) if file else self.source

    def templates(self) -> List[Tuple[str, str]]:
        """(field, source) of each template of the rule: decompose or refuse, and outputs."""
        found = [(self.action, self.spec)] if self.action in ("decompose", "refuse") else []
        if isinstance(self.outputs, str):
            found.append(("outputs", self.outputs))
        else:
            found += [("outputs[%d]" % i, o) for i, o in enumerate(self.outputs or [])]
        return found


@functools.lru_cache(maxsize=1)
def _line_loader() -> type:
    """The bounded safe loader, remembering in each mapping the line of the mapping and of each key.

    Made on first use, with PyYAML imported then: the parse cache (engine/rule_cache.py) leaves most
    commands nothing to parse, and importing PyYAML up front cost each of them ~0.05 s of start-up."""
    from transpiler.engine import safe_yaml

    class LineLoader(safe_yaml.BoundedLoader):
        def construct_mapping(self, node, deep=False):
            mapping = super().construct_mapping(node, deep=deep)
            lines = {None: node.start_mark.line + 1}
            for key_node, _ in node.value:
                lines.setdefault(self.construct_object(key_node), key_node.start_mark.line + 1)  # memoized
            mapping[LINES] = lines
            return mapping

    return LineLoader


@dataclasses.dataclass
class _Where:
    file: str
    line: int
    rule: Optional[str]
    #: Every problem found so far in the file (shared by the file's _Where and its rules').
    problems: List[RuleFileError] = dataclasses.field(default_factory=list)

    def fail(self, field: str, message: str, line: Optional[int] = None) -> RuleFileError:
        rule = " rule '%s':" % self.rule if self.rule else ""
        line = line or self.line
        return RuleFileError("%s:%d:%s field '%s': %s" % (self.file, line, rule, field, message), line)

    def note(self, field: str, message: str, line: Optional[int] = None) -> None:
        """Record a problem and go on looking for others."""
        self.problems.append(self.fail(field, message, line))


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads((resources.files("transpiler") / "data" / "rule.schema.json").read_text())


def schema() -> dict:
    """The JSON Schema of rule files (a copy to keep)."""
    return copy.deepcopy(_schema())


def load_rule_file(path: Path, problems: Optional[List[RuleFileError]] = None) -> List[Rule]:
    """The rules of one file; RuleFileError (one line, file:line, rule, field; `.problems`: all of them) when it
    is not a valid rule file. Given a `problems` list, every problem is appended to it instead and the file's
    valid rules are returned (a file that cannot be read or parsed at all still raises)."""
    path = Path(path)
    text = _read(path)
    import yaml  # here, not at the top: see _line_loader

    from transpiler.engine import safe_yaml

    try:
        doc = safe_yaml.load(text, _line_loader())
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
    rules: List[Rule] = []
    if not where.problems:  # the file's own fields (family, rules) are sound: on to each rule
        family = doc.get("family", path.stem)
        rule_line = _line(doc, "rules")
        for i, raw in enumerate(doc["rules"]):
            try:
                rule = _parse_rule(raw, "rules[%d]" % i, family, where, rule_line)
            except RuleFileError as exc:
                where.problems.append(exc)
                continue
            if rule is not None:
                rules.append(rule)
        _no_duplicate_ids(rules, where)
    if problems is not None:
        problems.extend(sorted(where.problems, key=lambda p: p.line))
        return rules
    if where.problems:
        raise _combined(where.problems)
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


def _parse_rule(raw: Any, field: str, family: str, top: _Where, line: int) -> Optional[Rule]:
    """The rule, or None when problems were recorded in `top.problems` (one that stops the rule is raised)."""
    if not isinstance(raw, dict):
        raise top.fail(field, "each rule is a mapping", line)
    where = _Where(top.file, _line(raw), raw["id"] if isinstance(raw.get("id"), str) else None, top.problems)
    before = len(where.problems)
    _validate(raw, _schema()["definitions"]["rule"], "", where, where.line)
    if len(where.problems) > before:
        return None
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise where.fail("|".join(ACTIONS), "exactly one action is required, found %s" % (actions or "none"))
    if "outputs" in raw and actions != ["decompose"]:
        raise where.fail("outputs", "only a decompose rule has outputs", _line(raw, "outputs"))
    raw_lines, raw = raw, _clean(raw)
    rule = Rule(id=raw["id"], family=family, why=raw["why"].strip(), match=raw["match"], when=raw.get("when", {}),
                action=actions[0], spec=raw[actions[0]], outputs=raw.get("outputs"),
                priority=raw.get("priority", 0), examples=raw.get("examples", []),
                source="%s:%d" % (where.file, where.line), lines=_field_lines(raw_lines))
    for name, source in rule.templates():
        from transpiler.engine.templates import check_template

        problem = check_template(source)
        if problem:
            where.note(name, problem)
    _check_examples(rule, where)
    return rule if len(where.problems) == before else None


def _check_examples(rule: Rule, where: _Where) -> None:
    """What the schema cannot say: a decomposition has examples, and example inputs are not huge."""
    if rule.action == "decompose" and not rule.examples:
        where.note("examples", "a decomposition needs at least one example (it is its equivalence test)")
    for i, example in enumerate(rule.examples):
        for j, spec in enumerate(example.get("inputs", [])):
            if math.prod(spec.get("shape", [])) > MAX_EXAMPLE_ELEMENTS:
                where.note("examples[%d].inputs[%d].shape" % (i, j),
                                 "more than %d elements" % MAX_EXAMPLE_ELEMENTS)


# ---- the schema's keywords ---------------------------------------------------
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
          "null": type(None)}
_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _validate(value: Any, spec: dict, field: str, where: _Where, line: int) -> None:
    """Raise where.fail(field, ...) unless `value` follows the JSON Schema `spec`; a problem inside a list
    item or a mapping's field is recorded in `where.problems` and the other items and fields are checked.

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
            try:
                _validate(item, spec["items"], "%s[%d]" % (field, i), where,
                          _line(item) if isinstance(item, dict) else line)
            except RuleFileError as exc:
                where.problems.append(exc)


def _validate_mapping(mapping: dict, spec: dict, field: str, where: _Where) -> None:
    here = _line(mapping)
    for key in spec.get("required", ()):
        if key not in mapping:
            where.note(_join(field, key), "required", here)
    for key, value in mapping.items():
        if key != LINES:
            try:
                _validate_field(mapping, key, value, spec, field, where)
            except RuleFileError as exc:
                where.problems.append(exc)


def _validate_field(mapping: dict, key: Any, value: Any, spec: dict, field: str, where: _Where) -> None:
    """One field of a mapping: its name, then its value."""
    known = spec.get("properties", {})
    extra = spec.get("additionalProperties", True)
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


def _field_lines(raw: dict) -> Dict[str, int]:
    """{field: line} of a rule's fields and of the fields and items one level below them."""
    lines: Dict[str, int] = {}
    for key, value in raw.items():
        if key == LINES or not isinstance(key, str):
            continue
        lines[key] = _line(raw, key)
        if isinstance(value, dict):
            lines.update(("%s.%s" % (key, k), _line(value, k)) for k in value if k != LINES and isinstance(k, str))
        elif isinstance(value, list):
            lines.update(("%s[%d]" % (key, i), _line(v) if isinstance(v, dict) else lines[key])
                         for i, v in enumerate(value))
    return lines


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
            where.note("id", "duplicate rule id '%s'" % rule.id, int(rule.source.rpartition(":")[2]))
        seen.add(rule.id)


def builtin_rule_files() -> List[Path]:
    """The rules shipped with the package (rules/*.yaml in a checkout)."""
    return sorted(builtin_rules_dir().glob("*.yaml"), key=lambda p: p.name)


def load_rules(extra_files: List[Path] = ()) -> List[Rule]:
    """Built-in rules, then the user's; a user rule with a built-in id replaces it.

    The Rule objects may be shared with other calls in the process (the parse cache): do not edit them."""
    by_id: Dict[str, Rule] = {}
    # Parsed once per content (engine/rule_cache.py): YAML composing and template checks cost over a second.
    paths = builtin_rule_files() + [Path(p) for p in extra_files]
    for rules in cached_rules(paths, MAX_FILE_BYTES, load_rule_file, Rule):
        for rule in rules:
            by_id[rule.id] = rule
    return sorted(by_id.values(), key=lambda r: (-r.priority, r.family, r.id))
