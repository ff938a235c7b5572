"""Convert a name-based TF 1.x checkpoint to an object-based TF 2 one for a model, and back.

    tf-transpile checkpoint IN_PREFIX OUT_PREFIX [--model M] [--var-map FILE] [--to-object|--to-names]

A TF 1.x ``tf.train.Saver`` stores each variable under its name (``dense/kernel``,
its Adam slots under ``dense/kernel/Adam`` and ``dense/kernel/Adam_1``). A TF 2
object-based checkpoint stores it under the path of the object that holds it
(``model/vars/dense.Skernel/.ATTRIBUTES/VARIABLE_VALUE``, slots under
``.../.OPTIMIZER_SLOT/optimizer/m/...``) plus a ``_CHECKPOINTABLE_OBJECT_GRAPH``
tensor describing those objects. ``--to-object`` writes the layout of

    tf.train.Checkpoint(model=M, optimizer=<a tf.compat.v1.train optimizer>, global_step=...)

where M is the model's own object graph (a TF 2 SavedModel, e.g. what
``tf-transpile in/ out/ --to 2.21`` wrote, or an object-based checkpoint);
without ``--model`` it is tf-transpile's layout (``vars/<TF 1.x name>``).
Variables are matched by name, then by scope suffix and shape, then by a
unique shape, or as a ``--var-map`` file says; the mapping used is written
beside OUT_PREFIX as editable YAML (``--var-map`` takes the same file back).
``--to-names`` goes the other way: every variable gets its TF 1.x name back
(the ``full_name`` the object graph records; slots ``<var>/Adam``, ...).

Tensors are never held in memory (io/checkpoints.py: ``rename_checkpoint``):
a V2 checkpoint gets a new index and byte-for-byte copies of its data shards,
without TensorFlow (io/tensor_bundle.py); a V1 one streams, one tensor read
at a time and written in shards (``SaveV2``) merged at the end
(``MergeV2Checkpoints``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from transpiler.io.checkpoints import (OBJECT_GRAPH_KEY, Entry, checkpoint_files, entries, model_checkpoint,  # noqa: F401
                                       object_graph, rename_checkpoint)
from transpiler.errors import TranspileError

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
SLOT_MARK = "/.OPTIMIZER_SLOT/"

#: TF 1.x slot suffix (``<var>/<suffix>``) -> slot name of tf.compat.v1.train optimizers in TF 2.
SLOT_NAMES = {"Adam": "m", "Adam_1": "v", "Momentum": "momentum", "Adagrad": "accumulator",
              "ProximalAdagrad": "accumulator", "RMSProp": "rms", "RMSProp_1": "momentum",
              "Ftrl": "accum", "Ftrl_1": "linear", "Adadelta": "accum", "Adadelta_1": "accum_update",
              "AdagradDA": "gradient_accumulator", "AdagradDA_1": "gradient_squared_accumulator"}
#: ... and back (for slot names several optimizers share, the first optimizer in SLOT_NAMES).
SLOT_SUFFIXES: Dict[str, str] = {}
for _suffix, _slot in SLOT_NAMES.items():
    SLOT_SUFFIXES.setdefault(_slot, _suffix)

#: Non-slot optimizer state of TF 1.x optimizers (tracked by the optimizer object in TF 2).
_OPTIMIZER_STATE = re.compile(r"^beta[12]_power(_\d+)?$")
_GLOBAL_STEP = "global_step"
#: tf.train.Checkpoint's own counter: written for it, never a model variable.
SAVE_COUNTER = "save_counter"


def escape(name: str) -> str:
    """An object-graph local name as it appears in checkpoint keys ('/' -> '.S', '.' -> '..')."""
    return name.replace(".", "..").replace("/", ".S")


# ---------------------------------------------------------------------------
# the conversion


@dataclasses.dataclass
class Conversion:
    """What `convert_checkpoint` did; `summary()` is what the CLI prints."""

    direction: str
    out_prefix: Path
    mapping_file: Path
    renamed: Dict[str, str]
    #: How each variable was matched (name, scope, shape, var-map), to-object only.
    how: Dict[str, str] = dataclasses.field(default_factory=dict)
    dropped: List[str] = dataclasses.field(default_factory=list)
    unmatched: List[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        kinds = {}
        for how in self.how.values():
            kinds[how] = kinds.get(how, 0) + 1
        lines = ["wrote %s (%s): %d tensor(s)%s" % (
            self.out_prefix, "object-based" if self.direction == "object" else "name-based", len(self.renamed),
            " (matched: %s)" % ", ".join("%s by %s" % (n, k) for k, n in sorted(kinds.items())) if kinds else "")]
        if self.dropped:
            lines.append("left out %d tensor(s) of the input: %s" % (len(self.dropped), _show(self.dropped)))
        if self.unmatched:
            lines.append("no value for %d model variable(s) (they keep their own): %s"
                         % (len(self.unmatched), _show(self.unmatched)))
        lines.append("mapping: %s (edit it and pass it back with --var-map)" % self.mapping_file)
        if self.direction == "object":
            lines.append("restore with tf.train.Checkpoint(model=M, optimizer=tf.compat.v1.train.<Optimizer>(...)"
                         "[, global_step=...]).restore(%r)" % str(self.out_prefix))
        return "\n".join(lines)


def _show(items: List[str], shown: int = 8) -> str:
    return ", ".join(items[:shown]) + (" (+%d more)" % (len(items) - shown) if len(items) > shown else "")


def convert_checkpoint(in_prefix, out_prefix, direction: Optional[str] = None, model: Optional[Path] = None,
                       var_map: Optional[Path] = None, mapping_file: Optional[Path] = None,
                       force: bool = False) -> Conversion:
    """Convert `in_prefix` into `out_prefix` (see the module docstring)."""
    in_prefix, out_prefix = Path(in_prefix), Path(out_prefix)
    if not checkpoint_files(in_prefix):
        raise TranspileError("no checkpoint at %s" % in_prefix)
    if out_prefix.resolve() == in_prefix.resolve():
        raise TranspileError("output %s would overwrite the input" % out_prefix)
    if not out_prefix.parent.is_dir():
        raise TranspileError("output directory %s does not exist" % out_prefix.parent)
    if checkpoint_files(out_prefix) and not force:
        raise TranspileError("checkpoint %s already exists (use --force to replace it)" % out_prefix)
    mapping_file = Path(mapping_file) if mapping_file else Path(str(out_prefix) + ".mapping.yaml")
    given = _read_var_map(var_map) if var_map else None
    source = entries(in_prefix)
    is_object = OBJECT_GRAPH_KEY in source
    direction = direction or ("names" if is_object else "object")
    if direction == "object":
        if is_object:
            raise TranspileError("%s is already object-based (use --to-names)" % in_prefix)
        result = _to_object(in_prefix, out_prefix, source, model, given)
    else:
        if not is_object:
            raise TranspileError("%s is name-based already (use --to-object)" % in_prefix)
        result = _to_names(in_prefix, out_prefix, source, given)
    result.mapping_file = mapping_file
    _write_mapping(result, in_prefix, model, mapping_file)
    return result


def _read_var_map(path: Path) -> Dict[str, Optional[str]]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TranspileError("--var-map %s: cannot read (%s)" % (path, exc)) from None
    variables = doc.get("variables") if isinstance(doc, dict) else None
    if not isinstance(variables, dict):
        raise TranspileError("--var-map %s: needs a 'variables:' mapping {source key: target}" % path)
    return {str(k): (None if v is None else str(v)) for k, v in variables.items()}


def _write_mapping(result: Conversion, in_prefix: Path, model: Optional[Path], path: Path) -> None:
    doc = {"direction": "to-object" if result.direction == "object" else "to-names",
           "source": str(in_prefix), "model": str(model) if model else None,
           "variables": {k: v for k, v in result.renamed.items() if k in result.how or result.direction == "names"}}
    if result.direction == "object":
        doc["derived"] = {k: v for k, v in result.renamed.items() if k not in result.how}
        doc["matched_by"] = dict(result.how)
    doc["dropped"] = list(result.dropped)
    doc["unmatched_model_variables"] = list(result.unmatched)
    header = ("# tf-transpile checkpoint mapping: source key -> target key.\n"
              "# Edit 'variables' (a null target drops a tensor) and pass this file back with --var-map;\n"
              "# 'derived' (optimizer slots and state) follows from it.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


# ---- name-based -> object-based ---------------------------------------------


@dataclasses.dataclass
class _Target:
    """A variable of the model's object graph."""

    node: int
    key: str
    full_name: str
    shape: List[int]
    dtype: str


