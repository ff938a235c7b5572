"""The native TF 2 back end: a TF 1.x graph becomes a TF 2 SavedModel.

For a 2.x target and a TF 1.x input (a SavedModel without an object graph, a
frozen GraphDef, or a .meta with its checkpoint) the output is what
``tf.saved_model.save`` writes for a ``tf.Module``: it loads with
``tf.saved_model.load``, its ``signatures`` take and return what the TF 1.x
signatures did, its variables are resource variables that keep their TF 1.x
names (``dense/kernel:0``) and its checkpoint is object-based
(``vars/dense.Skernel/.ATTRIBUTES/VARIABLE_VALUE``).

Planning happens on protos and the IR, without the TF runtime:

1. choose the meta graph (``--tags``) and its signatures; a graph without
   signatures gets one, ``serving_default``, from ``--inputs``/``--outputs``
   or from its placeholders and unconsumed sinks (the report says which);
2. keep what the signatures compute (nothing of the saver, initializers or
   training ops), unfreeze weight constants if asked (unfreeze.py);
3. run the rule pass and the validator for the target, as any conversion;
4. turn each variable node into a resource-handle placeholder: a reference
   variable ``X`` becomes ``ReadVariableOp(X/_handle)`` named ``X`` (its
   readers stay wired), Assign/AssignAdd/AssignSub on it their resource
   counterparts; a ``VarHandleOp`` becomes the placeholder itself.

Building then needs TensorFlow (imported lazily through tf_runtime): one
``tf.Variable`` per variable, its value read from the checkpoint one tensor at
a time (or from the unfrozen Const); the rewritten graph is imported once into
a ``tf.compat.v1.wrap_function`` graph with every handle placeholder mapped to
its variable's handle; each signature is a pruned concrete function of it;
``tf.saved_model.save`` writes the result into the staged output directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from transpiler.errors import TranspileError
from transpiler.io.checkpoints import check_checkpoint
from transpiler.io.protos import attr_value_pb2, types_pb2
from transpiler.io.readers import Kind, Model
from transpiler.ir.graph import GraphDefIR, Tensor
from transpiler.knowledge import opdefs
from transpiler.knowledge.releases import Opset
from transpiler.passes.base import Context
from transpiler.passes.prune import names_list as _names
from transpiler.passes.signatures import Signature
from transpiler.passes.tf1_variables import VARIABLE_OPS, trainable_names
from transpiler.passes.unfreeze import Unfrozen

#: Writes to a reference variable (input 0) and their resource counterparts.
REF_WRITES = {"Assign": "AssignVariableOp", "AssignAdd": "AssignAddVariableOp", "AssignSub": "AssignSubVariableOp"}


@dataclasses.dataclass
class VariableSpec:
    """One variable of the output: where its value comes from and which placeholder stands for it."""

    name: str
    dtype: int
    shape: Optional[List[int]]
    trainable: bool
    #: Tensor name of the DT_RESOURCE placeholder its handle is fed to.
    handle: str
    #: Checkpoint key and slice spec ("" = whole tensor), when read from a checkpoint.
    key: Optional[str] = None
    slice_spec: str = ""
    #: The value, when it comes from an unfrozen Const (a TensorProto).
    value: object = None


@dataclasses.dataclass
class Plan:
    """Everything the TF runtime needs to write the TF 2 SavedModel."""

    graph_def: object
    signatures: List[Signature]
    variables: List[VariableSpec]
    checkpoint: Optional[Path]
    notes: List[str]
    #: The input meta graph's tags: the output keeps them (tf.saved_model.save writes "serve").
    tags: List[str] = dataclasses.field(default_factory=lambda: ["serve"])


# ---------------------------------------------------------------------------
# when this back end applies


def wants_tf2_backend(model: Model, opset: Opset) -> bool:
    """A 2.x target and a TF 1.x graph (no object graph: not written by tf.saved_model.save)."""
    if opset.is_tf1:
        return False
    return not any(mg.HasField("object_graph_def") for mg in model.meta_graphs)


def plan_saved_model(ir: GraphDefIR, ctx: Context, notes: List[str]) -> Plan:
    """The rewritten, validated `ir` as a Plan: every variable a DT_RESOURCE placeholder, no devices.

    Reads what the upgrade passes left in ``ctx.state`` (signatures, saver keys,
    initial values, unfrozen constants); needs no TF runtime.
    """
    state, model = ctx.state, ctx.model
    unfrozen = {u.name: u for u in state.get("unfrozen", ())}
    variables = to_resource_handles(ir, state["saver_keys"], trainable_names(ctx.meta_graph), unfrozen,
                                    state["initial_values"], model.checkpoint, notes)
    for node in ir.nodes:
        node.device = ""
        _drop_stale_colocation(ir, node)
    graph_def = ir.lower()
    graph_def.versions.producer = min(graph_def.versions.producer, ctx.opset.graph_def_version)
    return Plan(graph_def, state["signatures"], variables, model.checkpoint, notes,
                list(ctx.meta_graph.meta_info_def.tags) if model.kind is Kind.SAVED_MODEL else ["serve"])


def host_release() -> Optional[str]:
    """The host TF's release as the opset data names it (None if unknown); imports TF."""
    from transpiler.errors import TranspileError as _Unknown
    from transpiler.knowledge.releases import catalog
    from transpiler.io.tf_runtime import tf as load_tf

    try:
        return catalog().resolve(load_tf().__version__.split("-")[0].split("rc")[0])
    except _Unknown:
        return None


