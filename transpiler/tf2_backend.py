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
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import IncompatibleModel, TranspileError
from .ir import GraphDefIR, Tensor, lift
from .protos import attr_value_pb2, meta_graph_pb2, types_pb2
from .readers import Kind, Model, read_model
from .releases import Opset, version_key
from .unfreeze import UnfreezeOptions, Unfrozen, unfreeze
from .writer import check_output_path, staged

DEFAULT_SIGNATURE = "serving_default"
#: signature_def entries TF 1.x builders use for the init/train ops, not signatures.
INIT_SIGNATURES = ("__saved_model_init_op", "__saved_model_train_op")
#: Resources a TF 1.x init op (main_op / legacy_init_op) fills before the signatures can run.
TABLE_OPS = {"HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensors",
             "MutableHashTableOfTensorsV2", "MutableDenseHashTable", "MutableDenseHashTableV2"}
SERVE = "serve"

#: Variable ops and whether they hold a resource handle (else a reference).
VARIABLE_OPS = {"VariableV2": False, "Variable": False, "VarHandleOp": True}

#: Writes to a reference variable (input 0) and their resource counterparts.
REF_WRITES = {"Assign": "AssignVariableOp", "AssignAdd": "AssignAddVariableOp", "AssignSub": "AssignSubVariableOp"}

#: Sinks that are never a model's output.
_NOT_OUTPUTS = {"NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "PlaceholderV2", "Assert", "Print",
                "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints",
                "VariableV2", "Variable", "VarHandleOp", "VarIsInitializedOp", "IsVariableInitialized"}


@dataclasses.dataclass
class UpgradeOptions:
    """What the user chose on the command line."""

    tags: Optional[Sequence[str]] = None
    inputs: Sequence[str] = ()
    outputs: Sequence[str] = ()
    unfreeze: Optional[UnfreezeOptions] = None


@dataclasses.dataclass
class Signature:
    key: str
    #: input key -> tensor name ("x:0")
    inputs: Dict[str, str]
    #: output key -> tensor name
    outputs: Dict[str, str]


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


# ---------------------------------------------------------------------------
# when this back end applies


def wants_tf2_backend(model: Model, opset: Opset) -> bool:
    """A 2.x target and a TF 1.x graph (no object graph: not written by tf.saved_model.save)."""
    if version_key(opset.release)[0] < 2:
        return False
    return not any(mg.HasField("object_graph_def") for mg in model.meta_graphs)


def upgrade(path: Path, out: Path, opset: Opset, force: bool = False, checkpoint: Optional[Path] = None,
            rule_files: Sequence[Path] = (), options: Optional[UpgradeOptions] = None, model: Optional[Model] = None):
    """Convert the TF 1.x model at `path` into a native TF 2 SavedModel at `out`; returns the report."""
    options = options or UpgradeOptions()
    check_output_path(path, out, force)
    model = model or read_model(path, checkpoint)
    plan, report = plan_upgrade(model, opset, rule_files, options)
    if report.blocking:
        raise IncompatibleModel(report.summary(), report)
    with staged(Path(out), force) as tmp:
        host = build_saved_model(plan, tmp.parent / ".tf2-host" if _host_release() != opset.release else tmp)
        if host != opset.release:
            # Written by the host's TF: take it to the target like any TF 2 SavedModel (e.g. 2.21 -> 2.1).
            from .pipeline import convert

            second = convert(tmp.parent / ".tf2-host", tmp, opset.release, rule_files=rule_files)
            report.fired.extend(second.fired)
            report.notes.append("written by TF %s, then converted for TF %s" % (host, opset.short))
    return report


def _host_release() -> Optional[str]:
    """The host TF's release as the opset data names it (None if unknown); imports TF."""
    from .errors import TranspileError as _Unknown
    from .releases import catalog
    from .tf_runtime import tf as load_tf

    try:
        return catalog().resolve(load_tf().__version__.split("-")[0].split("rc")[0])
    except _Unknown:
        return None


