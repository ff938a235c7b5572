"""Read the model formats people have: SavedModel dirs, frozen GraphDefs, meta graphs.

Every reader returns a ``Model``: the parsed protos plus where the variables
and assets live. Parsing uses TensorFlow's own proto classes; any failure is a
one-line ``TranspileError`` that names the file.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from pathlib import Path
from typing import List, Optional

from google.protobuf.message import DecodeError

from transpiler.io.checkpoints import checkpoint_files
from transpiler.errors import TranspileError
from transpiler.io.protos import meta_graph_pb2, saved_model_pb2, text_format

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


class Kind(enum.Enum):
    SAVED_MODEL = "SavedModel"
    GRAPH_DEF = "GraphDef"
    META_GRAPH = "MetaGraphDef"


@dataclasses.dataclass
class Model:
    """A model as read from disk. ``meta_graphs`` is what passes work on."""

    kind: Kind
    path: Path
    #: Was the graph file text format (pbtxt)? The writer keeps the same form.
    text: bool
    meta_graphs: List[meta_graph_pb2.MetaGraphDef]
    #: The SavedModel proto for SAVED_MODEL (its meta graphs are ``meta_graphs``).
    saved_model: Optional[saved_model_pb2.SavedModel] = None
    #: Checkpoint prefix (``.../variables/variables``), if the model has one.
    checkpoint: Optional[Path] = None
    #: {old key: new key} when the passes renamed checkpoint keys; empty: copy the checkpoint as it is.
    checkpoint_keys: dict = dataclasses.field(default_factory=dict)

    @property
    def graph_file(self) -> Path:
        if self.kind is Kind.SAVED_MODEL:
            return self.path / SAVED_MODEL_FILES[self.text]
        return self.path

    def describe(self) -> str:
        mg = self.meta_graphs[0]
        if self.kind is Kind.GRAPH_DEF:
            graph = mg.graph_def
            return "GraphDef %s (%d nodes, %d functions; GraphDef version %d)" % (
                self.path, len(graph.node), len(graph.library.function), graph.versions.producer)
        tags = "; ".join(",".join(m.meta_info_def.tags) or "-" for m in self.meta_graphs)
        producer = mg.meta_info_def.tensorflow_version or "unknown TF"
        return "%s %s (%d meta graph(s): %s; producer %s, GraphDef version %d)" % (
            self.kind.value, self.path, len(self.meta_graphs), tags, producer,
            mg.graph_def.versions.producer)


def read_model(path: Path, checkpoint: Optional[Path] = None, require_variables: bool = True) -> Model:
    """Read a SavedModel directory, a GraphDef/MetaGraphDef file (.pb/.pbtxt/.meta).

    A SavedModel whose graph has variables needs its variables/ (its loader
    restores them); `require_variables=False` lets analysis (``check``) look
    at one without. A GraphDef or meta graph needs no checkpoint: its init
    ops may set every variable, and one is used only where it is named
    (``checkpoint``) or found beside the file.
    """
    path = Path(path)
    if not path.exists():
        raise TranspileError("no such file or directory: %s" % path)
    directory = path if path.is_dir() else path.parent if path.name in SAVED_MODEL_FILES else None
    model = _read_saved_model(directory) if directory else _read_graph_file(path, checkpoint)
    if require_variables and model.kind is Kind.SAVED_MODEL and model.checkpoint is None and _has_variables(model):
        raise TranspileError("%s: missing variables (the graph has variables but no variables/)" % path)
    return model


def _parse(message, path: Path, text: bool, what: str):
    try:
        if text:
            text_format.Parse(path.read_text(), message, allow_unknown_field=False)
        else:
            message.ParseFromString(path.read_bytes())
    except (DecodeError, text_format.ParseError, UnicodeDecodeError, RuntimeWarning) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TranspileError("%s: not a valid %s (%s)" % (path, what, detail)) from None
    return message


def _read_saved_model(directory: Path) -> Model:
    found = [name for name in SAVED_MODEL_FILES if (directory / name).is_file()]
    if not found:
        raise TranspileError("%s is not a SavedModel directory (no saved_model.pb or saved_model.pbtxt)" % directory)
    text = found[0] == "saved_model.pbtxt"
    sm = _parse(saved_model_pb2.SavedModel(), directory / found[0], text, "SavedModel")
    if not sm.meta_graphs:
        raise TranspileError("%s: SavedModel has no meta graphs" % (directory / found[0]))
    refuse_links(directory)
    prefix = directory / "variables" / "variables"
    model = Model(Kind.SAVED_MODEL, directory, text, list(sm.meta_graphs), sm,
                  prefix if checkpoint_files(prefix) else None)
    return model


def refuse_links(directory: Path) -> None:
    """No byte from outside IN may reach OUT: a SavedModel whose tree holds a symbolic link (to a file
    elsewhere, a linked assets/ directory, a dangling link, a loop) is refused, naming the link."""
    for path in _walk(directory):
        if path.is_symlink():
            raise TranspileError("%s is a symbolic link (to %s); tf-transpile copies only files inside the model "
                                 "directory: replace the link by the file" % (path, os.readlink(path)))


def _walk(directory: Path):
    """Every entry under `directory`, not following links (os.walk does not descend into them)."""
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            yield Path(root) / name


def _has_variables(model: Model) -> bool:
    ops = {"VariableV2", "Variable", "VarHandleOp"}
    return any(n.op in ops for mg in model.meta_graphs for n in mg.graph_def.node)


def _read_graph_file(path: Path, checkpoint: Optional[Path]) -> Model:
    """Try the likely format first: extensions lie (text MetaGraphDefs named .pb exist)."""
    guess_text = path.suffix in (".pbtxt", ".txt")
    kinds = (Kind.META_GRAPH,) if path.suffix == ".meta" else (Kind.GRAPH_DEF, Kind.META_GRAPH)
    for text in (guess_text, not guess_text):
        for kind in kinds:
            model = _try_graph_file(path, kind, text)
            if model is not None:
                model.checkpoint = _find_checkpoint(model, checkpoint)
                return model
    raise TranspileError("%s: not a valid %s (neither binary nor text format)"
                         % (path, " or ".join(k.value for k in kinds)))


def _try_graph_file(path: Path, kind: Kind, text: bool) -> Optional[Model]:
    if kind is Kind.META_GRAPH:
        mg = _try_parse(meta_graph_pb2.MetaGraphDef(), path, text)
    else:
        mg = meta_graph_pb2.MetaGraphDef()
        graph_def = _try_parse(mg.graph_def, path, text)
        mg = mg if graph_def is not None else None
    if mg is None or not _looks_like_graph(mg.graph_def):
        return None
    return Model(kind, path, text, [mg])


def _try_parse(message, path: Path, text: bool):
    try:
        return _parse(message, path, text, type(message).__name__)
    except TranspileError:
        return None


def _looks_like_graph(graph_def) -> bool:
    """Binary protos parse leniently: demand nodes that all have a name and an op."""
    return graph_def is not None and len(graph_def.node) > 0 and all(n.name and n.op for n in graph_def.node)


def _find_checkpoint(model: Model, checkpoint: Optional[Path]) -> Optional[Path]:
    """An explicit prefix must exist; otherwise look beside a meta graph (x.meta -> x)."""
    if checkpoint is not None:
        if not checkpoint_files(Path(checkpoint)):
            raise TranspileError("no checkpoint at %s" % checkpoint)
        return Path(checkpoint)
    prefix = model.path.with_suffix("")
    return prefix if model.kind is Kind.META_GRAPH and checkpoint_files(prefix) else None