def _drop_stale_colocation(ir: GraphDefIR, node) -> None:
    """Colocation (`_class: loc:@X`) with a node pruning removed would stop the import."""
    if "_class" not in node.attrs:
        return
    kept = [c for c in node.attrs["_class"].list.s if not c.startswith(b"loc:@") or c[5:].decode() in ir]
    if len(kept) == len(node.attrs["_class"].list.s):
        return
    if kept:
        node.attrs["_class"] = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(s=kept))
    else:
        del node.attrs["_class"]


# ---------------------------------------------------------------------------
# graph surgery


def to_resource_handles(ir: GraphDefIR, keys: Dict[str, Tuple[str, str]], trainable: Optional[set],
                        unfrozen: Dict[str, Unfrozen], initial: Dict[str, object], checkpoint: Optional[Path],
                        notes: List[str]) -> List[VariableSpec]:
    """Rewrite every variable of `ir` to read a DT_RESOURCE placeholder; one VariableSpec each.

    A variable's value comes from the checkpoint under the saver's key, or,
    for one the saver leaves out (e.g. an asset path), from the Const its
    initializer assigns.
    """
    specs = []
    missing = []
    from_initializer = []
    for node in [n for n in ir.nodes if n.op in VARIABLE_OPS]:
        name, resource = node.name, VARIABLE_OPS[node.op]
        dtype = node.attrs["dtype"].type
        shape = [d.size for d in node.attrs["shape"].shape.dim] if "shape" in node.attrs and \
            not node.attrs["shape"].shape.unknown_rank else None
        if name in unfrozen:
            key, spec, value = None, "", unfrozen[name].value
            is_trainable = unfrozen[name].trainable
        elif keys and name not in keys and name in initial:
            key, spec, value = None, "", initial[name]
            is_trainable = False
            from_initializer.append(name)
        else:
            key, spec = keys.get(name, (name, ""))
            value = None
            is_trainable = (name in trainable) if trainable is not None else dtype in (
                types_pb2.DT_FLOAT, types_pb2.DT_HALF, types_pb2.DT_DOUBLE, types_pb2.DT_BFLOAT16)
            if checkpoint is None:
                missing.append(name)
        handle = _make_handle(ir, node) if resource else _ref_to_resource(ir, node)
        specs.append(VariableSpec(name, dtype, shape, is_trainable, handle, key, spec, value))
    if from_initializer:
        notes.append("not in the checkpoint, set from their initializer (non-trainable): %s" % _names(from_initializer))
    if missing:
        raise TranspileError("the signatures read variable(s) %s but the model has no checkpoint"
                             % _names(missing))
    if trainable is None and any(s.key is not None for s in specs):
        notes.append("no trainable_variables collection: every float variable is trainable")
    return specs


