"""A seeded mutation fuzzer of the tf-transpile command line (issue 13, "Hardening").

Each case copies a small seed model (tests/data) into a fresh directory, damages it
(bytes, protobuf structure, the file system around it, or a hostile rule file given
with --rules), runs the real CLI, ``python3 -m transpiler ...``, in a subprocess under
a wall timeout and an address-space limit, and classifies what happened:

    exit 0 / exit 1 / exit 2      clean outcomes (converted / cannot convert / bad input)
    exit 3                        an internal error: a bug
    other exit                    any other status (a signal, a crash)
    hang                          the wall timeout passed
    over memory                   MemoryError, a crash under the address-space limit, or peak RSS over the bound
    traceback                     "Traceback" on stderr (a bug even with exit 1 or 2)
    stderr not one line           exit 2 with other than one "tf-transpile: error: ..." line
                                  (exit 1 of a conversion: the report, then that line last;
                                  check and explain print their report on stdout)
    IN changed                    a path, byte, mode, mtime or link target of the IN tree changed
                                  (a model file: of what was in its directory before the run)
    outside bytes in OUT          the secret marker planted outside IN appears in what was written
    temp left                     a .tf-transpile-* temporary beside OUT after the run
    OUT after failure             a non-zero exit left a new or changed OUT
    no OUT after success          exit 0 without OUT
    fuzzer error                  the fuzzer itself failed on the case (its bug, still counted)

Everything about a case derives from (seed, index) (protobuf maps are visited in sorted order): ``tools/fuzz.py --seed S --only I``
reruns one case. tests/test_fuzz.py runs a CI subset; tools/fuzz.py is the long run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

#: Clean outcomes; every other outcome is a finding.
CLEAN = ("exit 0", "exit 1", "exit 2")
BAD = ("exit 3", "other exit", "hang", "over memory", "traceback", "stderr not one line", "IN changed",
       "outside bytes in OUT", "temp left", "OUT after failure", "no OUT after success", "fuzzer error")

ERROR_PREFIX = "tf-transpile: error: "
GIB = 1 << 30


# ---------------------------------------------------------------------------
# seed models: (name, path of the model inside tests/data, kind)

@dataclasses.dataclass(frozen=True)
class Seed:
    name: str
    #: Relative to tests/data: a SavedModel directory or a model file.
    source: str
    #: "saved_model", "graph_def" or "meta_graph"
    kind: str
    #: Targets worth converting it for (the first is the usual one).
    targets: Tuple[str, ...] = ("1.8",)


SEEDS = (
    Seed("sm_v2", "tensorflow__sm_half_plus_two_v2_2018", "saved_model", ("1.8", "1.4", "1.15", "2.21")),
    Seed("sm_tf2", "serving__saved_model_half_plus_two_tf2_cpu", "saved_model", ("1.8", "1.15")),
    Seed("sm_pbtxt", "tensorflow__sm_half_plus_two_pbtxt_2016", "saved_model", ("1.8", "1.12")),
    Seed("pb", "rust__addition_tf217/model.pb", "graph_def", ("1.8", "1.4", "2.21")),
    Seed("pbtxt", "tensorflow__parse_example_graph_def/parse_example_graph_def.pbtxt", "graph_def", ("1.8", "1.4")),
    Seed("meta", "TensorFlow.NET__cond_test_meta/cond_test.meta", "meta_graph", ("1.4", "1.8")),
)


# ---------------------------------------------------------------------------
# a case: where it runs and what it runs

@dataclasses.dataclass
class Work:
    """The directory of one case and what the mutators may change."""

    root: Path
    rng: random.Random
    seed: Seed
    marker: bytes
    #: The IN tree (hashed before and after); IN itself is `in_path`.
    in_tree: Path = None
    in_path: Path = None
    out: Path = None
    outside: Path = None
    command: List[str] = dataclasses.field(default_factory=list)
    #: "convert", "check" or "explain"
    action: str = "convert"
    #: Options after IN OUT (or after IN for check/explain).
    options: List[str] = dataclasses.field(default_factory=list)
    detail: List[str] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        self.detail.append(text)

    def model_files(self, suffixes: Sequence[str] = ()) -> List[Path]:
        """The regular files of the IN tree (optionally only those whose name ends in one of `suffixes`)."""
        files = sorted(p for p in self.in_tree.rglob("*") if p.is_file() and not p.is_symlink())
        if suffixes:
            files = [p for p in files if any(p.name.endswith(s) or s in p.name for s in suffixes)]
        return files


def _prepare(work: Work) -> None:
    """Copy the seed into root/box/in (writable), plant the secret outside it."""
    box = work.root / "box"
    work.in_tree = box / "in"
    source = DATA / work.seed.source
    if source.is_dir():
        shutil.copytree(source, work.in_tree)
        work.in_path = work.in_tree
    else:
        work.in_tree.mkdir(parents=True)
        shutil.copy(source, work.in_tree / source.name)
        work.in_path = work.in_tree / source.name
    for p in [work.in_tree] + list(work.in_tree.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    work.outside = work.root / "outside"
    work.outside.mkdir()
    (work.outside / "secret.txt").write_bytes(b"secret " + work.marker + b"\n")
    (work.outside / "dir").mkdir()
    (work.outside / "dir" / "passwd").write_bytes(b"root:x:0:0 " + work.marker + b"\n")
    suffix = {"graph_def": work.in_path.suffix, "meta_graph": ".meta"}.get(work.seed.kind, "")
    work.out = work.root / ("out" + suffix)


# ---------------------------------------------------------------------------
# byte mutators

def _pick_file(work: Work, suffixes: Sequence[str] = ()) -> Optional[Path]:
    files = [p for p in work.model_files(suffixes) if p.name != "reference_io.json"]
    return work.rng.choice(files) if files else None


def _model_file_candidates(work: Work) -> List[Path]:
    return [p for p in work.model_files((".pb", ".pbtxt", ".meta", "variables.index", "variables.data-"))
            if p.name != "reference_io.json"]


def mutate_bitflip(work: Work) -> None:
    path = work.rng.choice(_model_file_candidates(work))
    data = bytearray(path.read_bytes())
    if not data:
        return
    for _ in range(work.rng.randint(1, 8)):
        i = work.rng.randrange(len(data))
        data[i] ^= 1 << work.rng.randrange(8)
    path.write_bytes(bytes(data))
    work.note("flipped bits in %s" % path.name)


def mutate_truncate(work: Work) -> None:
    path = work.rng.choice(_model_file_candidates(work))
    data = path.read_bytes()
    cut = work.rng.randrange(len(data)) if data else 0
    path.write_bytes(data[:cut])
    work.note("truncated %s to %d of %d bytes" % (path.name, cut, len(data)))


def mutate_insert(work: Work) -> None:
    path = work.rng.choice(_model_file_candidates(work))
    data = path.read_bytes()
    at = work.rng.randrange(len(data) + 1)
    junk = bytes(work.rng.randrange(256) for _ in range(work.rng.randint(1, 64)))
    if work.rng.random() < 0.3:  # a varint that claims a huge length
        junk = b"\x0a\xff\xff\xff\xff\x0f" + junk
    path.write_bytes(data[:at] + junk + data[at:])
    work.note("inserted %d bytes into %s at %d" % (len(junk), path.name, at))


def mutate_text(work: Work) -> None:
    """Line-level damage to a text proto (or any model file): drop, duplicate or swap lines."""
    path = _pick_file(work, (".pbtxt",)) or work.rng.choice(_model_file_candidates(work))
    lines = path.read_bytes().split(b"\n")
    i, j = work.rng.randrange(len(lines)), work.rng.randrange(len(lines))
    how = work.rng.choice(["drop", "duplicate", "swap", "garbage"])
    if how == "drop":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[j])
    elif how == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i][:work.rng.randrange(len(lines[i]) + 1)] + work.rng.choice(
            [b"{", b"}", b"\"", b"\\x", b"\xff\xfe", b"9" * 40, b"attr { key: \"T\" }", b"\x00"])
    path.write_bytes(b"\n".join(lines))
    work.note("%s line %d of %s" % (how, i, path.name))


# ---------------------------------------------------------------------------
# structural (protobuf) mutators: each edits the parsed graph and writes it back in the same encoding

def _protos():
    from transpiler.io import protos

    return protos


def _graph_file(work: Work) -> Path:
    if work.seed.kind == "saved_model":
        return next(p for p in (work.in_tree / "saved_model.pb", work.in_tree / "saved_model.pbtxt") if p.exists())
    return work.in_path


def _load(work: Work):
    """(message, [meta graphs or None], graph_defs, path, text) of the model's graph file."""
    protos = _protos()
    path = _graph_file(work)
    text = path.suffix == ".pbtxt"
    message = {"saved_model": protos.saved_model_pb2.SavedModel, "meta_graph": protos.meta_graph_pb2.MetaGraphDef,
               "graph_def": protos.graph_pb2.GraphDef}[work.seed.kind]()
    if text:
        protos.text_format.Parse(path.read_text(), message)
    else:
        message.ParseFromString(path.read_bytes())
    metas = list(message.meta_graphs) if work.seed.kind == "saved_model" else \
        [message] if work.seed.kind == "meta_graph" else []
    graphs = [m.graph_def for m in metas] if metas else [message]
    return message, metas, graphs, path, text


