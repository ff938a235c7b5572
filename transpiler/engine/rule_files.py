"""Load rule files (rules/*.yaml) and check them against the rule schema.

A bad rule file is a one-line error naming file:line, rule id and field.
The schema is data too (``data/rule.schema.json``, also for editors); this
module enforces the parts of it that matter with plain code, so a user sees
"rules/x.yaml:12: rule 'leaky-relu': field 'match.op': required".
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from transpiler.engine.builtin import builtin_rules_dir
from transpiler.errors import TranspileError

ACTIONS = ("rename", "decompose", "strip_default_attrs", "refuse")


class RuleFileError(TranspileError):
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


class _LineLoader(yaml.SafeLoader):
    """safe_load that remembers the line of every mapping (as key '__line__')."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


@dataclasses.dataclass
class _Where:
    file: str
    line: int
    rule: Optional[str]

    def fail(self, field: str, message: str) -> RuleFileError:
        rule = " rule '%s':" % self.rule if self.rule else ""
        return RuleFileError("%s:%d:%s field '%s': %s" % (self.file, self.line, rule, field, message))


def schema() -> dict:
    return json.loads((resources.files("transpiler") / "data" / "rule.schema.json").read_text())


def load_rule_file(path: Path) -> List[Rule]:
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(), Loader=_LineLoader)
    except OSError as exc:
        raise RuleFileError("%s: cannot read rule file (%s)" % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise RuleFileError("%s:%d: not valid YAML (%s)" % (path, line, getattr(exc, "problem", exc))) from None
    where = _Where(str(path), 1, None)
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise where.fail("rules", "a rule file is a mapping with a 'rules' list")
    family = doc.get("family", path.stem)
    _no_unknown_keys(doc, {"family", "rules", "__line__"}, where, "")
    rules = [_parse_rule(r, family, str(path)) for r in doc["rules"]]
    _no_duplicate_ids(rules, where)
    return rules


def _parse_rule(raw: Any, family: str, path: str) -> Rule:
    if not isinstance(raw, dict):
        raise _Where(path, 1, None).fail("rules[]", "each rule is a mapping")
    where = _Where(path, raw.get("__line__", 1), raw.get("id"))
    for field in ("id", "why", "match"):
        if field not in raw:
            raise where.fail(field, "required")
    _no_unknown_keys(raw, {"id", "why", "match", "when", "priority", "outputs", "examples", "__line__"} | set(ACTIONS),
                     where, "")
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise where.fail("|".join(ACTIONS), "exactly one action is required, found %s" % (actions or "none"))
    match = _clean(raw["match"])
    if not isinstance(match, dict) or not isinstance(match.get("op"), str):
        raise where.fail("match.op", "required: the op type this rule rewrites ('*' for any)")
    _no_unknown_keys(match, {"op", "attrs", "default_attrs", "non_default_attrs", "inputs", "unused_outputs",
                             "const_inputs", "input_ops"},
                     where, "match.")
    for key in ("const_inputs", "input_ops"):
        if key in match and not (isinstance(match[key], dict) and all(_is_index(k) for k in match[key])):
            raise where.fail("match." + key, "a mapping {input index: value}")
    when = _clean(raw.get("when") or {})
    _no_unknown_keys(when, {"target_lacks_op", "target_lacks_attr", "target_has_op", "target_before", "option"},
                     where, "when.")
    action = actions[0]
    spec = _clean(raw[action])
    _check_action(action, spec, raw, where)
    return Rule(id=str(raw["id"]), family=family, why=str(raw["why"]).strip(), match=match, when=when,
                action=action, spec=spec, outputs=raw.get("outputs"), priority=int(raw.get("priority", 0)),
                examples=[_clean(e) for e in raw.get("examples") or []], source="%s:%d" % (path, where.line))


def _check_action(action: str, spec: Any, raw: dict, where: _Where) -> None:
    if action == "rename":
        if not isinstance(spec, dict) or not isinstance(spec.get("op", ""), str):
            raise where.fail("rename", "a mapping: {op, drop_attrs, remove_attrs, set_attrs, rename_attrs}")
        _no_unknown_keys(spec, {"op", "drop_attrs", "remove_attrs", "set_attrs", "rename_attrs"}, where, "rename.")
    elif action == "decompose":
        if not isinstance(spec, str):
            raise where.fail("decompose", "a jinja2 template (a YAML block string) rendering a list of nodes")
        from transpiler.engine.templates import check_template

        problem = check_template(spec)
        if problem:
            raise where.fail("decompose", problem)
        if "outputs" in raw and not isinstance(raw["outputs"], (list, str)):
            raise where.fail("outputs", "a list of tensors, one per output of the matched node"
                                        " (or a template rendering that list)")
        if isinstance(raw.get("outputs"), str):
            problem = check_template(raw["outputs"])
            if problem:
                raise where.fail("outputs", problem)
    elif action == "refuse":
        if not isinstance(spec, str):
            raise where.fail("refuse", "the reason, as a string")
        from transpiler.engine.templates import check_template

        problem = check_template(spec)  # the reason may name the node's attrs: {{ attrs.equation }}
        if problem:
            raise where.fail("refuse", problem)
    elif action == "strip_default_attrs" and spec is not True:
        raise where.fail("strip_default_attrs", "must be true")
    if action == "decompose" and not raw.get("examples"):
        raise where.fail("examples", "a decomposition needs at least one example (it is its equivalence test)")


def _is_index(key: Any) -> bool:
    return isinstance(key, int) or (isinstance(key, str) and key.isdigit())


def _clean(value: Any) -> Any:
    """Drop the loader's line marks."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _no_unknown_keys(mapping: dict, allowed: set, where: _Where, prefix: str) -> None:
    unknown = sorted(set(mapping) - allowed - {"__line__"})
    if unknown:
        raise where.fail(prefix + unknown[0], "unknown field (allowed: %s)"
                         % ", ".join(sorted(allowed - {"__line__"})))


def _no_duplicate_ids(rules: List[Rule], where: _Where) -> None:
    seen = set()
    for rule in rules:
        if rule.id in seen:
            raise where.fail("id", "duplicate rule id '%s'" % rule.id)
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
