"""Write a model for the target release, atomically.

Everything is built in a temporary sibling of OUT and renamed into place at
the end, so a failure or Ctrl-C never leaves a partial OUT behind. The model's
graphs are stamped with the target's version facts (``tensorflow_version``,
GraphDef producer, ``stripped_op_list`` from the target's opset).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

from transpiler.errors import TranspileError
from transpiler.io.checkpoints import checkpoint_files, copy_checkpoint
from transpiler.io.protos import graph_pb2, meta_graph_pb2, saved_model_pb2, text_format
from transpiler.io.readers import SAVED_MODEL_FILES, Kind, Model
from transpiler.knowledge.releases import Opset, version_key
from transpiler.options import Progress

#: The tag set TF's SavedModel loaders ask for by default.
SERVE = "serve"

#: Directories of a SavedModel copied as they are. fingerprint.pb is left out:
#: it hashes the original graph, which no longer matches.
SAVED_MODEL_DIRS = ("assets", "assets.extra")
#: tf.keras's metadata beside saved_model.pb (TF >= 2.5): tf.keras.models.load_model needs it to
#: revive the Keras model. It names object-graph nodes, so it is kept only with the object graph.
KERAS_METADATA = "keras_metadata.pb"


def used_ops(graph_def: graph_pb2.GraphDef) -> set:
    """Op names used by the graph and its functions (calls to library functions excluded)."""
    functions = {f.signature.name for f in graph_def.library.function}
    ops = {n.op for n in graph_def.node}
    ops.update(n.op for f in graph_def.library.function for n in f.node_def)
    return ops - functions


def stamp_target(mg: meta_graph_pb2.MetaGraphDef, opset: Opset) -> None:
    """Declare the target release in a MetaGraphDef, as that release's own writer would.

    The GraphDef producer version is lowered to the target's, never raised:
    TF gates shape functions and op semantics on it, so a 2016 graph stamped
    with a newer producer gets newer (stricter) shape checks than it was
    written for (ParseExample's "Shape must be rank 1 but is rank 0" in TF 1.8).
    """
    versions = mg.graph_def.versions
    versions.producer = min(versions.producer, opset.graph_def_version)
    info = mg.meta_info_def
    info.tensorflow_version = opset.release
    info.tensorflow_git_version = "tf-transpile"
    info.stripped_op_list.Clear()
    op_defs = [opset.op(name) for name in sorted(used_ops(mg.graph_def))]
    info.stripped_op_list.op.extend(op_def for op_def in op_defs if op_def is not None)
    if opset.is_tf1:
        _assets_as_collection(mg)
        _init_op_as_main_op(mg)
        # TF 1.x loaders never read the object graph; TF 2's loader would, and it names functions that
        # inlining and pruning removed. Without it TF 2 loads the output the TF 1.x way (load_v1_in_v2).
        mg.ClearField("object_graph_def")


#: Where TF 1.x loaders look for the asset files to feed into the main op.
ASSETS_COLLECTION = "saved_model_assets"


def _assets_as_collection(mg: meta_graph_pb2.MetaGraphDef) -> None:
    """TF 2 lists assets in `asset_file_def`; TF 1.x loaders only read the collection."""
    if not mg.asset_file_def or ASSETS_COLLECTION in mg.collection_def:
        return
    for asset in mg.asset_file_def:
        mg.collection_def[ASSETS_COLLECTION].any_list.value.add().Pack(asset)


def output_kind(out: Path) -> Kind:
    """OUT's form follows its name, as TF's own tools lay models out: ``*.meta`` a meta graph with the
    checkpoint beside it under OUT's prefix, ``*.pb``/``*.pbtxt`` a GraphDef, anything else a SavedModel
    directory."""
    suffix = Path(out).suffix
    return Kind.META_GRAPH if suffix == ".meta" else Kind.GRAPH_DEF if suffix in GRAPH_SUFFIXES else Kind.SAVED_MODEL


#: Names that make OUT a GraphDef file (text for .pbtxt).
GRAPH_SUFFIXES = (".pb", ".pbtxt")


#: TF 2 keeps the op that fills tables and assets after restore as this pseudo-signature; TF 1.x
#: loaders run the op named in the main op collection instead (and list the signature as a signature).
INIT_OP_SIGNATURE = "__saved_model_init_op"
MAIN_OP_COLLECTION = "saved_model_main_op"


def _init_op_as_main_op(mg: meta_graph_pb2.MetaGraphDef) -> None:
    """TF 2's init op signature -> the TF 1.x main op collection (run by the loader after restoring)."""
    if INIT_OP_SIGNATURE not in mg.signature_def:
        return
    outputs = mg.signature_def[INIT_OP_SIGNATURE].outputs
    names = [info.name for info in outputs.values() if info.name]
    if names and MAIN_OP_COLLECTION not in mg.collection_def and "legacy_init_op" not in mg.collection_def:
        mg.collection_def[MAIN_OP_COLLECTION].node_list.value.append(names[0].split(":")[0])
    del mg.signature_def[INIT_OP_SIGNATURE]


def write_model(model: Model, out: Path, opset: Opset, force: bool = False,
                progress: Optional[Progress] = None, link: bool = False) -> None:
    """Write `model` (already rewritten) to `out` in the form OUT's name asks for (`output_kind`);
    `progress` hears of the checkpoint bytes copied. With `link`, the checkpoint's data shards are
    hard links to the input's (copies across file systems). Nodes are written in the order they are
    given: for a target that imports in file order (node_order.needs_producers_first), the caller lowers
    the graphs producers first (the pipeline does, from the IR's edges: node_order.producers_first_order)."""
    out = Path(out)
    kind = output_kind(out)
    if _same_file_form(model, out):
        kind = model.kind  # a MetaGraphDef named .pb (extensions lie) stays one: change only what the target needs
    _check_form(model, kind, out)
    for mg in model.meta_graphs:
        stamp_target(mg, opset)
        if _is_text(model, kind, out):
            drop_text_debug_info(mg, opset)
    # The one place checkpoint options are known: the form writers only say where the checkpoint goes.
    checkpoint = functools.partial(_write_checkpoint, model, opset=opset, progress=progress, link=link)
    if kind is Kind.META_GRAPH:
        _write_meta_graph(model, out, force, _is_text(model, kind, out), checkpoint)
        return
    with staged(out, force) as tmp:
        if kind is Kind.SAVED_MODEL:
            _write_saved_model(model, tmp, _is_text(model, kind, out), checkpoint)
        else:
            _write_graph_def(model, tmp, _is_text(model, kind, out))


def _is_text(model: Model, kind: Kind, out: Path) -> bool:
    """A .pbtxt OUT is text; a SavedModel directory keeps the input's choice (saved_model.pbtxt)."""
    if kind is Kind.SAVED_MODEL:
        return model.text and model.kind is Kind.SAVED_MODEL
    if _same_file_form(model, out):
        return model.text
    return out.suffix == ".pbtxt"


def _same_file_form(model: Model, out: Path) -> bool:
    """A graph file written under IN's own suffix keeps IN's kind and encoding."""
    return model.kind is not Kind.SAVED_MODEL and model.path.suffix == Path(out).suffix


def _check_form(model: Model, kind: Kind, out: Path) -> None:
    """Refuse a form that would lose part of the model."""
    if kind is not Kind.SAVED_MODEL and len(model.meta_graphs) != 1:
        raise TranspileError("%s holds one graph but the model has %d meta graphs; choose one with --tags, or write "
                             "a SavedModel directory" % (out.name, len(model.meta_graphs)))
    if kind is Kind.GRAPH_DEF and model.checkpoint is not None:
        raise TranspileError("%s would be a GraphDef without the model's variables; use --freeze to fold them in, "
                             "or name OUT *.meta or a directory" % out.name)


def checkpoint_prefix(out: Path) -> Path:
    """Where a *.meta OUT's checkpoint goes: beside it, under its name without .meta (as tf.train.Saver)."""
    return Path(out).with_suffix("")


def check_output_path(model_path: Path, out: Path, force: bool) -> None:
    """Refuse before any work is done: OUT exists, or OUT is (inside) the input, or a name the file
    system cannot hold (OUT's own, or for a *.meta OUT its checkpoint's, `OUT.data-00000-of-00001`)."""
    _check_name_lengths(Path(out))
    src, dst = Path(model_path).resolve(), Path(out).resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        # OUT inside IN, or IN inside OUT: replacing OUT (--force) would delete the input
        raise TranspileError("output %s would overwrite the input %s" % (out, model_path))
    if dst.exists() and not force:
        raise TranspileError("output %s already exists (use --force to replace it)" % out)
    if output_kind(dst) is Kind.META_GRAPH and checkpoint_files(checkpoint_prefix(dst)) and not force:
        raise TranspileError("checkpoint %s.* already exists (use --force to replace it)" % checkpoint_prefix(out))
    if not dst.parent.is_dir():
        raise TranspileError("output directory %s does not exist" % dst.parent)


#: The longest checkpoint file suffix written beside a *.meta OUT's prefix.
_CHECKPOINT_SUFFIX = ".data-00000-of-00001"


def _check_name_lengths(out: Path) -> None:
    """Each name in OUT's path, and each one written for it, fits the file system's limit on a name
    (NAME_MAX, 255 bytes on Linux)."""
    names = list(out.parts) + ([checkpoint_prefix(out).name + _CHECKPOINT_SUFFIX] if output_kind(out) is Kind.META_GRAPH
                          else [])
    try:
        limit = os.pathconf(out.parent if out.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for name in names:
        if len(os.fsencode(name)) > limit:
            raise TranspileError("output %s: the name %s is longer than the %d bytes a file name may have here"
                                 % (out, name[:40] + "..." if len(name) > 40 else name, limit))


#: Temporary directories beside OUT: short (an OUT name near the 255-byte limit still fits) and
#: carrying the writer's pid, so that one left by a killed run is recognised and removed by the next.
WORKDIR_PREFIX = ".tf-transpile-"


def make_workdir(parent: Path) -> Path:
    """A fresh temporary directory in `parent`, after removing those of writers no longer running."""
    for stale in parent.glob(WORKDIR_PREFIX + "*"):
        pid = stale.name[len(WORKDIR_PREFIX):].split("-")[0]
        if stale.is_dir() and not stale.is_symlink() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="%s%d-" % (WORKDIR_PREFIX, os.getpid()), dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temp path beside `out`; on success it replaces `out`, on any failure it vanishes."""
    workdir = make_workdir(out.parent)
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


#: The last release whose text-format parser refuses NodeDef.experimental_debug_info (added in 1.13).
_NO_TEXT_DEBUG_INFO_AFTER = "1.12.0"


def _serialize(message, text: bool) -> bytes:
    return text_format.MessageToString(message).encode() if text else message.SerializeToString(deterministic=True)


def drop_text_debug_info(mg: meta_graph_pb2.MetaGraphDef, opset: Opset) -> None:
    """TF <= 1.12 cannot parse a text proto naming NodeDef.experimental_debug_info; it only
    carries the Python stack a node came from, so drop it there (binary protos skip unknown fields)."""
    if version_key(opset.release) > version_key(_NO_TEXT_DEBUG_INFO_AFTER):
        return
    graph_def = mg.graph_def
    for node in list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]:
        node.ClearField("experimental_debug_info")


def _write_saved_model(model: Model, tmp: Path, text: bool, checkpoint: Callable[[Path], None]) -> None:
    tmp.mkdir()
    sm = _saved_model_proto(model)
    (tmp / SAVED_MODEL_FILES[text]).write_bytes(_serialize(sm, text))
    if model.kind is Kind.SAVED_MODEL:
        for name in SAVED_MODEL_DIRS:
            if (model.path / name).is_dir():
                shutil.copytree(model.path / name, tmp / name)
        if (model.path / KERAS_METADATA).is_file() and any(mg.object_graph_def.nodes for mg in sm.meta_graphs):
            shutil.copyfile(model.path / KERAS_METADATA, tmp / KERAS_METADATA)
    (tmp / "variables").mkdir()
    if model.checkpoint is not None:
        checkpoint(tmp / "variables" / "variables")


def _saved_model_proto(model: Model) -> saved_model_pb2.SavedModel:
    """The SavedModel to write: the input's own proto when its meta graphs are the model's (a SavedModel read
    whole: they were rewritten in place), else a new one holding the model's meta graphs.

    Copying the input's proto and then its meta graphs again copied every graph twice (ResNet50: 24 ms)."""
    source = model.saved_model
    if source is not None and len(source.meta_graphs) == len(model.meta_graphs) and all(
            a is b for a, b in zip(source.meta_graphs, model.meta_graphs)):
        return source
    sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    if source is not None:
        sm.CopyFrom(source)
        del sm.meta_graphs[:]
    for mg in model.meta_graphs:
        added = sm.meta_graphs.add()
        added.CopyFrom(mg)
        if model.kind is not Kind.SAVED_MODEL and not added.meta_info_def.tags:
            added.meta_info_def.tags.append(SERVE)  # what tf.saved_model loaders ask for by default
    return sm


def _write_graph_def(model: Model, tmp: Path, text: bool) -> None:
    tmp.write_bytes(_serialize(model.meta_graphs[0].graph_def, text))


def _write_meta_graph(model: Model, out: Path, force: bool, text: bool, checkpoint: Callable[[Path], None]) -> None:
    """OUT.meta and its checkpoint beside it (OUT.index, OUT.data-*), as tf.train.Saver lays them out.

    The checkpoint files are staged and moved into place first, the meta graph
    last; a `checkpoint` state file is written only where none exists.
    """
    prefix = checkpoint_prefix(out)
    workdir = make_workdir(out.parent)
    try:
        if model.checkpoint is not None:
            checkpoint(workdir / prefix.name)
        (workdir / out.name).write_bytes(_serialize(model.meta_graphs[0], text))
        if not force and (out.exists() or checkpoint_files(prefix)):
            raise TranspileError("output %s already exists (use --force to replace it)" % out)
        for stale in checkpoint_files(prefix) if model.checkpoint is not None else ():
            stale.unlink()
        for path in sorted(workdir.iterdir(), key=lambda p: p.name == out.name):  # the meta graph last
            os.replace(path, out.parent / path.name)
        state = out.parent / "checkpoint"
        if model.checkpoint is not None and not state.exists():
            state.write_text('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (prefix.name, prefix.name))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _write_checkpoint(model: Model, prefix: Path, opset: Opset, progress: Optional[Progress] = None,
                      link: bool = False) -> None:
    """Copy the checkpoint files, or stream its tensors under new keys when the passes renamed them;
    `link` hard-links data shards whose bytes are written unchanged.

    Renamed indexes are written uncompressed; a copied one too where the target cannot read snappy."""
    if model.checkpoint_keys:
        from transpiler.io.checkpoints import rename_checkpoint

        rename_checkpoint(model.checkpoint, prefix, model.checkpoint_keys, link=link, progress=progress)
    else:
        copy_checkpoint(model.checkpoint, prefix, uncompressed_index=not opset.reads_snappy_index,
                        progress=progress, link=link)