def _store(message, path: Path, text: bool) -> None:
    protos = _protos()
    path.write_bytes(protos.text_format.MessageToString(message).encode() if text else message.SerializeToString())


def _structural(edit: Callable[[Work, list, list], str]) -> Callable[[Work], None]:
    """A mutator from `edit(work, metas, graph_defs) -> description`."""

    def mutate(work: Work) -> None:
        message, metas, graphs, path, text = _load(work)
        work.note(edit(work, metas, graphs))
        _store(message, path, text)

    mutate.__name__ = edit.__name__
    mutate.__doc__ = edit.__doc__
    return mutate


def _all_nodes(graph) -> list:
    return list(graph.node) + [n for f in graph.library.function for n in f.node_def]


def _random_node(work: Work, graphs, with_inputs: bool = False):
    nodes = [n for g in graphs for n in _all_nodes(g) if n.input or not with_inputs]
    return work.rng.choice(nodes) if nodes else None


def _random_input(work: Work, graphs):
    """(a node that has inputs, the index of one of them), or (None, None)."""
    node = _random_node(work, graphs, with_inputs=True)
    return (node, work.rng.randrange(len(node.input))) if node is not None else (None, None)


@_structural
def drop_input(work: Work, metas, graphs) -> str:
    node, i = _random_input(work, graphs)
    if node is None:
        return "no node with inputs"
    removed = node.input[i]
    del node.input[i]
    return "deleted input %d (%s) of %s" % (i, removed, node.name)


@_structural
def rename_input(work: Work, metas, graphs) -> str:
    node, i = _random_input(work, graphs)
    if node is None:
        return "no node with inputs"
    base = node.input[i].lstrip("^").split(":")[0]
    node.input[i] = work.rng.choice([base + ":abc", base + ":-1", base + ":99999999999999999999", base + ":",
                                     ":0", "^" + base + ":1", base + ":out:x", base + ":0:0"])
    return "input %d of %s -> %s" % (i, node.name, node.input[i])


