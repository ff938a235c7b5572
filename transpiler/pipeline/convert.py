"""The pipeline: read -> lift -> passes -> validate -> lower -> write.

``plan(model, options)`` runs the passes on every graph and validates the
result; it writes nothing and needs no TF runtime, so ``explain`` is exactly
the part of ``convert`` before writing. ``convert`` then hands the plan to its
back end: the graph writer (backends/writer.py) for a downgrade, the native
TF 2 back end (backends/tf2_native.py) for an upgrade.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional, Sequence

from transpiler.backends import tf2_native
from transpiler.backends.node_order import needs_producers_first, producers_first_order
from transpiler.backends.writer import check_output_path, output_kind, staged, write_model
from transpiler.engine.rule_files import load_rules
from transpiler.engine.rule_pass import Firing
from transpiler.errors import IncompatibleModel, TranspileError
from transpiler.io.protos import meta_graph_pb2
from transpiler.io.readers import Kind, Model, read_model
from transpiler.ir.graph import GraphDefIR, lift, collections_paused
from transpiler.knowledge import opdefs
from transpiler.knowledge.releases import Opset, catalog
from transpiler.options import ConvertOptions
from transpiler.passes.base import Context, PassLog, run_passes
from transpiler.passes.validate import Problem, producer_ops, validate
from transpiler.pipeline.check import check, graph_label  # noqa: F401  (check: re-exported)
from transpiler.pipeline.pipelines import DOWNGRADE, UPGRADE
from transpiler.pipeline.report import Report

#: A meta graph's tag set for TF 1.x SavedModel loaders' serving default.
SERVE = "serve"

#: ConvertOptions.output_form of each kind of OUT.
FORMS = {Kind.SAVED_MODEL: "saved_model", Kind.GRAPH_DEF: "graph_def", Kind.META_GRAPH: "meta_graph"}


@dataclasses.dataclass
class Plan:
    """What a conversion will write: the rewritten graphs (or the TF 2 plan) and the report."""

    model: Model
    opset: Opset
    options: ConvertOptions
    report: Report
    #: One rewritten IR per meta graph of `model` (downgrade).
    irs: List[GraphDefIR]
    #: The native TF 2 back end's plan (upgrade), else None.
    saved_model: Optional[tf2_native.Plan] = None


def explain(path: Path, options: ConvertOptions) -> Report:
    """A dry run of `convert` with the same options: what would fire where, and what would still block."""
    return plan(read_model(path, options.checkpoint, require_variables=False), options).report


def convert(path: Path, out: Path, options: ConvertOptions, keep: Optional[list] = None) -> Report:
    """Rewrite the model for `options.to` and write it to `out`; refuse if it still would not load.

    `keep`: a list the plan (model, IR, lowered graphs) is appended to, for a caller that ends the process next
    and so need not free it object by object (a third of a second at 100 000 nodes)."""
    catalog().opset(options.to)  # an unknown release is a usage error before any reading
    check_output_path(path, out, options.force)
    options = options.replace(output_form=FORMS[output_kind(Path(out))])
    if options.freeze and options.output_form != "graph_def":
        raise TranspileError("--freeze writes a frozen GraphDef: name OUT *.pb or *.pbtxt")
    # The IR makes no reference cycles, and each collection walks all of it made since the last: every stage
    # of a big graph's conversion (lift, passes, validating, ordering, lowering, writing) allocates enough to
    # trigger many, and next to none of them finds garbage.
    with collections_paused():
        result = plan(read_model(path, options.checkpoint), options)
        if result.report.blocking:
            raise IncompatibleModel(result.report.summary(), result.report)
        write(result, Path(out))
    if keep is not None:
        keep.append(result)
    return result.report


def plan(model: Model, options: ConvertOptions) -> Plan:
    """Run the pipeline for `options.to` on every graph of `model` and validate; writes nothing."""
    opset = catalog().opset(options.to)
    rules = load_rules(list(options.rule_files))
    refuse_malformed(model)
    notes = []
    if options.output_form == "saved_model" and tf2_native.wants_tf2_backend(model, opset):
        if len(model.meta_graphs) == 1 or options.tags:
            return _plan_upgrade(model, opset, options, rules)
        notes.append(_every_tag_set_kept(model, options))
    _restrict_for_downgrade(model, options)
    sections, log = [], PassLog()
    irs = [_lifted(mg.graph_def) for mg in model.meta_graphs]
    for i, ir in enumerate(irs):
        graph_log = run_passes(DOWNGRADE, ir, Context(opset, options, rules, model.meta_graphs[i], model))
        sections.append((graph_label(model, i), _validate(ir, opset, graph_log, model.meta_graphs[i])))
        _label_passes(graph_log, sections[-1][0])
        log.extend(graph_log)
    model.checkpoint_keys.update(log.checkpoint_keys)
    report = Report(model.describe(), opset.short, sections, _firing_dicts(log.firings),
                    notes + log.notes, log.passes)
    return Plan(model, opset, options, report, irs)


def _lifted(graph_def) -> GraphDefIR:
    """The IR of `graph_def`, which is left without its nodes and functions: from here on the IR holds them,
    and `write` lowers it back into `graph_def` (a big graph's input GraphDef kept alive beside the IR was a
    tenth of the peak memory)."""
    ir = lift(graph_def)
    graph_def.ClearField("node")
    graph_def.library.ClearField("function")
    return ir


def refuse_malformed(model: Model) -> None:
    """A node no release could load (a required attr missing, an attr of the wrong type, inputs its op does
    not take: a damaged model) is bad input, refused with one line naming it before any pass looks at it."""
    cat = catalog()
    for mg in model.meta_graphs:
        graph = mg.graph_def
        bodies = [(None, graph.node)] + [(f.signature.name, f.node_def) for f in graph.library.function]
        for function, nodes in bodies:
            for node in nodes:
                inputs = sum(1 for i in node.input if not i.startswith("^"))
                problem = opdefs.malformed_node(node.op, node.attr, inputs, cat)
                if problem is not None:
                    where = "function %s, node %s" % (function, node.name) if function else "node %s" % node.name
                    raise TranspileError("%s: not a valid model: %s (%s) %s" % (model.graph_file, where, node.op,
                                                                                 problem))


def _every_tag_set_kept(model: Model, options: ConvertOptions) -> str:
    """A native TF 2 SavedModel holds one meta graph; a model with several that TF 2 loads as they are
    keeps them all (rewritten where the target needs it), so no tag set that loaded stops loading."""
    if options.inputs or options.outputs or options.unfreeze is not None:
        raise TranspileError("the model has %d meta graphs: choose the one to make a native TF 2 SavedModel of "
                             "with --tags (--inputs, --outputs and --unfreeze apply to one)" % len(model.meta_graphs))
    return ("kept all %d tag sets (%s) as TF 1 meta graphs, which tf.saved_model.load(dir, tags) reads; "
            "--tags T makes a native TF 2 SavedModel of one" % (
                len(model.meta_graphs), "; ".join(",".join(mg.meta_info_def.tags) or "-" for mg in model.meta_graphs)))


def _plan_upgrade(model: Model, opset: Opset, options: ConvertOptions, rules) -> Plan:
    notes: List[str] = []
    index = select_meta_graph(model, options.tags)
    mg = model.meta_graphs[index]
    if len(model.meta_graphs) > 1:
        notes.append("converted meta graph %d (tags: %s) of %d" % (index, ",".join(mg.meta_info_def.tags),
                                                                     len(model.meta_graphs)))
    if model.kind is not Kind.SAVED_MODEL:
        notes.append("the output is a TF 2 SavedModel directory (input: a %s)" % model.kind.value)
    single = meta_graph_pb2.MetaGraphDef()
    single.CopyFrom(mg)
    work = dataclasses.replace(model, meta_graphs=[single])
    ir = lift(mg.graph_def)
    ctx = Context(opset, options, rules, mg, model)
    log = run_passes(UPGRADE, ir, ctx)
    notes += log.notes
    problems = _validate(ir, opset, log, mg)
    _label_passes(log, graph_label(work, 0))
    report = Report(work.describe(), opset.short, [(graph_label(work, 0), problems)],
                    _firing_dicts(log.firings), notes, log.passes)
    saved_model = None if report.blocking else tf2_native.plan_saved_model(ir, ctx, notes)
    return Plan(work, opset, options, report, [ir], saved_model)


def _firing_dicts(firings) -> List[dict]:
    """dataclasses.asdict of each Firing, for the report. Their fields are strings (or None), so a dict of
    the fields is the same value: asdict's deep copy of each cost more than the rest of the report."""
    names = [f.name for f in dataclasses.fields(Firing)]
    return [{name: getattr(firing, name) for name in names} for firing in firings]


