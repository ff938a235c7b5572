"""The pipeline: read -> lift -> passes -> validate -> lower -> write.

Passes are functions ``(ir, opset) -> None`` that edit the IR in place; the
list grows as the transpiler learns more rewrites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

from .errors import IncompatibleModel
from .ir import GraphDefIR, lift
from .readers import Model, read_model
from .releases import Opset, catalog
from .report import Report
from .validate import validate
from .writer import check_output_path, write_model

Pass = Callable[[GraphDefIR, Opset], None]

#: Passes run in order on every graph of the model.
PASSES: List[Pass] = []


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


def convert(path: Path, out: Path, to: str, force: bool = False, checkpoint: Optional[Path] = None) -> Report:
    """Rewrite the model for `to` and write it to `out`; refuse if it still would not load."""
    opset = catalog().opset(to)
    check_output_path(path, out, force)
    model = read_model(path, checkpoint)
    irs = [lift(mg.graph_def) for mg in model.meta_graphs]
    for ir in irs:
        for run_pass in PASSES:
            run_pass(ir, opset)
    report = Report(model.describe(), opset.short,
                    [(graph_label(model, i), validate(ir, opset)) for i, ir in enumerate(irs)])
    if report.blocking:
        raise IncompatibleModel(report.summary(), report)
    for mg, ir in zip(model.meta_graphs, irs):
        mg.graph_def.CopyFrom(ir.lower())
    write_model(model, out, opset, force)
    return report
