"""`check`: what blocks loading a model, unchanged, in a release.

Apart from convert.py so that the check command imports only what it runs (reading, lifting,
validating, the report), not the passes, the rule engine and the back ends a conversion needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from transpiler.io.readers import Model, read_model
from transpiler.ir.graph import lift
from transpiler.knowledge.releases import catalog
from transpiler.passes.validate import producer_ops, validate
from transpiler.pipeline.report import Report


def graph_label(model: Model, index: int) -> str:
    tags = ",".join(model.meta_graphs[index].meta_info_def.tags)
    return "meta graph %d (tags: %s)" % (index, tags or "-")


def check(path: Path, to: str, checkpoint: Optional[Path] = None) -> Report:
    """What blocks loading the model, unchanged, in `to`."""
    opset = catalog().opset(to)
    model = read_model(path, checkpoint, require_variables=False)
    sections = []
    for i, mg in enumerate(model.meta_graphs):
        sections.append((graph_label(model, i), validate(lift(mg.graph_def), opset, producer_ops(mg), as_written=False)))
    return Report(model.describe(), opset.short, sections)