def _label_passes(log: PassLog, label: str) -> None:
    """Say which graph each pass ran on: a model with several meta graphs runs the passes on each."""
    for entry in log.passes:
        entry["graph"] = label


def _validate(ir: GraphDefIR, opset: Opset, log: PassLog, meta_graph) -> List[Problem]:
    """The fixed last stage: every problem left, with the reason a pass gave for leaving it.

    The same validator and inputs as `check` (the producer's stripped_op_list included).
    """
    problems = [_explain(p, log.refusals) for p in validate(ir, opset, producer_ops(meta_graph))]
    return problems + _behaviour_problems(ir, log, {(p.function, p.node) for p in problems})


def _behaviour_problems(ir: GraphDefIR, log: PassLog, seen: set) -> List[Problem]:
    """A refused op the target has but whose kernel computes other numbers there (a rule's `when:
    target_before`), for nodes still in the graph with that op: passed through it would change numbers."""
    graphs = dict(ir.graphs())
    problems = []
    for (function, node), (op, reason) in sorted(log.behaviour_refusals.items(), key=str):
        graph = graphs.get(function)
        if (function, node) not in seen and graph is not None and node in graph and graph[node].op == op:
            problems.append(Problem("kernel-behaviour", op, node, reason, function))
    return problems


def _explain(problem: Problem, refused: dict) -> Problem:
    """Attach a pass's refusal reason to the problem it leaves behind."""
    reason = refused.get((problem.function, problem.node))
    return dataclasses.replace(problem, detail="%s; %s" % (problem.detail, reason)) if reason else problem