@_structural
def dangling_input(work: Work, metas, graphs) -> str:
    node = _random_node(work, graphs)
    ghost = work.rng.choice(["ghost", "^ghost", "ghost:3", node.name, "^" + node.name, ""])
    node.input.append(ghost)
    return "added input %r to %s" % (ghost, node.name)


def _huge_shape(work: Work, shape) -> str:
    shape.ClearField("dim")
    dims = work.rng.choice([[2 ** 31], [2 ** 31, 2 ** 31], [2 ** 62, 4], [-5], [2 ** 63 - 1], [-1, 2 ** 40],
                            [1] * 300, [0, 2 ** 62]])
    for d in dims:
        shape.dim.add(size=d)
    if work.rng.random() < 0.2:
        shape.unknown_rank = True
    return str(dims[:4])


@_structural
def huge_shape(work: Work, metas, graphs) -> str:
    """Huge or negative dims in a Const's tensor_shape, a shape attr, or a signature's TensorInfo."""
    consts = [n for g in graphs for n in _all_nodes(g) if n.op == "Const" and "value" in n.attr]
    shaped = [(n, k) for g in graphs for n in _all_nodes(g) for k in sorted(n.attr) if n.attr[k].HasField("shape")]
    infos = [s.inputs[k] for m in metas for _, s in sorted(m.signature_def.items()) for k in sorted(s.inputs)]
    infos += [s.outputs[k] for m in metas for _, s in sorted(m.signature_def.items()) for k in sorted(s.outputs)]
    choices = [c for c in ("const", "attr", "signature") if {"const": consts, "attr": shaped, "signature": infos}[c]]
    which = work.rng.choice(choices) if choices else None
    if which == "const":
        node = work.rng.choice(consts)
        return "Const %s shape %s" % (node.name, _huge_shape(work, node.attr["value"].tensor.tensor_shape))
    if which == "attr":
        node, key = work.rng.choice(shaped)
        return "%s.%s %s" % (node.name, key, _huge_shape(work, node.attr[key].shape))
    if which == "signature":
        return "signature tensor shape %s" % _huge_shape(work, work.rng.choice(infos).tensor_shape)
    return "nothing shaped"


@_structural
def recursive_function(work: Work, metas, graphs) -> str:
    """A library function f whose body calls f, called from the graph (or f -> g -> f)."""
    protos = _protos()
    graph = graphs[0]
    names = ["fuzz_f", "fuzz_g"] if work.rng.random() < 0.5 else ["fuzz_f"]
    for i, name in enumerate(names):
        f = graph.library.function.add()
        f.signature.name = name
        f.signature.input_arg.add(name="x", type=protos.types_pb2.DT_FLOAT)
        f.signature.output_arg.add(name="y", type=protos.types_pb2.DT_FLOAT)
        call = f.node_def.add(name="call", op=names[(i + 1) % len(names)], input=["x"])
        call.attr["T"].type = protos.types_pb2.DT_FLOAT
        f.ret["y"] = "call:y:0"
    x = graph.node.add(name="fuzz_x", op="Placeholder")
    x.attr["dtype"].type = protos.types_pb2.DT_FLOAT
    how = work.rng.choice(["direct", "PartitionedCall", "StatefulPartitionedCall"])
    if how == "direct":
        graph.node.add(name="fuzz_call", op="fuzz_f", input=["fuzz_x"])
    else:
        node = graph.node.add(name="fuzz_call", op=how, input=["fuzz_x"])
        node.attr["f"].func.name = "fuzz_f"
        node.attr["Tin"].list.type.append(protos.types_pb2.DT_FLOAT)
        node.attr["Tout"].list.type.append(protos.types_pb2.DT_FLOAT)
    return "recursive library %s called %s" % ("->".join(names + names[:1]), how)


@_structural
def if_without_branch(work: Work, metas, graphs) -> str:
    """An If (or While/Case) node missing a branch/body attr, or naming a function that does not exist."""
    protos = _protos()
    graph = graphs[0]
    for name, dtype in (("fuzz_pred", protos.types_pb2.DT_BOOL), ("fuzz_x", protos.types_pb2.DT_FLOAT)):
        node = graph.node.add(name=name, op="Placeholder")
        node.attr["dtype"].type = dtype
    f = graph.library.function.add()
    f.signature.name = "fuzz_branch"
    f.signature.input_arg.add(name="x", type=protos.types_pb2.DT_FLOAT)
    f.signature.output_arg.add(name="y", type=protos.types_pb2.DT_FLOAT)
    f.ret["y"] = "x"
    op = work.rng.choice(["If", "StatelessIf", "While", "Case"])
    if op == "While":
        node = graph.node.add(name="fuzz_cf", op=op, input=["fuzz_x"])
        node.attr[work.rng.choice(["cond", "body"])].func.name = "fuzz_branch"
    else:
        node = graph.node.add(name="fuzz_cf", op=op, input=["fuzz_pred" if op != "Case" else "fuzz_x", "fuzz_x"])
        kept = work.rng.choice(["else_branch", "then_branch", None, "ghost"])
        if op == "Case":
            node.attr["branches"].list.func.add(name="fuzz_branch" if kept else "ghost")
        elif kept == "ghost":
            node.attr["then_branch"].func.name = "ghost"
            node.attr["else_branch"].func.name = "fuzz_branch"
        elif kept:
            node.attr[kept].func.name = "fuzz_branch"
    node.attr["Tin" if op != "While" else "T"].list.type.append(protos.types_pb2.DT_FLOAT)
    if op != "While":
        node.attr["Tout"].list.type.append(protos.types_pb2.DT_FLOAT)
    consumer = graph.node.add(name="fuzz_y", op="Identity", input=["fuzz_cf"])
    consumer.attr["T"].type = protos.types_pb2.DT_FLOAT
    return "%s with attrs %s" % (op, sorted(node.attr))


