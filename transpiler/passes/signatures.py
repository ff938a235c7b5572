"""Pass (upgrade): the signatures the TF 2 SavedModel will have.

The meta graph's own signatures, or for a graph without them one,
``serving_default``, from --inputs/--outputs or from its placeholders and
unconsumed sinks (the report says which). Leaves ``ctx.state["signatures"]``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Sequence

from transpiler.errors import TranspileError
from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.knowledge import opdefs
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.passes.tf1_variables import VARIABLE_OPS

DEFAULT_SIGNATURE = "serving_default"
#: signature_def entries TF 1.x builders use for the init/train ops, not signatures.
INIT_SIGNATURES = ("__saved_model_init_op", "__saved_model_train_op")
#: Sinks that are never a model's output.
_NOT_OUTPUTS = {"NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "PlaceholderV2", "Assert", "Print",
                "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints",
                "VariableV2", "Variable", "VarHandleOp", "VarIsInitializedOp", "IsVariableInitialized"}


@dataclasses.dataclass
class Signature:
    key: str
    #: input key -> tensor name ("x:0")
    inputs: Dict[str, str]
    #: output key -> tensor name
    outputs: Dict[str, str]



class FindSignatures(Pass):
    name = "find-signatures"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        options = ctx.options
        ctx.state["signatures"] = find_signatures(ctx.meta_graph, ir, options.inputs, options.outputs, log.notes)
        return log


def find_signatures(mg, ir: GraphDefIR, inputs: Sequence[str], outputs: Sequence[str],
                    notes: List[str]) -> List[Signature]:
    """The meta graph's own signatures, or one derived from --inputs/--outputs, placeholders and sinks."""
    keys = [k for k in sorted(mg.signature_def) if k not in INIT_SIGNATURES]
    if keys and not inputs and not outputs:
        return [_from_signature_def(key, mg.signature_def[key]) for key in keys]
    if keys:
        notes.append("--inputs/--outputs replace the model's signatures (%s)" % ", ".join(keys))
    out = _tensor_specs(ir, outputs, "--outputs") if outputs else _sinks(ir, mg)
    if not out:
        raise TranspileError("found no outputs in the graph; name them with --outputs")
    roots = {Tensor.parse(t).node for t in out.values()}
    ins = _tensor_specs(ir, inputs, "--inputs") if inputs else _placeholders(ir, roots)
    how_in = "given" if inputs else "found as the placeholders they read"
    how_out = "given" if outputs else "found as the graph's unconsumed sinks"
    notes.append("signature %s: outputs %s (%s); inputs %s (%s)" % (
        DEFAULT_SIGNATURE, _pairs(out), how_out, _pairs(ins) if ins else "none", how_in))
    return [Signature(DEFAULT_SIGNATURE, ins, out)]


def _pairs(specs: Dict[str, str]) -> str:
    return ", ".join("%s=%s" % (k, v) for k, v in specs.items())


def _from_signature_def(key: str, sig) -> Signature:
    def names(infos, what):
        result = {}
        for name, info in sorted(infos.items()):
            if info.WhichOneof("encoding") != "name":
                raise TranspileError("signature %s: %s %s is a %s tensor; only dense tensors are supported"
                                     % (key, what, name, info.WhichOneof("encoding")))
            result[name] = info.name
        return result

    return Signature(key, names(sig.inputs, "input"), names(sig.outputs, "output"))


def _key(tensor: str) -> str:
    """A signature key for a tensor: its node name, made a valid identifier (`dense/BiasAdd:1` -> dense_BiasAdd_1)."""
    name, _, port = tensor.partition(":")
    key = re.sub(r"[^A-Za-z0-9_]", "_", name + ("_" + port if port and port != "0" else ""))
    return key if re.match(r"[A-Za-z]", key) else "t_" + key


def _tensor_specs(ir: GraphDefIR, specs: Sequence[str], flag: str) -> Dict[str, str]:
    """`[KEY=]TENSOR` items (comma-separated or repeated) -> {key: "node:port"}."""
    result = {}
    for item in [s.strip() for spec in specs for s in spec.split(",") if s.strip()]:
        key, sep, tensor = item.partition("=")
        if not sep:
            key, tensor = "", key
        tensor = tensor if ":" in tensor else tensor + ":0"
        node, _, port = tensor.partition(":")
        if node not in ir or not port.isdigit():
            raise TranspileError("%s: no tensor %s in the graph" % (flag, tensor))
        key = key or _key(tensor)
        if key in result:
            raise TranspileError("%s: key %s given twice" % (flag, key))
        result[key] = tensor
    return result


def _sinks(ir: GraphDefIR, mg) -> Dict[str, str]:
    """Outputs of nodes nothing consumes, leaving out the saver, initializers and stateful updates."""
    saver_scope = ""
    if mg.HasField("saver_def") and mg.saver_def.filename_tensor_name:
        saver_scope = mg.saver_def.filename_tensor_name.split("/")[0] + "/"
    found = {}
    for node in ir.nodes:
        if node.op in _NOT_OUTPUTS or (saver_scope and node.name.startswith(saver_scope)):
            continue
        if node.name.startswith("gradients/") or _is_snapshot(ir, node):
            continue
        if ir.nx.out_degree(node.name):
            continue
        op_def = opdefs.newest_op_def(node.op)
        if op_def is None or not op_def.output_arg or any(a.is_ref for a in op_def.output_arg):
            continue
        for port in opdefs.output_ports(op_def, node.attrs, False):
            tensor = "%s:%d" % (node.name, port)
            found[_key(tensor)] = tensor
    return found


def _is_snapshot(ir: GraphDefIR, node) -> bool:
    """`W/read`: the Identity a TF 1.x variable reads itself through."""
    inputs = ir.inputs(node.name) if node.op == "Identity" else []
    return bool(inputs) and inputs[0].node in ir and ir[inputs[0].node].op in VARIABLE_OPS


def _placeholders(ir: GraphDefIR, roots) -> Dict[str, str]:
    import networkx as nx

    reach = set(roots)
    for root in roots:
        reach |= nx.ancestors(ir.nx, root)
    return {_key(n.name): n.name + ":0" for n in ir.nodes if n.op == "Placeholder" and n.name in reach}