def _placeholder_attrs() -> dict:
    shape = attr_value_pb2.AttrValue()
    shape.shape.SetInParent()
    return {"dtype": attr_value_pb2.AttrValue(type=types_pb2.DT_RESOURCE), "shape": shape}


def _make_handle(ir: GraphDefIR, node) -> str:
    """VarHandleOp X -> Placeholder X (DT_RESOURCE): its readers keep reading X."""
    node.op, node.attrs = "Placeholder", _placeholder_attrs()
    return node.name + ":0"


def _ref_to_resource(ir: GraphDefIR, node) -> str:
    """Reference variable X -> ReadVariableOp X of a new handle placeholder; writes become resource ops."""
    name = node.name
    dtype = node.attrs["dtype"]
    handle = ir.unique_name(name + "/_handle")
    ir.add_node(handle, "Placeholder", attrs=_placeholder_attrs())
    for consumer, index in ir.consumers(Tensor(name, 0)):
        op = ir[consumer].op
        if op in REF_WRITES and index == 0:
            _rewrite_write(ir, ir[consumer], handle)
            continue
        op_def = opdefs.newest_op_def(op)
        arg = opdefs.input_arg_at(op_def, ir[consumer].attrs, index) if op_def is not None else None
        if arg is not None and arg.is_ref:
            raise TranspileError("node %s (%s) updates the reference variable %s in place; the TF 2 back end "
                                 "rewrites only Assign, AssignAdd and AssignSub" % (consumer, op, name))
    node.op, node.attrs = "ReadVariableOp", {"dtype": dtype}
    ir.set_inputs(name, [Tensor(handle, 0)], ir.control_inputs(name))
    return handle + ":0"


def _rewrite_write(ir: GraphDefIR, node, handle: str) -> None:
    """Assign*(ref, value) -> Assign*VariableOp(handle, value); the node reads the variable after it."""
    value = ir.inputs(node.name)[1]
    dtype = node.attrs["T"]
    update = ir.unique_name(node.name + "/_update")
    ir.add_node(update, REF_WRITES[node.op], [Tensor(handle, 0), value], {"dtype": dtype},
                control_inputs=ir.control_inputs(node.name))
    node.op, node.attrs = "ReadVariableOp", {"dtype": dtype}
    ir.set_inputs(node.name, [Tensor(handle, 0)], [update])


# ---------------------------------------------------------------------------
# building (TF runtime)


def build_saved_model(plan: Plan, out: Path) -> Optional[str]:
    """Write the TF 2 SavedModel of `plan` into the (not yet existing) directory `out`; the host's release."""
    from transpiler.io.tf_runtime import tf as load_tf

    tf = load_tf()
    root = tf.__internal__.tracking.AutoTrackable()
    root.vars = {}
    handles = {}
    reader = _checkpoint_reader(tf, plan.checkpoint) if any(v.key for v in plan.variables) else None
    for spec in plan.variables:
        value = _value(tf, reader, spec)
        with tf.init_scope():
            var = tf.Variable(value, name=spec.name, trainable=spec.trainable)
        del value
        root.vars[spec.name] = var
        handles[spec.handle] = var
    root.variables = list(root.vars.values())
    root.trainable_variables = [v for v in root.variables if v.trainable]
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(plan.graph_def.SerializeToString())

    def import_graph():
        graph = tf.compat.v1.get_default_graph()  # the wrap_function's FuncGraph: it captures each handle
        tf.compat.v1.import_graph_def(graph_def, input_map={t: graph.capture(v.handle) for t, v in handles.items()},
                                      name="")

    try:
        wrapped = tf.compat.v1.wrap_function(import_graph, [])
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise TranspileError("TF %s cannot import the rewritten graph: %s" % (tf.__version__,
                                                                              str(exc).splitlines()[0])) from None
    functions = {s.key: _signature_function(tf, wrapped, s) for s in plan.signatures}
    tf.saved_model.save(root, str(out), signatures=functions)
    if sorted(plan.tags) != ["serve"]:
        _retag(out, plan.tags)
    _deterministic_fingerprint(out / "fingerprint.pb")
    return host_release()


