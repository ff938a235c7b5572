"""--freeze: fold variables into constants and keep only what the signatures compute.

The result is the frozen GraphDef that TF 1.x mobile-style loaders want
(`import_graph_def`, no session restore). Variable values come from the
checkpoint through TensorFlow's own reader; each read of a variable becomes
a Const under the read's own name, so tensor names in signatures still hold.
"""

from __future__ import annotations

from typing import Dict, List

import networkx as nx

from transpiler.errors import TranspileError
from transpiler.ir.graph import GraphDefIR, Node, Tensor
from transpiler.io.protos import attr_value_pb2, meta_graph_pb2
from transpiler.io.readers import Kind, Model
from transpiler.passes.checkpoint_names import restored_variables

#: Reads of a variable that become constants.
_READ_OPS = ("ReadVariableOp", "Identity")


def freeze_model(model: Model, ir: GraphDefIR) -> None:
    """Rewrite `ir` (the model's only graph) frozen, and make `model` a GraphDef model."""
    if len(model.meta_graphs) != 1:
        raise TranspileError("--freeze needs a model with one meta graph (use --tags to choose)")
    outputs = _signature_outputs(model.meta_graphs[0])
    if not outputs:
        raise TranspileError("--freeze needs signatures that name the outputs to keep")
    keys = restored_variables(ir)
    values = _read_values(model, keys)
    for handle, value in values.items():
        for read in _reads(ir, handle):
            _become_const(ir, read, value)
    _prune(ir, outputs)
    left = sorted(n.name for n in ir.nodes if n.op in ("VarHandleOp", "VariableV2"))
    if left:
        raise TranspileError("--freeze: variables without a checkpoint value are still read: %s" % ", ".join(left[:5]))
    frozen = meta_graph_pb2.MetaGraphDef()
    frozen.signature_def.MergeFrom(model.meta_graphs[0].signature_def)
    model.meta_graphs = [frozen]
    model.kind, model.text, model.checkpoint, model.checkpoint_keys = Kind.GRAPH_DEF, False, None, {}


def _signature_outputs(mg: meta_graph_pb2.MetaGraphDef) -> List[Tensor]:
    return [Tensor.parse(info.name) for key, sig in sorted(mg.signature_def.items()) if not key.startswith("__")
            for info in sig.outputs.values() if info.name]


def _read_values(model: Model, keys: Dict[str, str]) -> Dict[str, object]:
    """{variable: TensorProto}, read key by key from the checkpoint (renamed keys map back)."""
    from transpiler.io.tf_runtime import tf

    t = tf()
    original = {new: old for old, new in model.checkpoint_keys.items()}
    reader = t.train.load_checkpoint(str(model.checkpoint))
    return {handle: t.make_tensor_proto(reader.get_tensor(original.get(key, key))) for handle, key in keys.items()}


def _reads(ir: GraphDefIR, handle: str) -> List[Node]:
    return [ir[name] for name, index in ir.consumers(Tensor(handle, 0)) if index == 0 and ir[name].op in _READ_OPS]


def _become_const(ir: GraphDefIR, read: Node, tensor) -> None:
    name, device = read.name, read.device
    control = ir.control_inputs(name)
    hidden = ir.unique_name(name + "/_frozen")
    ir.rename(name, hidden)
    value = attr_value_pb2.AttrValue()
    value.tensor.CopyFrom(tensor)
    ir.add_node(name, "Const", attrs={"dtype": attr_value_pb2.AttrValue(type=tensor.dtype), "value": value},
                device=device, control_inputs=[])
    ir.replace_node(hidden, {0: Tensor(name, 0)}, control_output=None if not control else name)


def _prune(ir: GraphDefIR, outputs: List[Tensor]) -> None:
    """Drop every node the outputs do not depend on (saver, initializers, training ops)."""
    keep = set()
    for tensor in outputs:
        if tensor.node in ir:
            keep |= nx.ancestors(ir.nx, tensor.node) | {tensor.node}
    ir.keep_only(keep)
    ir.functions = {k: f for k, f in ir.functions.items() if any(n.op == k for n in ir.nodes)}
