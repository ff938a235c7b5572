"""`tf-transpile rules list|check|test`: the rule author's tools."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

from transpiler.cli.output import say
from transpiler.errors import TranspileError
from transpiler.knowledge.releases import Catalog, catalog
from transpiler.engine.rule_pass import RulePass
from transpiler.engine.rule_files import Rule, RuleFileError, load_rule_file, load_rules
from transpiler.engine.templates import TemplateError, render, render_nodes, render_text
from transpiler.pipeline.markdown import md_table


#: Columns of `rules list`: header, and the value of a rule.
LIST_COLUMNS = (("ID", lambda r: r.id), ("FAMILY", lambda r: r.family), ("MATCH", lambda r: r.op),
                ("ACTION", lambda r: r.action), ("WHEN", lambda r: _when(r)))


def list_rules(args) -> int:
    """Every rule (active for --to V), as an aligned table with a header or, with --format json, a JSON list."""
    rules = load_rules(args.rules)
    if args.to:
        opset = catalog().opset(args.to)
        rules = RulePass(rules, opset).rules
    strips = (list(stripped_attrs(catalog(), catalog().resolve(args.to)))
              if args.to and (args.verbose or args.format == "json") else [])
    if args.format == "json":
        print(json.dumps([_rule_json(rule, strips) for rule in rules], indent=2, sort_keys=True))
        return 0
    if args.format == "markdown":
        print(_rules_markdown(rules, strips if args.verbose else [], args.to))
        return 0
    rows = [[value(rule) for _, value in LIST_COLUMNS] for rule in rules]
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, (name, _) in enumerate(LIST_COLUMNS)]
    print(_row([name for name, _ in LIST_COLUMNS], widths))
    for rule, row in zip(rules, rows):
        print(_row(row, widths))
        if args.verbose and rule.action == "strip_default_attrs":
            for op, attr, release in strips:
                print("    %s.%s (added in %s)" % (op, attr, release))
    print("%d rule(s)%s" % (len(rules), " active for TF %s" % catalog().opset(args.to).short if args.to else ""))
    return 0


def _rules_markdown(rules: List[Rule], strips: list, to) -> str:
    """`rules list` as a Markdown table (and, with -v and --to, the attrs the generic rule strips)."""
    where = " active for TF %s" % catalog().opset(to).short if to else ""
    lines = ["## tf-transpile: %d rule(s)%s" % (len(rules), where), ""]
    lines += md_table([name for name, _ in LIST_COLUMNS], [[value(rule) for _, value in LIST_COLUMNS] for rule in rules])
    if strips:
        lines += ["", "### Attrs the generic rule strips", ""]
        lines += md_table(("Op", "Attr", "Added in"), strips)
    return "\n".join(lines)


def _row(cells: List[str], widths: List[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()


def _rule_json(rule: Rule, strips: list) -> dict:
    document = {"id": rule.id, "family": rule.family, "match": rule.match, "action": rule.action,
                "when": rule.when, "when_text": _when(rule), "priority": rule.priority, "why": rule.why,
                "source": rule.source, "examples": len(rule.examples)}
    if rule.action == "strip_default_attrs" and strips:
        document["strips"] = [{"op": op, "attr": attr, "added_in": release} for op, attr, release in strips]
    return document


def _when(rule: Rule) -> str:
    when = rule.when or ({"target_lacks_op": rule.op} if rule.op != "*" else {"always": ""})
    return ", ".join(("%s %s" % (k.replace("_", " "), v)).strip() for k, v in sorted(when.items()))


def stripped_attrs(cat: Catalog, release: str) -> Iterator[tuple]:
    """(op, attr, release that added it) for every op the target has whose newer versions added attrs."""
    for op in sorted(cat.ops()):
        target = cat.op_def(op, release)
        if target is None:
            continue
        known = {a.name for a in target.attr}
        newest = cat.op_def(op, cat.last_release(op))
        for attr in newest.attr:
            if attr.name not in known and attr.HasField("default_value"):
                yield op, attr.name, cat.first_release(op, attr.name, after=release)


def check_rules(args) -> int:
    """Lint every file and list every problem found, each with its file:line: those that make a file
    unusable (YAML, schema, a template failing on an example) as errors on stderr, exit 2; findings
    against the opset data (an unknown op, with the close names) on stdout, exit 1."""
    errors = findings = 0
    for path in args.files:
        for _, usable, message in check_file(path):
            if usable:
                findings += 1
                print(message, flush=True)
            else:
                errors += 1
                print("tf-transpile: error: %s" % message, file=sys.stderr, flush=True)
    say("%d file(s), %d problem(s)" % (len(args.files), errors + findings))
    return 2 if errors else 1 if findings else 0


def check_file(path: Path) -> List[Tuple[int, bool, str]]:
    """(line, usable, message) of every problem of one rule file, in file order: `usable` is False for a
    problem that makes the file unusable (rules that load are linted all the same), True for a finding."""
    problems: List[RuleFileError] = []
    try:
        rules = load_rule_file(path, problems)
    except RuleFileError as exc:  # cannot be read or parsed at all
        return [(exc.line, False, message) for message in exc.problems]
    found = [(p.line, False, message) for p in problems for message in p.problems]
    for rule in rules:
        try:
            for field, message in lint_rule(rule, catalog()):
                found.append((_line_of(rule, field), True, _finding(rule, field, message)))
        except RuleFileError as exc:
            found.append((exc.line, False, str(exc)))
    return sorted(found, key=lambda item: item[0])


def lint_file(path: Path) -> List[str]:
    """Findings against the opset data for every rule of `path` (ops and attrs it names, ops its
    templates emit). Raises RuleFileError when the file does not load or a template fails on an example."""
    rules = load_rule_file(path)
    return [_finding(rule, field, message) for rule in rules for field, message in lint_rule(rule, catalog())]


def _finding(rule: Rule, field: str, message: str) -> str:
    return "%s: rule '%s': field '%s': %s" % (rule.where(field.partition(" ")[0]), rule.id, field, message)


def _line_of(rule: Rule, field: str) -> int:
    return int(rule.where(field.partition(" ")[0]).rpartition(":")[2] or 0)


def lint_rule(rule: Rule, cat: Catalog) -> Iterator[Tuple[str, str]]:
    """(field, message) of each finding against the opset data."""
    ops = [("match.op", rule.op)] if rule.op != "*" else []
    if rule.action == "rename" and isinstance(rule.spec, dict) and "op" in rule.spec:
        ops.append(("rename.op", rule.spec["op"]))
    ops += [("when." + k, str(v).partition(".")[0]) for k, v in rule.when.items()
            if k in ("target_lacks_op", "target_has_op", "target_lacks_attr")]
    if "target_before" in rule.when:
        try:
            cat.resolve(str(rule.when["target_before"]))
        except TranspileError as exc:
            yield "when.target_before", str(exc)
    for field, op in ops:
        if not _known_op(cat, op):
            yield field, cat.unknown_op(op)
    if not _known_op(cat, rule.op):
        return  # nothing else can be checked against an op no release has
    if cat.last_release(rule.op):
        newest = cat.op_def(rule.op, cat.last_release(rule.op))
        names = {a.name for a in newest.attr}
        for attr in list((rule.match.get("attrs") or {})) + list(rule.match.get("default_attrs") or []):
            if attr not in names:
                yield "match.attrs", "op %s has no attr '%s'%s" % (rule.op, attr, _close(attr, names))
    yield from _lint_templates(rule, cat)


def _known_op(cat: Catalog, op: str) -> bool:
    return op == "*" or cat.last_release(op) is not None or bool(cat.contrib_releases(op))


def _close(name: str, names) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=3)
    return "; did you mean %s?" % " or ".join(close) if close else ""


def _lint_templates(rule: Rule, cat: Catalog) -> Iterator[Tuple[str, str]]:
    """Render every template of the rule on each example: a template that fails is a RuleFileError;
    the ops a decomposition emits must exist somewhere."""
    from transpiler.engine.examples import build_example, target_for
    from transpiler.ir.graph import lift

    for index, example in enumerate(rule.examples if rule.templates() else []):
        options = example.get("options")
        release = example.get("target") or target_for(rule, cat, [rule], options)
        if release is None:
            yield "when", "the rule is active for no known release"
            return
        field = "examples[%d]" % index
        try:
            rules = RulePass([rule], cat.opset(release), options)
            graph_def, _ = build_example(rule, example, rules, None, sample=False)
            ir = lift(graph_def)
        except (TranspileError, KeyError, ValueError) as exc:
            yield field, "cannot build the example: %s" % exc
            continue
        context = rules.template_context(ir, ir["subject"])
        for name, source in rule.templates():
            try:
                rendered = _RENDER.get(name, render_text)(source, context)
            except TemplateError as exc:
                raise RuleFileError("%s: rule '%s': field '%s' (example %d): %s"
                                    % (rule.where(name), rule.id, name, index, exc),
                                    _line_of(rule, name)) from None
            for spec in rendered if name == "decompose" else []:
                if cat.last_release(spec.op) is None and not cat.contrib_releases(spec.op):
                    yield ("decompose (example %d)" % index,
                           "emits op %s, unknown to every known release%s" % (spec.op, cat.did_you_mean(spec.op)))


#: How each template field renders (the others, refuse and outputs[i], are plain text).
_RENDER = {"decompose": render_nodes, "outputs": render}


def _report(line: str, failed: bool) -> None:
    """A failure always prints; the rest not with -q."""
    if failed:
        print(line)
    else:
        say(line)


def test_rules(args) -> int:
    from transpiler.engine.examples import run_examples

    rules = load_rules(args.files)
    chosen = [r for r in rules if not args.files or any(r.source.startswith(str(f)) for f in args.files)]
    failed = not_run = 0
    for rule in chosen:
        if not rule.examples:
            line = "%-34s no examples%s" % (rule.id, " (required for decompositions)" if rule.action == "decompose" else "")
            _report(line, failed=rule.action == "decompose")
            failed += rule.action == "decompose"
            continue
        try:
            results = run_examples(rule, rules)
        except TranspileError as exc:  # the example cannot be built: a typo in an op or attr name
            print("%-34s FAIL  %s: %s" % (rule.id, rule.source, exc))
            failed += 1
            continue
        for result in results:
            state = {True: "ok  ", False: "FAIL", None: "n/a "}[result.ok]
            line = "%-34s example %d  TF %-7s %s  %s" % (rule.id, result.index, result.target, state, result.message)
            _report(line, failed=result.ok is False)
            failed += result.ok is False
            not_run += result.ok is None
    say("%d rule(s), %d failure(s), %d example(s) not run here" % (len(chosen), failed, not_run))
    return 1 if failed else 0