@_structural
def signature_missing_node(work: Work, metas, graphs) -> str:
    if not metas:
        node = _random_node(work, graphs)
        node.name = work.rng.choice(["", "a:b", "x" * 5000, "^c", node.name + "/"])
        return "renamed a node to %r" % node.name[:20]
    meta = work.rng.choice(metas)
    key = work.rng.choice(sorted(meta.signature_def) + ["fuzz"])
    signature = meta.signature_def[key]
    where = signature.outputs if work.rng.random() < 0.5 else signature.inputs
    entry = work.rng.choice(sorted(where) + ["fuzz"])
    where[entry].name = work.rng.choice(["missing:0", "missing", "", ":0", "x:abc", "^y"])
    if work.rng.random() < 0.3:
        where[entry].dtype = 9999
    return "signature %s %s -> %r" % (key, entry, where[entry].name)


@_structural
def string_const_to_save(work: Work, metas, graphs) -> str:
    """A DT_STRING Const claiming 2^31 elements (one stored), feeding a SaveV2 / RestoreV2."""
    protos = _protos()
    graph = graphs[0]
    const = graph.node.add(name="fuzz_names", op="Const")
    const.attr["dtype"].type = protos.types_pb2.DT_STRING
    tensor = const.attr["value"].tensor
    tensor.dtype = protos.types_pb2.DT_STRING
    tensor.tensor_shape.dim.add(size=work.rng.choice([2 ** 31, 2 ** 40, 2 ** 62]))
    tensor.string_val.append(b"v")
    prefix = graph.node.add(name="fuzz_prefix", op="Const")
    prefix.attr["dtype"].type = protos.types_pb2.DT_STRING
    prefix.attr["value"].tensor.dtype = protos.types_pb2.DT_STRING
    prefix.attr["value"].tensor.string_val.append(b"model")
    op = work.rng.choice(["SaveV2", "RestoreV2"])
    inputs = ["fuzz_prefix", "fuzz_names", "fuzz_names"] + (["fuzz_names"] if op == "SaveV2" else [])
    node = graph.node.add(name="fuzz_save", op=op, input=inputs)
    node.attr["dtypes"].list.type.append(protos.types_pb2.DT_STRING)
    for meta in metas:
        if meta.HasField("saver_def") and work.rng.random() < 0.5:
            meta.saver_def.save_tensor_name = "fuzz_save"
    return "%s fed a DT_STRING Const of shape %s" % (op, [d.size for d in tensor.tensor_shape.dim])


@_structural
def graph_damage(work: Work, metas, graphs) -> str:
    """Duplicate names, empty ops, cycles, attrs of the wrong type, bogus versions, deep function chains."""
    protos = _protos()
    graph = work.rng.choice(graphs)
    node = _random_node(work, [graph])
    how = work.rng.choice(["duplicate", "empty-op", "cycle", "self-control", "attr-type", "versions",
                           "deep-chain", "many-inputs", "tensor-content", "unknown-dtype", "drop-attr"])
    if how == "duplicate":
        graph.node.add().CopyFrom(node)
    elif how == "empty-op":
        node.op = work.rng.choice(["", "NoSuchOp", "If", "Const", "PartitionedCall"])
    elif how == "cycle":
        other = _random_node(work, [graph])
        node.input.append(other.name)
        other.input.append(node.name)
    elif how == "self-control":
        node.input.append("^" + node.name)
    elif how == "attr-type":
        key = work.rng.choice(sorted(node.attr) or ["T"])
        value = node.attr[key]
        choice = work.rng.choice(["s", "i", "list", "func", "tensor", "placeholder"])
        value.Clear()
        if choice == "s":
            value.s = b"\xff\xfe"
        elif choice == "i":
            value.i = -2 ** 63
        elif choice == "list":
            value.list.i.extend([2 ** 40] * 5)
        elif choice == "func":
            value.func.name = "ghost"
        elif choice == "tensor":
            value.tensor.dtype = protos.types_pb2.DT_RESOURCE
        else:
            value.placeholder = "$T"
        how += " %s.%s=%s" % (node.name, key, choice)
    elif how == "versions":
        graph.versions.producer = work.rng.choice([-1, 2 ** 31 - 1, 0, 9999])
        graph.versions.min_consumer = work.rng.choice([2 ** 31 - 1, 5000])
        graph.versions.bad_consumers.append(work.rng.randint(0, 40))
    elif how == "deep-chain":
        depth = work.rng.choice([200, 2000])
        for i in range(depth):
            f = graph.library.function.add()
            f.signature.name = "fuzz_chain_%d" % i
            f.signature.input_arg.add(name="x", type=protos.types_pb2.DT_FLOAT)
            f.signature.output_arg.add(name="y", type=protos.types_pb2.DT_FLOAT)
            f.node_def.add(name="call", op="fuzz_chain_%d" % (i + 1) if i + 1 < depth else "Identity", input=["x"])
            if i + 1 == depth:
                f.node_def[0].attr["T"].type = protos.types_pb2.DT_FLOAT
            f.ret["y"] = "call:y:0" if i + 1 < depth else "call:output:0"
        x = graph.node.add(name="fuzz_x", op="Placeholder")
        x.attr["dtype"].type = protos.types_pb2.DT_FLOAT
        graph.node.add(name="fuzz_call", op="fuzz_chain_0", input=["fuzz_x"])
        how += " %d" % depth
    elif how == "many-inputs":
        node.input.extend([node.input[0] if node.input else node.name] * 20000)
    elif how == "tensor-content":
        consts = [n for n in _all_nodes(graph) if n.op == "Const"] or [node]
        tensor = work.rng.choice(consts).attr["value"].tensor
        tensor.tensor_content = b"\x01" * work.rng.choice([1, 3, 7, 4097])
    elif how == "unknown-dtype":
        for key in sorted(node.attr):
            if node.attr[key].HasField("type"):
                node.attr[key].type = work.rng.choice([0, 999, 101, 120])
    else:
        for key in sorted(node.attr)[:1]:
            del node.attr[key]
    return "%s on %s" % (how, node.name)