def _model_targets(model: Optional[Path], source: Dict[str, Entry], slots: Dict[str, Tuple[str, str]],
                   state: List[str]):
    """(object graph of the model, its variables). Without a model: tf-transpile's vars/<name> layout."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    if model is not None:
        prefix = model_checkpoint(model)
        graph = object_graph(prefix)
        if graph is None:
            raise TranspileError("--model %s: its checkpoint is name-based, not a TF 2 object graph" % model)
        known = entries(prefix)
        targets = []
        for node_id, node in enumerate(graph.nodes):
            for attr in node.attributes:
                if attr.name == "VARIABLE_VALUE" and attr.checkpoint_key in known:
                    entry = known[attr.checkpoint_key]
                    targets.append(_Target(node_id, attr.checkpoint_key, attr.full_name, entry.shape, entry.dtype))
        return graph, targets
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    root, holder = graph.nodes.add(), graph.nodes.add()
    root.children.add(node_id=1, local_name="vars")
    targets = []
    for key in sorted(source):
        if key == OBJECT_GRAPH_KEY or key in slots or key in state:
            continue
        node_id = len(graph.nodes)
        holder.children.add(node_id=node_id, local_name=key)
        attr = graph.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=key,
                                                 checkpoint_key="vars/%s%s" % (escape(key), VALUE_SUFFIX))
        targets.append(_Target(node_id, attr.checkpoint_key, key, source[key].shape, source[key].dtype))
    return graph, targets


def _classify(source: Dict[str, Entry]) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
    """Slots ({key: (variable key, slot name)}) and optimizer state (beta1_power, ...) of a name-based checkpoint."""
    slots = {}
    for key in source:
        parent, _, suffix = key.rpartition("/")
        if parent in source and suffix in SLOT_NAMES:
            slots[key] = (parent, SLOT_NAMES[suffix])
    state = [k for k in source if _OPTIMIZER_STATE.match(k)]
    return slots, state


def _match(names: List[str], targets: List[_Target], source: Dict[str, Entry],
           given: Optional[Dict[str, Optional[str]]]) -> Tuple[Dict[str, _Target], Dict[str, str]]:
    """Pair name-based keys with model variables: var-map, then name, scope suffix + shape, unique shape."""
    pairs: Dict[str, _Target] = {}
    how: Dict[str, str] = {}
    free = list(targets)

    def take(name: str, target: _Target, reason: str) -> None:
        pairs[name] = target
        how[name] = reason
        free.remove(target)

    def fits(name: str, target: _Target) -> bool:
        return source[name].shape == target.shape and source[name].dtype == target.dtype

    if given is not None:
        for name, wanted in given.items():
            if wanted is None:
                continue
            if name not in source:
                raise TranspileError("--var-map: the checkpoint has no tensor %s" % name)
            found = [t for t in free if wanted in (t.key, "model/" + t.key, t.full_name)]
            if not found:
                raise TranspileError("--var-map: the model has no variable %s (for %s)" % (wanted, name))
            if not fits(name, found[0]):
                raise TranspileError("--var-map: %s %s %s does not fit %s %s %s" % (
                    name, source[name].dtype, source[name].shape, wanted, found[0].dtype, found[0].shape))
            take(name, found[0], "var-map")
        names = [n for n in names if n not in given]
    for name in list(names):
        exact = [t for t in free if t.full_name == name and fits(name, t)]
        if exact:
            take(name, exact[0], "name")
    for name in [n for n in names if n not in pairs]:
        parts = name.split("/")
        for depth in range(len(parts), 0, -1):
            suffix = "/".join(parts[-depth:])
            found = [t for t in free if fits(name, t) and (t.full_name == suffix or t.full_name.endswith("/" + suffix)
                                                          or suffix.endswith("/" + t.full_name))]
            if len(found) == 1:
                take(name, found[0], "scope")
                break
            if len(found) > 1:
                break
    left = [n for n in names if n not in pairs]
    for name in left:
        same = [t for t in free if fits(name, t)]
        rivals = [n for n in left if n not in pairs and source[n].shape == source[name].shape
                  and source[n].dtype == source[name].dtype]
        if len(same) == 1 and len(rivals) == 1:
            take(name, same[0], "shape")
    return pairs, how


def _to_object(in_prefix: Path, out_prefix: Path, source: Dict[str, Entry], model: Optional[Path],
               given: Optional[Dict[str, Optional[str]]]) -> Conversion:
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    slots, state = _classify(source)
    template, targets = _model_targets(model, source, slots, state)
    names = [k for k in sorted(source) if k not in slots and k not in state and k != OBJECT_GRAPH_KEY]
    pairs, how = _match(names, targets, source, given)
    if not pairs:
        raise TranspileError("no variable of %s matches a variable of the model; give a --var-map" % in_prefix)
    dropped_by_map = {k for k, v in (given or {}).items() if v is None}

    # root -> model (the template's nodes, ids shifted by 1), optimizer, global_step
    out = trackable_object_graph_pb2.TrackableObjectGraph()
    root = out.nodes.add()
    offset = 1
    paired = {t.key for t in pairs.values()}
    for node in template.nodes:
        copy = out.nodes.add()
        copy.CopyFrom(node)
        copy.ClearField("has_checkpoint_values")
        for child in copy.children:
            child.node_id += offset
        for slot in copy.slot_variables:
            slot.original_variable_node_id += offset
            slot.slot_variable_node_id += offset
        kept = [a for a in copy.attributes if a.name == "VARIABLE_VALUE" and a.checkpoint_key in paired]
        del copy.attributes[:]
        for attr in kept:
            copy.attributes.add().CopyFrom(attr)
            copy.attributes[-1].checkpoint_key = "model/" + attr.checkpoint_key
    root.children.add(node_id=offset, local_name="model")
    renamed = {name: "model/" + target.key for name, target in pairs.items()}

    optimizer_id = None

    def optimizer():
        nonlocal optimizer_id
        if optimizer_id is None:
            optimizer_id = len(out.nodes)
            out.nodes.add()
            root.children.add(node_id=optimizer_id, local_name="optimizer")
        return out.nodes[optimizer_id]

    derived = {}
    for key in sorted(slots):
        variable, slot = slots[key]
        if variable not in pairs or key in dropped_by_map:
            continue
        target = pairs[variable]
        path = target.key[:-len(VALUE_SUFFIX)] if target.key.endswith(VALUE_SUFFIX) else target.key
        slot_id = len(out.nodes)
        checkpoint_key = "model/%s%soptimizer/%s%s" % (path, SLOT_MARK, escape(slot), VALUE_SUFFIX)
        out.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=key, checkpoint_key=checkpoint_key)
        optimizer().slot_variables.add(original_variable_node_id=target.node + offset, slot_name=slot,
                                       slot_variable_node_id=slot_id)
        derived[key] = checkpoint_key
    for key in sorted(state):
        if key in dropped_by_map:
            continue
        node_id = len(out.nodes)
        checkpoint_key = "optimizer/%s%s" % (escape(key), VALUE_SUFFIX)
        out.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=key, checkpoint_key=checkpoint_key)
        optimizer().children.add(node_id=node_id, local_name=key)
        derived[key] = checkpoint_key
    if _GLOBAL_STEP in source and _GLOBAL_STEP not in pairs and _GLOBAL_STEP not in dropped_by_map:
        node_id = len(out.nodes)
        checkpoint_key = "%s%s" % (_GLOBAL_STEP, VALUE_SUFFIX)
        out.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=_GLOBAL_STEP, checkpoint_key=checkpoint_key)
        root.children.add(node_id=node_id, local_name=_GLOBAL_STEP)
        derived[_GLOBAL_STEP] = checkpoint_key
    # tf.train.Checkpoint counts its saves in `save_counter`; restoring expects it.
    node_id = len(out.nodes)
    out.nodes.add().attributes.add(name="VARIABLE_VALUE", full_name=SAVE_COUNTER,
                                   checkpoint_key=SAVE_COUNTER + VALUE_SUFFIX)
    root.children.add(node_id=node_id, local_name=SAVE_COUNTER)
    _mark_values(out)
    renamed.update(derived)
    import numpy as np

    rename_checkpoint(in_prefix, out_prefix, renamed, {OBJECT_GRAPH_KEY: out.SerializeToString(),
                                                       SAVE_COUNTER + VALUE_SUFFIX: np.int64(0)})
    dropped = sorted(k for k in source if k not in renamed and k != OBJECT_GRAPH_KEY)
    unmatched = sorted(t.full_name or t.key for t in targets if t.key not in paired)
    return Conversion("object", out_prefix, Path(), renamed, how, dropped, unmatched)


def _mark_values(graph) -> None:
    """has_checkpoint_values on every node whose subtree (children, slots) holds a saved tensor."""
    memo: Dict[int, bool] = {}

    def has(node_id: int, seen: frozenset) -> bool:
        if node_id in memo:
            return memo[node_id]
        node = graph.nodes[node_id]
        found = bool(node.attributes)
        for child in node.children:
            if child.node_id not in seen and has(child.node_id, seen | {node_id}):
                found = True
        for slot in node.slot_variables:
            found = found or has(slot.slot_variable_node_id, seen | {node_id})
        memo[node_id] = found
        return found

    for node_id in range(len(graph.nodes)):
        graph.nodes[node_id].has_checkpoint_values.value = has(node_id, frozenset())


# ---- object-based -> name-based -----------------------------------------------


def object_to_names(prefix) -> Tuple[Dict[str, str], List[str]]:
    """{object-based key: TF 1.x name} for every variable of an object-based checkpoint, and what is left out.

    A variable keeps the name it had (the object graph's full_name, e.g.
    ``dense/kernel``); an optimizer slot becomes ``<variable name>/<Adam|Adam_1|
    Momentum|...>``; a tensor without a usable name gets its object path.
    """
    graph = object_graph(prefix)
    if graph is None:
        raise TranspileError("%s is name-based already" % prefix)
    names: Dict[str, str] = {}
    slot_of: Dict[int, Tuple[int, str]] = {}
    for node in graph.nodes:
        for slot in node.slot_variables:
            slot_of[slot.slot_variable_node_id] = (slot.original_variable_node_id, slot.slot_name)

    def variable_name(node_id: int) -> Optional[str]:
        for attr in graph.nodes[node_id].attributes:
            if attr.name == "VARIABLE_VALUE":
                return attr.full_name or _path_name(attr.checkpoint_key)
        return None

    skipped = []
    for node_id, node in enumerate(graph.nodes):
        for attr in node.attributes:
            if attr.name != "VARIABLE_VALUE" or attr.checkpoint_key == SAVE_COUNTER + VALUE_SUFFIX:
                skipped.append(attr.checkpoint_key)
                continue
            name = attr.full_name or _path_name(attr.checkpoint_key)
            if node_id in slot_of:
                original, slot = slot_of[node_id]
                base = variable_name(original)
                if base and not name.startswith(base + "/"):
                    name = "%s/%s" % (base, SLOT_SUFFIXES.get(slot, slot))
            names[attr.checkpoint_key] = name
    # unique names: a second `Variable` becomes `Variable_1`, as TF 1.x would have named it
    seen: Dict[str, int] = {}
    for key in sorted(names):
        name = names[key]
        if name in seen:
            seen[name] += 1
            names[key] = "%s_%d" % (name, seen[name])
        else:
            seen[name] = 0
    return names, skipped


def _path_name(key: str) -> str:
    path = key[:-len(VALUE_SUFFIX)] if key.endswith(VALUE_SUFFIX) else key
    return path.replace(".S", "/").replace("..", ".")


def _to_names(in_prefix: Path, out_prefix: Path, source: Dict[str, Entry],
              given: Optional[Dict[str, Optional[str]]]) -> Conversion:
    names, _ = object_to_names(in_prefix)
    if given is not None:
        for key, name in given.items():
            if key not in names:
                raise TranspileError("--var-map: the checkpoint has no variable %s" % key)
            if name is None:
                del names[key]
            else:
                names[key] = name
    rename_checkpoint(in_prefix, out_prefix, names)
    dropped = sorted(set(source) - set(names) - {OBJECT_GRAPH_KEY})
    return Conversion("names", out_prefix, Path(), names, {}, dropped, [])
