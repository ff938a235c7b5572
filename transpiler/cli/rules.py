"""`tf-transpile rules list|check|test`: the rule author's tools."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List

from transpiler.errors import TranspileError
from transpiler.knowledge.releases import Catalog, catalog
from transpiler.engine.rule_pass import RulePass
from transpiler.engine.rule_files import Rule, RuleFileError, load_rule_file, load_rules
from transpiler.engine.templates import TemplateError, render, render_nodes, render_text


def list_rules(args) -> int:
    rules = load_rules(args.rules)
    if args.to:
        opset = catalog().opset(args.to)
        rules = RulePass(rules, opset).rules
    for rule in rules:
        print("%-34s %-12s %-20s %-19s %s" % (rule.id, rule.family, "match " + rule.op, rule.action, _when(rule)))
        if args.verbose and args.to and rule.action == "strip_default_attrs":
            for op, attr, release in stripped_attrs(catalog(), catalog().resolve(args.to)):
                print("    %s.%s (added in %s)" % (op, attr, release))
    return 0


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
    """Lint every file: a file that cannot be used stops the check (RuleFileError: one line, exit 2);
    findings against the opset data are listed (exit 1)."""
    problems = [p for path in args.files for p in lint_file(path)]
    for problem in problems:
        print(problem)
    print("%d file(s), %d problem(s)" % (len(args.files), len(problems)))
    return 1 if problems else 0


def lint_file(path: Path) -> List[str]:
    """Findings against the opset data for every rule of `path` (ops and attrs it names, ops its
    templates emit). Raises RuleFileError when the file does not load or a template fails on an example."""
    rules = load_rule_file(path)
    return ["%s: rule '%s': %s" % (rule.source, rule.id, msg) for rule in rules for msg in lint_rule(rule, catalog())]


def lint_rule(rule: Rule, cat: Catalog) -> Iterator[str]:
    ops = [rule.op] if rule.op != "*" else []
    if rule.action == "rename" and "op" in rule.spec:
        ops.append(rule.spec["op"])
    ops += [str(v).partition(".")[0] for k, v in rule.when.items()
            if k in ("target_lacks_op", "target_has_op", "target_lacks_attr")]
    if "target_before" in rule.when:
        try:
            cat.resolve(str(rule.when["target_before"]))
        except TranspileError as exc:
            yield "field 'when.target_before': %s" % exc
    for op in ops:
        if cat.last_release(op) is None and not cat.contrib_releases(op):
            yield "field 'match.op'/'rename.op'/'when': op %s is unknown to every known release" % op
    if ops and cat.last_release(rule.op):
        newest = cat.op_def(rule.op, cat.last_release(rule.op))
        names = {a.name for a in newest.attr}
        for attr in list((rule.match.get("attrs") or {})) + list(rule.match.get("default_attrs") or []):
            if attr not in names:
                yield "field 'match.attrs': op %s has no attr '%s'" % (rule.op, attr)
    yield from _lint_templates(rule, cat)


def _lint_templates(rule: Rule, cat: Catalog) -> Iterator[str]:
    """Render every template of the rule on each example: a template that fails is a RuleFileError;
    the ops a decomposition emits must exist somewhere."""
    from transpiler.engine.examples import build_example, target_for
    from transpiler.ir.graph import lift

    for index, example in enumerate(rule.examples if rule.templates() else []):
        options = example.get("options")
        release = example.get("target") or target_for(rule, cat, [rule], options)
        if release is None:
            yield "field 'when': the rule is active for no known release"
            return
        rules = RulePass([rule], cat.opset(release), options)
        try:
            graph_def, _ = build_example(rule, example, rules, None, sample=False)
            ir = lift(graph_def)
        except (TranspileError, KeyError, ValueError) as exc:
            yield "field 'examples[%d]': cannot build the example: %s" % (index, exc)
            continue
        context = rules.template_context(ir, ir["subject"])
        for field, source in rule.templates():
            try:
                rendered = _RENDER.get(field, render_text)(source, context)
            except TemplateError as exc:
                raise RuleFileError("%s: rule '%s': field '%s' (example %d): %s"
                                    % (rule.source, rule.id, field, index, exc)) from None
            for spec in rendered if field == "decompose" else []:
                if cat.last_release(spec.op) is None:
                    yield "field 'decompose' (example %d): emits unknown op %s" % (index, spec.op)


#: How each template field renders (the others, refuse and outputs[i], are plain text).
_RENDER = {"decompose": render_nodes, "outputs": render}


def test_rules(args) -> int:
    from transpiler.engine.examples import run_examples

    rules = load_rules(args.files)
    chosen = [r for r in rules if not args.files or any(r.source.startswith(str(f)) for f in args.files)]
    failed = not_run = 0
    for rule in chosen:
        if not rule.examples:
            print("%-34s no examples%s" % (rule.id, " (required for decompositions)" if rule.action == "decompose" else ""))
            failed += rule.action == "decompose"
            continue
        for result in run_examples(rule, rules):
            state = {True: "ok  ", False: "FAIL", None: "n/a "}[result.ok]
            print("%-34s example %d  TF %-7s %s  %s" % (rule.id, result.index, result.target, state, result.message))
            failed += result.ok is False
            not_run += result.ok is None
    print("%d rule(s), %d failure(s), %d example(s) not run here" % (len(chosen), failed, not_run))
    return 1 if failed else 0