def plan_upgrade(model: Model, opset: Opset, rule_files: Sequence[Path] = (),
                 options: Optional[UpgradeOptions] = None) -> Tuple[Plan, object]:
    """Choose, prune, unfreeze, rewrite and validate; (plan, report). Needs no TF runtime."""
    from .pipeline import transpile

    options = options or UpgradeOptions()
    notes: List[str] = []
    index = select_meta_graph(model, options.tags)
    mg = model.meta_graphs[index]
    if len(model.meta_graphs) > 1:
        notes.append("converted meta graph %d (tags: %s) of %d" % (index, ",".join(mg.meta_info_def.tags),
                                                                     len(model.meta_graphs)))
    if model.kind is not Kind.SAVED_MODEL:
        notes.append("the output is a TF 2 SavedModel directory (input: a %s)" % model.kind.value)
    ir = lift(mg.graph_def)
    signatures = find_signatures(mg, ir, model.kind, options.inputs, options.outputs, notes)
    keys = saver_keys(ir)
    initial = initial_values(ir)
    prune(ir, {Tensor.parse(t).node for s in signatures for t in list(s.outputs.values()) + list(s.inputs.values())})
    tables = sorted(n.name for n in ir.nodes if n.op in TABLE_OPS)
    if tables:
        raise TranspileError("the signatures read lookup table(s) %s, which the model's init op fills; the TF 2 back "
                             "end does not carry table initializers yet" % _names(tables))
    unfrozen: List[Unfrozen] = []
    if options.unfreeze is not None:
        unfrozen = unfreeze(ir, options.unfreeze)
        notes.append("unfroze %d constant(s) into variables: %s" % (len(unfrozen), _names([u.name for u in unfrozen])))
        if not unfrozen:
            notes.append("--unfreeze found no weight constants (see --unfreeze-pattern / --unfreeze-names)")
    # The rules and the validator see exactly what will be written.
    single = meta_graph_pb2.MetaGraphDef()
    single.CopyFrom(mg)
    single.graph_def.CopyFrom(ir.lower())
    work = dataclasses.replace(model, meta_graphs=[single])
    irs, report = transpile(work, opset, rule_files)
    ir = irs[0]
    report.notes = notes
    if report.blocking:
        return None, report
    trainable = trainable_names(mg)
    variables = to_resource_handles(ir, keys, trainable, {u.name: u for u in unfrozen}, initial, model.checkpoint,
                                    notes)
    for node in ir.nodes:
        node.device = ""
        _drop_stale_colocation(ir, node)
    graph_def = ir.lower()
    graph_def.versions.producer = min(graph_def.versions.producer, opset.graph_def_version)
    return Plan(graph_def, signatures, variables, model.checkpoint, notes), report


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


def _names(names: Sequence[str], shown: int = 8) -> str:
    names = list(names)
    more = " (+%d more)" % (len(names) - shown) if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "none"


# ---------------------------------------------------------------------------
# meta graph, signatures


def select_meta_graph(model: Model, tags: Optional[Sequence[str]]) -> int:
    """The index of the meta graph tagged exactly `tags` (default: the only one, or the one tagged serve)."""
    tag_sets = [set(mg.meta_info_def.tags) for mg in model.meta_graphs]
    shown = "; ".join(",".join(sorted(t)) or "-" for t in tag_sets)
    if tags:
        found = [i for i, t in enumerate(tag_sets) if t == set(tags)]
        if not found:
            raise TranspileError("no meta graph tagged %s; the model has: %s" % (",".join(tags), shown))
        return found[0]
    if len(tag_sets) == 1:
        return 0
    serve = [i for i, t in enumerate(tag_sets) if t == {SERVE}]
    if len(serve) == 1:
        return serve[0]
    raise TranspileError("the model has %d meta graphs (%s); choose one with --tags" % (len(tag_sets), shown))