# ---------------------------------------------------------------------------
# file-system mutators

def _link_target(work: Work, kind: str) -> Path:
    return {"file": work.outside / "secret.txt", "dir": work.outside / "dir", "dangling": work.outside / "nothing",
            "loop": work.in_tree / "loop"}[kind]


def mutate_symlink(work: Work) -> None:
    """A symbolic link in IN: to a secret file outside, to a directory, dangling, a loop; or a model file
    (a checkpoint shard, the graph) replaced by a link to a copy outside that ends with the secret."""
    kind = work.rng.choice(["file", "dir", "dangling", "loop", "replace", "replace", "assets-dir"])
    if kind == "replace":
        victim = work.rng.choice(work.model_files())
        copy = work.outside / ("copy-" + victim.name)
        copy.write_bytes(victim.read_bytes() + work.marker)
        victim.unlink()
        victim.symlink_to(copy)
        work.note("%s -> a copy outside IN with the secret appended" % victim.name)
        return
    if kind == "assets-dir":
        assets = work.in_tree / "assets"
        if assets.is_dir():
            shutil.rmtree(assets)
        assets.symlink_to(work.outside / "dir")
        work.note("assets/ -> a directory outside IN")
        return
    where = work.rng.choice([p for p in [work.in_tree] + [d for d in work.in_tree.rglob("*") if d.is_dir()]])
    name = "loop" if kind == "loop" else "linked"
    target = _link_target(work, kind) if kind != "loop" else where / "loop"
    (where / name).symlink_to(target)
    work.note("link %s -> %s" % ((where / name).relative_to(work.root), target))


def mutate_out_path(work: Work) -> None:
    """OUT inside IN, OUT the parent of IN (--force), an existing OUT, a long name, OUT through a link."""
    how = work.rng.choice(["inside", "same", "parent", "exists", "exists-force", "long", "long", "parent-missing",
                           "parent-is-file", "out-link", "out-is-in-file", "dotdot"])
    if how == "inside":
        work.out = work.in_tree / work.rng.choice(["sub", "variables", "assets/x", "out.pb"])
    elif how == "same":
        work.out = work.in_path
    elif how == "parent":
        work.out = work.in_tree.parent
        work.options.append("--force")
    elif how in ("exists", "exists-force"):
        if work.out.suffix:
            work.out.write_bytes(b"mine " + b"x" * 100)
        else:
            work.out.mkdir()
            (work.out / "keep.txt").write_text("mine")
        if how == "exists-force":
            work.options.append("--force")
    elif how == "long":
        length = work.rng.choice([240, 245, 250, 251, 254, 255, 256, 300])
        suffix = work.out.suffix
        work.out = work.root / ("m" * (length - len(suffix)) + suffix)
        how += " %d" % length
    elif how == "parent-missing":
        work.out = work.root / "no" / "such" / work.out.name
    elif how == "parent-is-file":
        work.out = work.outside / "secret.txt" / work.out.name
    elif how == "out-link":
        link = work.root / ("link" + work.out.suffix)
        link.symlink_to(work.in_path if work.rng.random() < 0.5 else work.outside / "dir")
        work.out = link
        work.options.append("--force")
    elif how == "out-is-in-file":
        work.out = work.rng.choice(work.model_files())
        work.options.append("--force")
    else:
        work.out = work.in_tree / ".." / "in" / "x"
    work.note("OUT %s: %s" % (how, _short(work.out, work.root)))


