"""The pipeline: read -> lift -> passes -> validate -> lower -> write.

Passes are callables ``(ir) -> None`` that edit the IR in place, built for
one target; the rules pass is one of them.
"""

from __future__ import annotations

from pathlib import Path
import dataclasses
from typing import Optional, Sequence

from .errors import IncompatibleModel
from .inline import InlineFunctions, saved_object_functions
from .ir import lift
from .lower_control_flow import LowerControlFlow
from .readers import Model, read_model
from .releases import Opset, catalog
from .report import Report
from .rewrite import RulePass
from .rule_files import load_rules
from .validate import Problem, validate
from .variables import CheckpointNames
from .writer import check_output_path, write_model


def graph_label(model: Model, index: int) -> str:
    tags = ",".join(model.meta_graphs[index].meta_info_def.tags)
    return "meta graph %d (tags: %s)" % (index, tags or "-")


def check(path: Path, to: str, checkpoint: Optional[Path] = None) -> Report:
    """What blocks loading the model, unchanged, in `to`."""
    opset = catalog().opset(to)
    model = read_model(path, checkpoint, require_variables=False)
    sections = []
    for i, mg in enumerate(model.meta_graphs):
        info = mg.meta_info_def
        producer_ops = info.stripped_op_list if info.HasField("stripped_op_list") else None
        sections.append((graph_label(model, i), validate(lift(mg.graph_def), opset, producer_ops)))
    return Report(model.describe(), opset.short, sections)


def explain(path: Path, to: str, checkpoint: Optional[Path] = None, rule_files: Sequence[Path] = ()) -> Report:
    """A dry run of `convert`: what would fire where, and what would still block. Writes nothing."""
    opset = catalog().opset(to)
    return transpile(read_model(path, checkpoint, require_variables=False), opset, rule_files)[1]


def convert(path: Path, out: Path, to: str, force: bool = False, checkpoint: Optional[Path] = None,
            rule_files: Sequence[Path] = (), inline_functions: bool = False, upgrade=None,
            variables: str = "resource", freeze: bool = False) -> Report:
    """Rewrite the model for `to` and write it to `out`; refuse if it still would not load.

    A TF 1.x model for a 2.x target goes to the native TF 2 back end (tf2_backend.py);
    `upgrade` (tf2_backend.UpgradeOptions) carries its --tags/--inputs/--outputs/--unfreeze.
    """
    from . import tf2_backend

    opset = catalog().opset(to)
    check_output_path(path, out, force)
    model = read_model(path, checkpoint)
    if tf2_backend.wants_tf2_backend(model, opset):
        return tf2_backend.upgrade(path, out, opset, force, checkpoint, rule_files, upgrade, model=model)
    if upgrade is not None:
        tf2_backend.restrict_for_downgrade(model, upgrade)
    irs, report = transpile(model, opset, rule_files, inline_functions, variables)
    if report.blocking:
        raise IncompatibleModel(report.summary(), report)
    if freeze:
        from .freeze import freeze_model

        freeze_model(model, irs[0])
    for mg, ir in zip(model.meta_graphs, irs):
        mg.graph_def.CopyFrom(ir.lower())
    write_model(model, out, opset, force)
    return report


def transpile(model: Model, opset: Opset, rule_files: Sequence[Path] = (), inline_functions: bool = False,
              variables: str = "resource") -> tuple:
    """Run the passes on every graph of `model`; (rewritten IRs, report). Writes nothing.

    `variables="ref"` turns resource variables into VariableV2 (rules/ref_variables.yaml).
    """
    rules = RulePass(load_rules(list(rule_files)), opset, {"variables": variables})
    irs = [lift(mg.graph_def) for mg in model.meta_graphs]
    sections, functional_log, functional_refused = [], [], {}
    for i, ir in enumerate(irs):
        keep = saved_object_functions(model.meta_graphs[i], opset)
        for functional in (InlineFunctions(opset, force=inline_functions, keep=keep), LowerControlFlow(opset, keep=keep)):
            functional(ir)
            functional_log += functional.firings
            functional_refused.update(functional.refused)
        if opset.release.startswith("1."):
            names = CheckpointNames()
            names(ir)
            model.checkpoint_keys.update(names.mapping)
        rules(ir)
        refused = {**functional_refused, **rules.refused}
        sections.append((graph_label(model, i), [_explain(p, refused) for p in validate(ir, opset)]))
    fired = [dataclasses.asdict(f) for f in functional_log + rules.fired]
    return irs, Report(model.describe(), opset.short, sections, fired)


def _explain(problem: Problem, refused: dict) -> Problem:
    """Attach a rule's refusal reason to the problem it leaves behind."""
    reason = refused.get((problem.function, problem.node))
    return dataclasses.replace(problem, detail="%s; %s" % (problem.detail, reason)) if reason else problem