def find_signatures(mg, ir: GraphDefIR, kind: Kind, inputs: Sequence[str], outputs: Sequence[str],
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
    from .rewrite import output_ports

    from .releases import catalog

    saver_scope = ""
    if mg.HasField("saver_def") and mg.saver_def.filename_tensor_name:
        saver_scope = mg.saver_def.filename_tensor_name.split("/")[0] + "/"
    cat = catalog()
    found = {}
    for node in ir.nodes:
        if node.op in _NOT_OUTPUTS or (saver_scope and node.name.startswith(saver_scope)):
            continue
        if node.name.startswith("gradients/") or _is_snapshot(ir, node):
            continue
        if ir.nx.out_degree(node.name):
            continue
        last = cat.last_release(node.op)
        op_def = cat.op_def(node.op, last) if last else cat.contrib_op_def(node.op)
        if op_def is None or not op_def.output_arg or any(a.is_ref for a in op_def.output_arg):
            continue
        for port in output_ports(op_def, node, False):
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


# ---------------------------------------------------------------------------
# graph surgery


def prune(ir: GraphDefIR, roots) -> None:
    """Keep only `roots` and what they depend on (data and control edges)."""
    import networkx as nx

    keep = set(roots)
    for root in roots:
        keep |= nx.ancestors(ir.nx, root)
    ir.nx.remove_nodes_from([n for n in list(ir.nx.nodes) if n not in keep])


def saver_keys(ir: GraphDefIR) -> Dict[str, Tuple[str, str]]:
    """Variable node -> (checkpoint key, slice spec), from the saver's SaveV2/SaveSlices/Save nodes."""
    from .rewrite import const_value

    keys: Dict[str, Tuple[str, str]] = {}
    for node in ir.nodes:
        if node.op not in ("SaveV2", "SaveSlices", "Save"):
            continue
        inputs = ir.inputs(node.name)
        names = const_value(ir, inputs[1])
        slices = const_value(ir, inputs[2]) if node.op != "Save" else None
        first = 2 if node.op == "Save" else 3
        if not isinstance(names, list):
            continue
        slices = slices if isinstance(slices, list) else [""] * len(names)
        for name, spec, tensor in zip(names, slices, inputs[first:]):
            var = _variable_behind(ir, tensor)
            if var is not None:
                keys.setdefault(var, (_text(name), _text(spec)))
    return keys


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _variable_behind(ir: GraphDefIR, tensor: Tensor) -> Optional[str]:
    """The variable node a saved tensor reads (through Identity / ReadVariableOp / read snapshots)."""
    seen = set()
    while tensor.node in ir and tensor.node not in seen:
        seen.add(tensor.node)
        node = ir[tensor.node]
        if node.op in VARIABLE_OPS:
            return node.name
        if node.op not in ("Identity", "ReadVariableOp", "RefIdentity"):
            return None
        inputs = ir.inputs(node.name)
        if not inputs:
            return None
        tensor = inputs[0]
    return None


def trainable_names(mg) -> Optional[set]:
    """Variable node names in the `trainable_variables` collection (None when there is no such collection)."""
    collection = mg.collection_def.get("trainable_variables") if mg.collection_def else None
    if collection is None or not collection.HasField("bytes_list"):
        return None
    return {_variable_def_name(raw).split(":")[0] for raw in collection.bytes_list.value}


def _variable_def_name(raw: bytes) -> str:
    """VariableDef.variable_name (field 1) read from the wire format: VariableDef is not among protos.py's classes."""
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(raw, pos)
        elif wire == 2:
            length, pos = _varint(raw, pos)
            if field == 1:
                return raw[pos:pos + length].decode("utf-8", "replace")
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            break
    return ""


def _varint(raw: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def initial_values(ir: GraphDefIR) -> Dict[str, object]:
    """Variable node -> the Const its initializer assigns (TensorProto), for variables the saver leaves out."""
    from .rewrite import _producer

    found = {}
    for node in ir.nodes:
        if node.op in ("Assign", "AssignVariableOp"):
            inputs = ir.inputs(node.name)
            var = _variable_behind(ir, inputs[0]) if len(inputs) == 2 else None
            value = _producer(ir, inputs[1]) if var else None
            if value is not None and value.op == "Const" and var not in found:
                found[var] = value.attrs["value"].tensor
    return found


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
    from .releases import catalog

    name = node.name
    dtype = node.attrs["dtype"]
    handle = ir.unique_name(name + "/_handle")
    ir.add_node(handle, "Placeholder", attrs=_placeholder_attrs())
    cat = catalog()
    for consumer, index in ir.consumers(Tensor(name, 0)):
        op = ir[consumer].op
        if op in REF_WRITES and index == 0:
            _rewrite_write(ir, ir[consumer], handle)
            continue
        last = cat.last_release(op)
        op_def = cat.op_def(op, last) if last else cat.contrib_op_def(op)
        if op_def is not None and _input_is_ref(op_def, ir[consumer], index):
            raise TranspileError("node %s (%s) updates the reference variable %s in place; the TF 2 back end "
                                 "rewrites only Assign, AssignAdd and AssignSub" % (consumer, op, name))
    node.op, node.attrs = "ReadVariableOp", {"dtype": dtype}
    ir.set_inputs(name, [Tensor(handle, 0)], ir.control_inputs(name))
    return handle + ":0"


def _input_is_ref(op_def, node, index: int) -> bool:
    """Is data input `index` of `node` a reference input of its OpDef?"""
    position = 0
    for arg in op_def.input_arg:
        count = 1
        if arg.number_attr and arg.number_attr in node.attrs:
            count = node.attrs[arg.number_attr].i
        elif arg.type_list_attr and arg.type_list_attr in node.attrs:
            count = len(node.attrs[arg.type_list_attr].list.type)
        if position <= index < position + count:
            return arg.is_ref
        position += count
    return False


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
    from .tf_runtime import tf as load_tf

    tf = load_tf()
    root = tf.__internal__.tracking.AutoTrackable()
    root.vars = {}
    handles = {}
    reader = tf.train.load_checkpoint(str(plan.checkpoint)) if any(v.key for v in plan.variables) else None
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
    return _host_release()


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


def restrict_for_downgrade(model: Model, options: UpgradeOptions) -> None:
    """Apply what of `options` makes sense for a TF 1.x target: --tags keeps one meta graph."""
    if options.inputs or options.outputs or options.unfreeze is not None:
        raise TranspileError("--inputs, --outputs and --unfreeze apply when a TF 1.x model is converted for "
                             "TF 2.x (--to 2.x)")
    if options.tags:
        index = select_meta_graph(model, options.tags)
        model.meta_graphs[:] = [model.meta_graphs[index]]