def _retag(out: Path, tags: List[str]) -> None:
    """Give the written meta graph the input's tags: code that loaded IN with its tags loads OUT the same way
    (tf.saved_model.load without tags takes the only meta graph either way). The fingerprint covers
    saved_model.pb, so it is computed again (or left out where the host's TF cannot)."""
    from transpiler.io.protos import saved_model_pb2

    path = out / "saved_model.pb"
    sm = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    del sm.meta_graphs[0].meta_info_def.tags[:]
    sm.meta_graphs[0].meta_info_def.tags.extend(tags)
    path.write_bytes(sm.SerializeToString(deterministic=True))
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
    except ImportError:
        (out / "fingerprint.pb").unlink(missing_ok=True)
        return
    (out / "fingerprint.pb").write_bytes(fingerprinting.CreateFingerprintDef(str(out)))


def _deterministic_fingerprint(path: Path) -> None:
    """TF draws the fingerprint's uuid at random on every save; derive it from the content hashes
    the fingerprint already holds, so converting the same model twice writes the same bytes."""
    import hashlib

    from tensorflow.core.protobuf import fingerprint_pb2

    if not path.is_file():   # releases before 2.13 write none
        return
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    if not fingerprint.uuid:
        return
    fingerprint.ClearField("uuid")
    content = fingerprint.SerializeToString(deterministic=True)
    fingerprint.uuid = str(int.from_bytes(hashlib.sha256(content).digest()[:16], "big"))
    path.write_bytes(fingerprint.SerializeToString())


def _checkpoint_reader(tf, prefix: Path):
    """TF's reader of the checkpoint at `prefix`; a damaged checkpoint is a one-line TranspileError."""
    check_checkpoint(prefix)
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (ValueError, tf.errors.OpError) as exc:
        raise TranspileError("%s: corrupt checkpoint (%s)" % (prefix, str(exc).splitlines()[0])) from None


def _value(tf, reader, spec: VariableSpec):
    if spec.value is not None:
        return tf.make_ndarray(spec.value)
    try:
        value = reader.get_tensor(spec.key)
    except Exception as exc:  # NotFoundError / errors from the reader
        raise TranspileError("variable %s: checkpoint has no tensor %r (%s)" % (spec.name, spec.key,
                                                                                str(exc).splitlines()[0])) from None
    return _slice(value, spec.slice_spec) if spec.slice_spec else value


def _slice(value, spec: str):
    """Apply a checkpoint slice spec ('10 4 0,5:-' = full shape, then begin,length or - per dim)."""
    parts = spec.split(" ")
    extents = parts[-1].split(":")
    index = []
    for extent in extents:
        if extent == "-":
            index.append(slice(None))
        else:
            begin, length = (int(x) for x in extent.split(","))
            index.append(slice(begin, begin + length))
    return value[tuple(index)]


def _signature_function(tf, wrapped, signature: Signature):
    from tensorflow.python.framework import func_graph  # the same structure helper load_v1_in_v2 uses

    graph = wrapped.graph
    names = sorted(signature.inputs)
    feeds = [graph.as_graph_element(signature.inputs[k]) for k in names]
    fetches = {k: graph.as_graph_element(t) for k, t in signature.outputs.items()}
    input_signature = ((), func_graph.convert_structure_to_signature(dict(zip(names, feeds))))
    try:
        function = wrapped.prune(feeds=feeds, fetches=fetches, input_signature=input_signature,
                                 are_keyword_args_also_positional=True)
    except Exception as exc:
        raise TranspileError("signature %s: %s" % (signature.key, str(exc).splitlines()[0])) from None
    function._arg_keywords = names  # pylint: disable=protected-access  (as load_v1_in_v2 does)
    function._num_positional_args = 1 if len(names) == 1 else 0  # pylint: disable=protected-access
    return function


