"""What to run of a model: its loads (one per tag set) and the signatures of each.

A SavedModel's or meta graph's signatures are its SignatureDefs; a graph
without any (a frozen GraphDef, a bare meta graph) gets the one signature a
conversion would give it, ``serving_default``: placeholders in, unconsumed
sinks out (passes/signatures.py, so an upgrade's keys match). Steps run such
a signature by tensor names (feeds/fetches); a SignatureDef by its key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from transpiler.io.readers import Kind, Model
from transpiler.ir.attrs import dtype_name
from transpiler.ir.graph import lift
from transpiler.passes.signatures import INIT_SIGNATURES, find_signatures

#: (tensor name, dtype DT_*, shape or None when the rank is unknown)
InputSpec = Tuple[str, str, Optional[list]]


@dataclasses.dataclass
class Signature:
    key: str
    inputs: Dict[str, InputSpec]
    #: output key -> tensor name
    outputs: Dict[str, str]
    #: A SignatureDef of the model (run by key); else derived from the graph (run by tensor names).
    declared: bool


@dataclasses.dataclass
class Load:
    """One load of the model: a tag set of a SavedModel, or the whole graph file."""

    tags: Optional[List[str]]
    signatures: Dict[str, Signature]
    graph_def: object
    #: A native TF 2 SavedModel (it has an object graph): TF 2 users load it with tf.saved_model.load.
    native_tf2: bool = False
    #: Written by tf.keras (Keras metadata: keras_metadata.pb, or _tf_keras_* objects before TF 2.5):
    #: its users also load it with tf.keras.models.load_model.
    keras: bool = False

    @property
    def label(self) -> str:
        return "" if self.tags is None else "[%s] " % ",".join(self.tags)


@dataclasses.dataclass
class Side:
    """A model on disk as a loader plan sees it."""

    kind: str          # "saved_model" | "meta_graph" | "graph_def"
    path: str
    checkpoint: Optional[str]
    encoding: str      # "text" | "binary"
    loads: List[Load]

    def plan(self, load: Load, steps: List[dict], tf2_api: bool, variables: Optional[str] = None) -> dict:
        """The loader plan (runtimes/loader.py) running `steps` on `load`; `variables`: an .npz path
        for its trainable variables (tf.saved_model.load only)."""
        plan = {"kind": self.kind, "path": self.path, "encoding": self.encoding, "steps": steps,
                "seed_random_ops": True}   # unseeded random ops: the same numbers in both loads
        if self.kind == "saved_model":
            plan["tags"] = load.tags or []
            plan["api"] = "tf2" if tf2_api and load.native_tf2 else "tf1"
            if variables and plan["api"] == "tf2":
                plan["variables"] = variables
        if self.checkpoint:
            plan["checkpoint"] = self.checkpoint
        return plan


#: Where tf.keras (TF >= 2.5) keeps the Keras metadata of a SavedModel.
KERAS_METADATA = "keras_metadata.pb"

_KINDS = {Kind.SAVED_MODEL: "saved_model", Kind.META_GRAPH: "meta_graph", Kind.GRAPH_DEF: "graph_def"}


def describe(model: Model) -> Side:
    """The loads and signatures of a model as read by io.readers."""
    loads = [_load(mg, model.kind) for mg in model.meta_graphs]
    if model.kind is Kind.SAVED_MODEL and (Path(model.path) / KERAS_METADATA).is_file():
        for load in loads:
            load.keras = load.native_tf2
    return Side(_KINDS[model.kind], str(model.path), str(model.checkpoint) if model.checkpoint else None,
                "text" if model.text else "binary", loads)


def _load(mg, kind: Kind) -> Load:
    tags = list(mg.meta_info_def.tags) if kind is Kind.SAVED_MODEL else None
    keys = [k for k in sorted(mg.signature_def) if k not in INIT_SIGNATURES]
    sigs = {k: _declared(k, mg.signature_def[k]) for k in keys} if keys else _derived(mg)
    native = kind is Kind.SAVED_MODEL and len(mg.object_graph_def.nodes) > 0
    keras = native and any(n.user_object.identifier.startswith("_tf_keras_") for n in mg.object_graph_def.nodes)
    return Load(tags, sigs, mg.graph_def, native, keras)


def _shape(info) -> Optional[list]:
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        return None
    return [d.size for d in info.tensor_shape.dim]


def _declared(key: str, sig) -> Signature:
    inputs = {k: (info.name, dtype_name(info.dtype), _shape(info)) for k, info in sorted(sig.inputs.items())}
    return Signature(key, inputs, {k: info.name for k, info in sorted(sig.outputs.items())}, True)


def _derived(mg) -> Dict[str, Signature]:
    """The signature an upgrade would give a graph without SignatureDefs (none if it has no outputs)."""
    from transpiler.errors import TranspileError

    ir = lift(mg.graph_def)
    try:
        (found,) = find_signatures(mg, ir, [], [], [])
    except TranspileError:
        return {}
    nodes = {n.name: n for n in mg.graph_def.node}
    inputs = {}
    for k, tensor in found.inputs.items():
        node = nodes[tensor.split(":")[0]]
        shape = node.attr["shape"].shape if "shape" in node.attr else None
        dims = None if shape is None or shape.unknown_rank else [d.size for d in shape.dim]
        inputs[k] = (tensor, dtype_name(node.attr["dtype"].type), dims)
    return {found.key: Signature(found.key, inputs, dict(found.outputs), False)}
