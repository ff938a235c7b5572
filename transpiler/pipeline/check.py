"""`check`: what blocks loading a model, unchanged, in a release.

Apart from convert.py so that the check command imports only what it runs (reading, lifting,
validating, the report, and the clear-devices pass for its GPU note, which brings passes.base and
the rule engine's modules, about 6 ms), not the other passes or the back ends a conversion needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from transpiler.io.protos import meta_graph_pb2
from transpiler.io.readers import Model, read_model
from transpiler.ir.graph import lift
from transpiler.knowledge.releases import Opset, catalog
from transpiler.passes.base import context_for
from transpiler.passes.clear_devices import ClearDevices
from transpiler.passes.validate import Problem, producer_ops, validate
from transpiler.pipeline.report import Report


def graph_label(model: Model, index: int) -> str:
    tags = ",".join(model.meta_graphs[index].meta_info_def.tags)
    return "meta graph %d (tags: %s)" % (index, tags or "-")


def check(path: Path, to: str, checkpoint: Optional[Path] = None) -> Report:
    """What blocks loading the model, unchanged, in `to`."""
    opset = catalog().opset(to)
    model = read_model(path, checkpoint, require_variables=False)
    sections, notes = [], []
    for i, mg in enumerate(model.meta_graphs):
        ir = lift(mg.graph_def)
        problems = validate(ir, opset, producer_ops(mg), as_written=False)
        sections.append((graph_label(model, i), _version_problems(mg, opset) + problems))
        # GPU pins do not block a GPU build, but a CPU-only one refuses them: say so, as convert does
        notes.extend(n for n in ClearDevices().run(ir, context_for(opset)).notes if n not in notes)
    return Report(model.describe(), opset.short, sections + _checkpoint_sections(model, opset), notes=notes)


def _version_problems(meta_graph: meta_graph_pb2.MetaGraphDef, opset: Opset) -> List[Problem]:
    """A producer version the target's meta graph importer cannot parse (`check` only: the writer stamps
    the target's own version)."""
    version = meta_graph.meta_info_def.tensorflow_version
    if not version or opset.reads_legacy_tf_version:
        return []
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
        return []
    except InvalidVersion:
        return [Problem("meta-graph", "meta graph", "meta_info_def.tensorflow_version",
                        "%r is not a PEP 440 version, which TF %s's importer refuses (InvalidVersion)"
                        % (version, opset.short))]


def _checkpoint_sections(model: Model, opset: Opset) -> list:
    """The model's checkpoint as the target would read it unchanged: an index table with snappy-compressed
    blocks where the release cannot decompress them (TF 1.4's wheel; `check` only: the writer rewrites it)."""
    if model.checkpoint is None or opset.reads_snappy_index:
        return []
    from transpiler.io import tensor_bundle

    index = tensor_bundle.index_filename(model.checkpoint)
    if not index.is_file() or not tensor_bundle.is_compressed(index):
        return []
    return [("checkpoint", [Problem("checkpoint-format", "checkpoint index", index.name,
                                    "its table's blocks are snappy-compressed, which TF %s cannot read "
                                    "(a conversion writes them uncompressed)" % opset.short)])]