def _short(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return text if len(text) < 60 else text[:25] + "...(%d)" % len(text)


# ---------------------------------------------------------------------------
# hostile rule files (--rules)

RULE_HEAD = "rules:\n  - id: hostile\n    why: x\n    match: {op: %s}\n"


def _rule_op(work: Work) -> str:
    """An op the seed graph has, so that a hostile rule really fires on it."""
    try:
        _, _, graphs, _, _ = _load(work)
        ops = sorted({n.op for g in graphs for n in g.node})
    except Exception:  # the model itself may have been damaged first
        ops = []
    return work.rng.choice(ops or ["Add"])


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [%s]" % ", ".join(["x"] * 10)]
    lines += ["l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * 10)) for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


HOSTILE_TEMPLATES = (
    "{% for i in range(10**9) %}x{% endfor %}", "{{ lipsum(10**5) }}", "{{ 'a' * 10**10 }}", "{{ [0] * 10**10 }}",
    "{{ 2 ** (10**10) }}", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{{ ''.__class__.__mro__ }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "{{ 1 // 0 }}",
    "{% include '/etc/passwd' %}", "{{ nope.x }}", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "{{ 'x'.center(10**9) }}", "{{ range(10000) | join('x' * 10000) }}", "{{ 10.0 ** 400 }}",
)


def mutate_rules(work: Work) -> None:
    """A hostile rule file given with --rules (YAML bombs, deep nesting, bad bytes, templates, wrong types),
    or a built-in rule file with random damage."""
    op = _rule_op(work)
    head = RULE_HEAD % op
    how = work.rng.choice(["alias-bomb", "deep", "non-utf8", "template-refuse", "template-decompose",
                           "template-decompose", "wrong-types", "damaged-builtin", "damaged-builtin", "special-file",
                           "huge", "empty", "decompose-bad-nodes"])
    path = work.root / "hostile.yaml"
    if how == "alias-bomb":
        text = _alias_bomb(work.rng.choice([6, 8, 9])) + head.replace("why: x", "why: *l6") + "    refuse: r\n"
    elif how == "deep":
        depth = work.rng.choice([70, 5000, 100000])
        text = head + "    refuse: " + work.rng.choice([
            "[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth,
            "\n" + "".join("      " + "  " * i + "-\n" for i in range(min(depth, 3000)))]) + "\n"
    elif how == "non-utf8":
        path.write_bytes((head + "    refuse: 'caf").encode() + bytes([work.rng.choice([0xe9, 0xff, 0xc0, 0x80])])
                         + b"'\n")
        text = None
    elif how in ("template-refuse", "template-decompose"):
        template = work.rng.choice(HOSTILE_TEMPLATES)
        if how == "template-refuse":
            text = head + "    refuse: %s\n" % json.dumps(template)
        else:
            body = (template + '\n- {name: "{{ name }}", op: Identity, inputs: ["{{ inputs[0] }}"], '
                    'attrs: {T: DT_FLOAT}}').replace("\n", "\n      ")
            text = head + "    decompose: |\n      " + body + "\n"
    elif how == "wrong-types":
        field = work.rng.choice(["    priority: [1]\n", "    priority: .nan\n", "    when: {target_before: 2020-01-01}\n",
                                 "    examples: 3\n", "    outputs: {a: 1}\n", "    match: [1]\n", "    refuse: 7\n",
                                 "    rename: {op: [x]}\n", "    when: {target_before: '99.99'}\n",
                                 "    rename: {op: %s, set_attrs: {T: {a: b}}}\n" % op,
                                 "    rename: {op: NoSuchOp}\n", "    rename: {op: Identity, set_attrs: {zz: 1}}\n"])
        text = head + field + ("    refuse: r\n" if "refuse" not in field and "rename" not in field else "")
    elif how == "damaged-builtin":
        source = work.rng.choice(sorted((REPO / "rules").glob("*.yaml")))
        data = bytearray(source.read_bytes())
        for _ in range(work.rng.randint(1, 6)):
            i = work.rng.randrange(len(data))
            data[i] = work.rng.choice(b" :-[]{}'\"&*!|>\n\t#%0aZ")
        path.write_bytes(bytes(data))
        text = None
        how += " " + source.name
    elif how == "special-file":
        path = Path(work.rng.choice(["/dev/zero", "/dev/null", str(work.root), str(work.root / "missing.yaml")]))
        text = None
        how += " " + path.name
    elif how == "huge":
        text = head + "    refuse: r\n" + "# " + "x" * (300 * 1024) + "\n"
    elif how == "empty":
        text = work.rng.choice(["", "rules:\n", "rules: null\n", "---\n", "[]\n", "rules: []\n", "\ufeffrules: []\n"])
    else:
        nodes = work.rng.choice(['- {name: "{{ name }}", op: NoSuchOp}', '- {name: "{{ name }}", op: Identity, inputs: ["ghost:7"]}',
                                 '- {name: "{{ inputs[0] }}", op: Identity, inputs: ["{{ name }}"]}', '[]', 'x: 1',
                                 '- {name: "{{ name }}", op: Const, attrs: {value: {dtype: DT_FLOAT, shape: [99999999999], values: [1]}}}',
                                 '- {name: "{{ name }}", op: Identity, inputs: ["{{ name }}"], attrs: {T: DT_FLOAT}}'])
        text = head + "    decompose: |\n      " + nodes + "\n"
    if text is not None:
        path.write_text(text)
    work.options += ["--rules", str(path)]
    work.note("rules %s" % how)


# ---------------------------------------------------------------------------
# the catalogue

MUTATORS: Dict[str, Tuple[Callable[[Work], None], float]] = {
    "bitflip": (mutate_bitflip, 3), "truncate": (mutate_truncate, 2), "insert": (mutate_insert, 2),
    "text": (mutate_text, 1), "drop_input": (drop_input, 1), "rename_input": (rename_input, 1),
    "dangling_input": (dangling_input, 1), "huge_shape": (huge_shape, 1.5),
    "recursive_function": (recursive_function, 1), "if_without_branch": (if_without_branch, 1),
    "signature_missing_node": (signature_missing_node, 1), "string_const_to_save": (string_const_to_save, 1),
    "graph_damage": (graph_damage, 2), "symlink": (mutate_symlink, 1.5), "out_path": (mutate_out_path, 1.5),
    "rules": (mutate_rules, 2.5),
}


@dataclasses.dataclass
class Case:
    seed: int
    index: int
    model: str
    mutators: List[str]
    command: List[str]
    detail: str
    root: str


@dataclasses.dataclass
class Result:
    case: Case
    outcome: str
    exit_code: Optional[int]
    seconds: float
    max_rss_mib: float
    stderr_tail: str
    findings: List[str]

    @property
    def bad(self) -> bool:
        return self.outcome not in CLEAN

    def repro(self) -> str:
        return "PYTHONPATH=%s python3 %s/tools/fuzz.py --seed %d --only %d --keep /tmp/fuzz-repro" % (
            REPO, REPO, self.case.seed, self.case.index)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["repro"] = self.repro()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        """The inverse of `to_dict` (tools/fuzz.py --merge)."""
        fields = {k: v for k, v in data.items() if k not in ("case", "repro")}
        return cls(case=Case(**data["case"]), **fields)


def build_case(seed: int, index: int, root: Path, allow_upgrade: bool = True) -> Tuple[Case, Work]:
    """Lay out case `index` of `seed` under `root` (created) and return it with its work area."""
    rng = random.Random("%d:%d" % (seed, index))
    model = rng.choice(SEEDS)
    work = Work(root=root, rng=rng, seed=model, marker=("FUZZSECRET%016x" % rng.getrandbits(64)).encode())
    root.mkdir(parents=True)
    _prepare(work)
    names, weights = zip(*[(k, w) for k, (_, w) in MUTATORS.items()])
    chosen = rng.choices(names, weights, k=1 if rng.random() < 0.75 else 2)
    for name in chosen:
        try:
            MUTATORS[name][0](work)
        except Exception as exc:  # e.g. a structural edit of a model a byte mutation broke first
            work.note("%s not applied (%s: %s)" % (name, type(exc).__name__, str(exc)[:60]))
    targets = [t for t in model.targets if allow_upgrade or not t.startswith("2.")]
    target = targets[0] if rng.random() < 0.5 else rng.choice(targets)
    work.action = command = rng.choices(["convert", "check", "explain"], [8, 1, 1])[0]
    options = ["--to", target] + work.options
    if rng.random() < 0.15:
        options += ["--format", "json"]
    if rng.random() < 0.2:
        options += [rng.choice(["--variables=ref", "--inline-functions", "--clear-devices", "--freeze"])]
    args = [str(work.in_path), str(work.out)] if command == "convert" else [command, str(work.in_path)]
    if command == "check":  # check takes --to, --checkpoint and --format only
        options = options[:2] + (["--format", "json"] if "json" in options else [])
    elif command == "explain":
        options = [o for o in options if o != "--force"]
    work.command = [sys.executable, "-m", "transpiler"] + args + options
    case = Case(seed, index, model.name, list(chosen), work.command, "; ".join(work.detail), str(root))
    (root / "case.json").write_text(json.dumps(dataclasses.asdict(case), indent=1))
    return case, work


# ---------------------------------------------------------------------------
# observing a run

def tree_state(root: Path) -> Dict[str, tuple]:
    """Every entry under `root` (links not followed): type, mode, size, mtime, content hash or link target."""
    state = {}
    if not _lexists(root):
        return state
    entries = [root] + sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [root]
    for p in entries:
        st = os.lstat(p)
        if p.is_symlink():
            state[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            state[str(p)] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            state[str(p)] = ("dir", st.st_mode, st.st_mtime_ns)
    return state


def _written(work: Work) -> List[Path]:
    """What the run may have written: OUT and, for a *.meta OUT, its checkpoint beside it."""
    out = work.out
    found = [out] if _lexists(out) else []
    if out.suffix == ".meta" and out.parent.is_dir():
        found += [p for p in out.parent.iterdir() if p.name.startswith(out.stem + ".") and p != out]
        if (out.parent / "checkpoint").exists():
            found.append(out.parent / "checkpoint")
    return found


def _lexists(path: Path) -> bool:
    """Is there an entry (a link counts) at `path`; False for a name the file system cannot hold."""
    try:
        return os.path.lexists(path)
    except OSError:
        return False


def _contains_marker(paths: List[Path], marker: bytes, in_tree: Path) -> List[str]:
    """The files (or links to files) under `paths` holding `marker`, leaving out the IN tree (an OUT that is
    IN's parent holds IN, and IN's own links: "IN changed" and the tool's link check are about those)."""
    hits = []
    for top in paths:
        for p in [top] + (sorted(top.rglob("*")) if top.is_dir() and not top.is_symlink() else []):
            if in_tree == p or in_tree in p.parents:
                continue
            try:
                if p.is_file() and marker in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def _limit(memory: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        os.setsid()

    return apply


def run_case(case: Case, work: Work, timeout: float, memory: int = 6 * GIB) -> Result:
    """Run the case's command and classify the outcome (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_TRANSPILE_DEBUG", None)
    in_before = tree_state(work.in_tree)
    out_before = {str(p): tree_state(p) for p in _written(work)}
    stdout_path, stderr_path = work.root / "stdout.txt", work.root / "stderr.txt"
    start = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(case.command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(work.root), preexec_fn=_limit(memory))
        status, usage, hung = None, None, False
        while status is None:
            pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = raw
                break
            if time.monotonic() - start > timeout:
                hung = True
                _kill_group(proc.pid)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    _kill_group(proc.pid)  # children a crashed run left behind
    rss = usage.ru_maxrss / 1024.0 if usage else 0.0
    stderr = stderr_path.read_bytes().decode("utf-8", "replace")
    code = None if hung else proc.returncode
    findings = _findings(work, code, stderr, rss, memory, in_before, out_before)
    outcome = findings[0].split(":")[0] if findings else "exit %d" % code
    tail = "\n".join(stderr.strip().splitlines()[-3:])
    return Result(case, outcome, code, round(seconds, 2), round(rss, 1), tail[-600:], findings)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def in_changes(work: Work, before: Dict[str, tuple]) -> List[str]:
    """The entries of the IN tree that changed (or appeared, or went) since `before`.

    A SavedModel directory is IN as a whole. A model file is IN with what it reads beside it, not the
    directory it sits in: an OUT written next to it (`model.pb` -> `model_tf18.pb`) is no change to IN,
    so there only the entries that existed before count (and not the directory's own mtime)."""
    after = tree_state(work.in_tree)
    if work.seed.kind == "saved_model":
        return sorted(set(after) ^ set(before) | {k for k in after if k in before and after[k] != before[k]})
    return sorted(k for k, v in before.items() if k != str(work.in_tree) and after.get(k) != v)


def _findings(work: Work, code: Optional[int], stderr: str, rss: float, memory: int, in_before, out_before) -> List[str]:
    """Every bad outcome of the run, most serious first ("outcome: detail")."""
    found = []
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if code is None:
        found.append("hang: no exit within the timeout")
    elif "MemoryError" in stderr or "bad_alloc" in stderr or rss * 1024 * 1024 > memory or (
            code < 0 and code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGKILL, -signal.SIGBUS)):
        found.append("over memory: exit %s, peak RSS %.0f MiB" % (code, rss))
    elif code == 3:
        found.append("exit 3: " + (lines[-1] if lines else ""))
    elif code not in (0, 1, 2):
        found.append("other exit: %s" % code)
    if "Traceback" in stderr:
        found.append("traceback: on stderr")
    if code == 2 and (len(lines) != 1 or not lines[0].startswith(ERROR_PREFIX)):
        found.append("stderr not one line: %d lines" % len(lines))
    if code == 1 and work.action == "convert" and (not lines or not lines[-1].startswith(ERROR_PREFIX)):
        found.append("stderr not one line: exit 1 does not end with the error line")
    changed = in_changes(work, in_before)
    if changed:
        found.append("IN changed: %s" % ", ".join(_short(Path(p), work.root) for p in changed[:3]))
    written = _written(work)
    leaks = _contains_marker(written, work.marker, work.in_tree)
    if leaks:
        found.append("outside bytes in OUT: %s" % ", ".join(_short(Path(p), work.root) for p in leaks[:3]))
    temps = [p for p in _temp_candidates(work) if p.name.startswith(".tf-transpile-") or p.name.startswith(".tf2-host")]
    if temps:
        found.append("temp left: %s" % ", ".join(_short(p, work.root) for p in temps[:3]))
    if code not in (0, None) and {str(p): tree_state(p) for p in written} != out_before:
        found.append("OUT after failure: %s" % ", ".join(_short(p, work.root) for p in written[:3]))
    if code == 0 and work.action == "convert" and not written:
        found.append("no OUT after success: %s" % _short(work.out, work.root))
    return found


def _temp_candidates(work: Work) -> List[Path]:
    dirs = {work.root, work.root / "box", work.in_tree, work.outside}
    if work.out.parent.is_dir():
        dirs.add(work.out.parent)
    return [p for d in dirs if d.is_dir() for p in d.iterdir()]


# ---------------------------------------------------------------------------
# a run of many cases

def run(seed: int, cases: Sequence[int], base: Path, timeout: float, memory: int = 6 * GIB, jobs: int = 1,
        keep: bool = False, allow_upgrade: bool = True, progress: Optional[Callable[[Result], None]] = None
        ) -> List[Result]:
    """Build and run every case index in `cases` under `base`; returns the results in index order."""
    import concurrent.futures

    base.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> Result:
        root = base / ("case-%d" % index)
        if root.exists():
            shutil.rmtree(root)
        try:
            case, work = build_case(seed, index, root, allow_upgrade)
            result = run_case(case, work, timeout, memory)
        except Exception as exc:  # the fuzzer's own bug: counted, never hidden
            case = Case(seed, index, "?", [], [], "", str(root))
            result = Result(case, "fuzzer error", None, 0.0, 0.0, "", ["fuzzer error: %s: %s" % (
                type(exc).__name__, exc)])
        if not keep and not result.bad:
            shutil.rmtree(root, ignore_errors=True)
        if progress:
            progress(result)
        return result

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(one, cases))


def counts(results: Sequence[Result]) -> Dict[str, int]:
    """Number of cases by outcome: every outcome name, zeros included."""
    table = {name: 0 for name in CLEAN + BAD}
    for result in results:
        table[result.outcome] = table.get(result.outcome, 0) + 1
    return table


def secondary(results: Sequence[Result]) -> Dict[str, int]:
    """Every finding of every case (a case can have several: exit 3 with a traceback and a left temp)."""
    table = {name: 0 for name in BAD}
    for result in results:
        for finding in result.findings:
            name = finding.split(":")[0]
            table[name] = table.get(name, 0) + 1
    return table


def summary(results: Sequence[Result]) -> str:
    """Counts by outcome, then one paragraph per bad case with its repro command."""
    lines = ["%d case(s)" % len(results), "%-22s %6s" % ("outcome", "cases")]
    lines += ["%-22s %6d" % (k, v) for k, v in counts(results).items()]
    bad = [r for r in results if r.bad]
    lines.append("%d bad case(s)" % len(bad))
    for r in bad:
        lines.append("case %d [%s %s] %s: %s" % (r.case.index, r.case.model, "+".join(r.case.mutators),
                                                  r.case.detail, "; ".join(r.findings)))
        lines.append("    " + " ".join(shlex.quote(a) for a in r.case.command[1:]))
        if r.stderr_tail:
            lines.append("    stderr: " + r.stderr_tail.replace("\n", "\n            "))
        lines.append("    repro: " + r.repro())
    return "\n".join(lines)