# ---------------------------------------------------------------------------
# writing


def write(result: Plan, out: Path) -> None:
    """Write a plan without blocking problems to `out`, atomically, with its back end."""
    if result.saved_model is not None:
        _write_upgrade(result, out)
        return
    model = result.model
    if result.options.freeze:
        from transpiler.passes.freeze import freeze_model

        freeze_model(model, result.irs[0])
    ordered = needs_producers_first(result.opset)  # TF 1.4-1.7 import in file order: the IR's edges give it
    for mg, ir in zip(model.meta_graphs, result.irs):
        ir.lower(producers_first_order(ir) if ordered else None, into=mg.graph_def)
    write_model(model, out, result.opset, result.options.force, result.options.progress, result.options.link)


def _write_upgrade(result: Plan, out: Path) -> None:
    """TF writes the SavedModel; if the host's TF is not the target, the result goes through a downgrade."""
    opset, report = result.opset, result.report
    with staged(out, result.options.force) as tmp:
        host_dir = tmp.parent / ".tf2-host"
        host = tf2_native.build_saved_model(result.saved_model,
                                            host_dir if tf2_native.host_release() != opset.release else tmp)
        if host != opset.release:
            # Written by the host's TF: take it to the target like any TF 2 SavedModel (e.g. 2.21 -> 2.1).
            options = ConvertOptions(to=opset.release, rule_files=result.options.rule_files,
                                     progress=result.options.progress)
            second = plan(read_model(host_dir), options)
            if second.report.blocking:
                raise IncompatibleModel(second.report.summary(), second.report)
            write(second, tmp)
            report.fired.extend(second.report.fired)
            report.passes.extend(second.report.passes)
            report.notes.append("written by TF %s, then converted for TF %s" % (host, opset.short))


# ---------------------------------------------------------------------------
# meta graphs


def select_meta_graph(model: Model, tags: Optional[Sequence[str]]) -> int:
    """The index of the meta graph tagged exactly `tags` (default: the only one, or the one tagged serve)."""
    tag_sets = [set(mg.meta_info_def.tags) for mg in model.meta_graphs]
    shown = "; ".join(",".join(sorted(t)) or "-" for t in tag_sets)
    if tags:
        found = [i for i, t in enumerate(tag_sets) if t == set(tags)]
        if not found:
            raise TranspileError("no meta graph tagged %s; the model has: %s" % (",".join(tags), shown))
        return found[0]
    if len(tag_sets) == 1:
        return 0
    serve = [i for i, t in enumerate(tag_sets) if t == {SERVE}]
    if len(serve) == 1:
        return serve[0]
    raise TranspileError("the model has %d meta graphs (%s); choose one with --tags" % (len(tag_sets), shown))


def _restrict_for_downgrade(model: Model, options: ConvertOptions) -> None:
    """Apply what of the upgrade options makes sense for a downgrade: --tags keeps one meta graph."""
    if options.inputs or options.outputs or options.unfreeze is not None:
        raise TranspileError("--inputs, --outputs and --unfreeze apply when a TF 1.x model is converted for "
                             "TF 2.x (--to 2.x)")
    if options.tags:
        index = select_meta_graph(model, options.tags)
        model.meta_graphs[:] = [model.meta_graphs[index]]
