"""Write a model for the target release, atomically.

Everything is built in a temporary sibling of OUT and renamed into place at
the end, so a failure or Ctrl-C never leaves a partial OUT behind. The model's
graphs are stamped with the target's version facts (``tensorflow_version``,
GraphDef producer, ``stripped_op_list`` from the target's opset).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from transpiler.io.checkpoints import copy_checkpoint
from transpiler.errors import TranspileError
from transpiler.io.protos import graph_pb2, meta_graph_pb2, text_format
from transpiler.io.readers import SAVED_MODEL_FILES, Kind, Model
from transpiler.knowledge.releases import Opset

#: Directories of a SavedModel copied as they are. fingerprint.pb is left out:
#: it hashes the original graph, which no longer matches.
SAVED_MODEL_DIRS = ("assets", "assets.extra")


def used_ops(graph_def: graph_pb2.GraphDef) -> set:
    """Op names used by the graph and its functions (calls to library functions excluded)."""
    functions = {f.signature.name for f in graph_def.library.function}
    ops = {n.op for n in graph_def.node}
    ops.update(n.op for f in graph_def.library.function for n in f.node_def)
    return ops - functions


def stamp_target(mg: meta_graph_pb2.MetaGraphDef, opset: Opset) -> None:
    """Declare the target release in a MetaGraphDef, as that release's own writer would."""
    mg.graph_def.versions.producer = opset.graph_def_version
    info = mg.meta_info_def
    info.tensorflow_version = opset.release
    info.tensorflow_git_version = "tf-transpile"
    info.stripped_op_list.Clear()
    op_defs = [opset.op(name) for name in sorted(used_ops(mg.graph_def))]
    info.stripped_op_list.op.extend(op_def for op_def in op_defs if op_def is not None)
    if opset.is_tf1:
        _assets_as_collection(mg)


#: Where TF 1.x loaders look for the asset files to feed into the main op.
ASSETS_COLLECTION = "saved_model_assets"


def _assets_as_collection(mg: meta_graph_pb2.MetaGraphDef) -> None:
    """TF 2 lists assets in `asset_file_def`; TF 1.x loaders only read the collection."""
    if not mg.asset_file_def or ASSETS_COLLECTION in mg.collection_def:
        return
    for asset in mg.asset_file_def:
        mg.collection_def[ASSETS_COLLECTION].any_list.value.add().Pack(asset)


def write_model(model: Model, out: Path, opset: Opset, force: bool = False) -> None:
    """Write `model` (already rewritten) to `out` in the input's own format."""
    for mg in model.meta_graphs:
        stamp_target(mg, opset)
    writer = {Kind.SAVED_MODEL: _write_saved_model, Kind.GRAPH_DEF: _write_graph_def,
              Kind.META_GRAPH: _write_meta_graph}[model.kind]
    with staged(Path(out), force) as tmp:
        writer(model, tmp)


def check_output_path(model_path: Path, out: Path, force: bool) -> None:
    """Refuse before any work is done: OUT exists, or OUT is (inside) the input."""
    src, dst = Path(model_path).resolve(), Path(out).resolve()
    if dst == src or src in dst.parents or (src.is_file() and dst == src.parent):
        raise TranspileError("output %s would overwrite the input %s" % (out, model_path))
    if dst.exists() and not force:
        raise TranspileError("output %s already exists (use --force to replace it)" % out)
    if not dst.parent.is_dir():
        raise TranspileError("output directory %s does not exist" % dst.parent)


@contextlib.contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temp path beside `out`; on success it replaces `out`, on any failure it vanishes."""
    workdir = Path(tempfile.mkdtemp(prefix=".%s.tmp-" % out.name, dir=out.parent))
    tmp = workdir / out.name
    try:
        yield tmp
        if out.exists() or out.is_symlink():
            if not force:
                raise TranspileError("output %s already exists (use --force to replace it)" % out)
            if out.is_dir():
                os.replace(out, workdir / ".replaced")
            else:
                out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _serialize(message, text: bool) -> bytes:
    return text_format.MessageToString(message).encode() if text else message.SerializeToString(deterministic=True)


def _write_saved_model(model: Model, tmp: Path) -> None:
    tmp.mkdir()
    sm = model.saved_model
    del sm.meta_graphs[:]
    sm.meta_graphs.extend(model.meta_graphs)
    (tmp / SAVED_MODEL_FILES[model.text]).write_bytes(_serialize(sm, model.text))
    for name in SAVED_MODEL_DIRS:
        if (model.path / name).is_dir():
            shutil.copytree(model.path / name, tmp / name)
    (tmp / "variables").mkdir()
    if model.checkpoint is not None:
        _write_checkpoint(model, tmp / "variables" / "variables")


def _write_graph_def(model: Model, tmp: Path) -> None:
    tmp.write_bytes(_serialize(model.meta_graphs[0].graph_def, model.text))


def _write_meta_graph(model: Model, tmp: Path) -> None:
    """A directory holding NAME.meta and the checkpoint beside it, as tf.train.Saver lays them out."""
    tmp.mkdir()
    (tmp / model.path.name).write_bytes(_serialize(model.meta_graphs[0], model.text))
    if model.checkpoint is not None:
        _write_checkpoint(model, tmp / model.checkpoint.name)
        (tmp / "checkpoint").write_text('model_checkpoint_path: "%s"\n' % model.checkpoint.name)



def _write_checkpoint(model: Model, prefix: Path) -> None:
    """Copy the checkpoint files, or stream its tensors under new keys when the passes renamed them."""
    if model.checkpoint_keys:
        from transpiler.io.checkpoints import rename_checkpoint

        rename_checkpoint(model.checkpoint, prefix, model.checkpoint_keys)
    else:
        copy_checkpoint(model.checkpoint, prefix)
