#!/usr/bin/env python
"""Dump the input ranks each op's shape function refuses in the running TensorFlow, as JSON.

Runs inside any TensorFlow release (Python 2.7 or 3):

    python dump_ranks.py [--out FILE]

For every registered op that can be built from its OpDef alone (no ref
inputs, no function attrs), each single-tensor input is fed a Placeholder of
rank 0..4 (every dim unknown) while the other inputs have unknown shapes, and
the one-node GraphDef is imported (which runs the shape function, as loading a
model does). A rank counts as refused only when the import succeeds with every
input unknown and fails with it, both beside inputs of unknown rank and beside
single-tensor inputs of the same rank (see `refuses`), under each of two attr
choices (the smallest lists and the first allowed type; one-element lists and
the last allowed type), so a refusal that depends on an attr value or on another
input is not recorded.

Output: {"tf_version": ..., "graph_def_version": ..., "refused_ranks":
{op: {input arg: [ranks]}}, "probed": [ops], "unbuildable": {op: reason}}.
An input with no refused rank is left out; so is an op with none.
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from dump_common import tf_version, write_dump  # noqa: E402
from tensorflow.core.framework import attr_value_pb2, graph_pb2, types_pb2  # noqa: E402

v1 = getattr(getattr(tf, "compat", None), "v1", tf)
RANKS = (0, 1, 2, 3, 4)
#: Variant 0 takes the smallest lists and the first allowed type, variant 1 one-element lists and the last.
VARIANTS = (0, 1)


class Unbuildable(Exception):
    """The op cannot be built from its OpDef alone."""


def registered_ops():
    """{name: OpDef} of every op in the release's C++ registry, read as tools/dump_opset.py reads it."""
    from dump_opset import op_list
    return dict((op.name, op) for op in op_list()[0].op)


def _length(attr, variant):
    minimum = attr.minimum if attr.has_minimum else 0
    return max(minimum, 1) if variant else minimum


def _type(attr, variant):
    allowed = list(attr.allowed_values.list.type)
    if not allowed:
        return types_pb2.DT_FLOAT
    return allowed[-1] if variant else allowed[0]


def attr_values(op_def, variant):
    """{name: AttrValue} for every attr without a default; raises Unbuildable for func attrs."""
    values = {}
    for attr in op_def.attr:
        if "func" in attr.type:
            raise Unbuildable("func attr %s" % attr.name)
        if attr.HasField("default_value"):
            continue
        value = attr_value_pb2.AttrValue()
        n = _length(attr, variant)
        if attr.type == "type":
            value.type = _type(attr, variant)
        elif attr.type == "int":
            value.i = attr.minimum if attr.has_minimum else variant
        elif attr.type == "float":
            value.f = 0.5
        elif attr.type == "bool":
            value.b = False
        elif attr.type == "string":
            allowed = list(attr.allowed_values.list.s)
            value.s = allowed[0] if allowed else b""
        elif attr.type == "shape":
            value.shape.unknown_rank = True
        elif attr.type == "tensor":
            value.tensor.dtype = types_pb2.DT_FLOAT
            value.tensor.float_val.append(0.0)
        elif attr.type == "list(type)":
            value.list.type.extend([_type(attr, variant)] * n)
        elif attr.type == "list(int)":    # variant 1: four ones, what strides and ksize take
            value.list.i.extend([1] * (4 if variant else n))
        elif attr.type == "list(float)":
            value.list.f.extend([0.5] * n)
        elif attr.type == "list(string)":
            value.list.s.extend([b"a"] * n)
        elif attr.type == "list(shape)":
            for _ in range(n):
                value.list.shape.add().unknown_rank = True
        elif attr.type == "list(bool)":
            value.list.b.extend([False] * n)
        else:
            raise Unbuildable("attr %s of type %s" % (attr.name, attr.type))
        values[attr.name] = value
    # An int that sizes an input list follows the list-length choice.
    for arg in op_def.input_arg:
        if arg.number_attr and arg.number_attr in values:
            attr = next(a for a in op_def.attr if a.name == arg.number_attr)
            values[arg.number_attr].i = _length(attr, variant)
    return values


def _attr_default(op_def, name, values):
    if name in values:
        return values[name]
    return next(a.default_value for a in op_def.attr if a.name == name)


def input_types(op_def, arg, values):
    """The dtypes fed to input `arg`: one per tensor (a list arg may take several, or none)."""
    if arg.is_ref:
        raise Unbuildable("ref input %s" % arg.name)
    if arg.type_list_attr:
        return list(_attr_default(op_def, arg.type_list_attr, values).list.type)
    dtype = arg.type if arg.type else _attr_default(op_def, arg.type_attr, values).type
    count = _attr_default(op_def, arg.number_attr, values).i if arg.number_attr else 1
    return [dtype] * count


def graph_def(op_def, values, ranks):
    """One node of `op_def` fed by Placeholders; `ranks` maps an input arg to the rank it gets.
    The Placeholders come first: TF 1.4's importer skips the shape functions of a node listed
    before its inputs."""
    gd = graph_pb2.GraphDef()
    gd.versions.producer = v1.GRAPH_DEF_VERSION
    feeds = []
    for arg in op_def.input_arg:
        for i, dtype in enumerate(input_types(op_def, arg, values)):
            feeds.append(placeholder(gd, "in_%s_%d" % (arg.name, i), dtype, ranks.get(arg.name)))
    node = gd.node.add(name="probe", op=op_def.name, input=feeds)
    for name, value in values.items():
        node.attr[name].CopyFrom(value)
    return gd


def placeholder(gd, name, dtype, rank):
    """Add a Placeholder of `dtype`, of `rank` unknown dims (None: unknown rank); returns its name."""
    feed = gd.node.add(name=name, op="Placeholder")
    feed.attr["dtype"].type = dtype
    if rank is None:
        feed.attr["shape"].shape.unknown_rank = True
    else:
        feed.attr["shape"].shape.SetInParent()    # rank 0 has no dims: the field must still be set
        for _ in range(rank):
            feed.attr["shape"].shape.dim.add(size=-1)
    return name


def imports(gd):
    """(True, "") when the GraphDef imports (shape functions run), else (False, first error line)."""
    try:
        with tf.Graph().as_default():
            v1.import_graph_def(gd, name="")
        return True, ""
    except Exception as exc:  # any refusal is the answer
        return False, (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def probe_variant(op_def, variant):
    """{input arg: set of refused ranks} under one attr choice; raises Unbuildable."""
    values = attr_values(op_def, variant)
    ok, error = imports(graph_def(op_def, values, {}))
    if not ok:
        raise Unbuildable(error[:200])
    single = [arg.name for arg in op_def.input_arg
              if not (arg.number_attr or arg.type_list_attr or arg.type == types_pb2.DT_RESOURCE)]
    refused = {}
    for name in single:    # list inputs vary in length; a resource handle is always a scalar
        bad = set(r for r in RANKS if refuses(op_def, values, name, r, single))
        if bad:
            refused[name] = bad
    return refused


def refuses(op_def, values, name, rank, single):
    """Whether input `name` at `rank` fails the import both with the other inputs of unknown rank and
    with every single-tensor input at `rank`: some shape functions compare ranks without checking that
    they are known (TF 1.8's Substr requires pos's rank to equal len's, and fails on an unknown len),
    so a failure with unknown neighbours alone is not the input's own requirement."""
    if imports(graph_def(op_def, values, {name: rank}))[0]:
        return False
    return not imports(graph_def(op_def, values, dict((other, rank) for other in single)))[0]


def probe(op_def):
    """{input arg: sorted refused ranks} that hold under every attr choice that builds."""
    results, reasons = [], []
    for variant in VARIANTS:
        try:
            results.append(probe_variant(op_def, variant))
        except Unbuildable as exc:
            reasons.append(str(exc))
    if not results:
        raise Unbuildable(reasons[0])
    common = {}
    for arg, ranks in results[0].items():
        shared = set(ranks).intersection(*(r.get(arg, set()) for r in results[1:]))
        if shared:
            common[arg] = sorted(shared)
    return common


def worker(start):
    """Probe the registered ops in name order from index `start`, one JSON line per op on stdout,
    after a first line with the release's versions and every op's name."""
    ops = registered_ops()
    names = sorted(ops)
    emit({"tf_version": tf_version(tf), "graph_def_version": v1.GRAPH_DEF_VERSION, "names": names})
    for name in names[start:]:
        try:
            emit({"op": name, "refused": probe(ops[name])})
        except Unbuildable as exc:
            emit({"op": name, "unbuildable": str(exc)})


def emit(record):
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def drive():
    """Run workers until every op is probed. Some shape functions crash the process on odd
    inputs (a segfault in TF 2.21), so an op a worker died on is recorded as unbuildable and the
    next worker starts after it."""
    doc = {"refused_ranks": {}, "probed": [], "unbuildable": {}}
    done, names = 0, None
    while names is None or done < len(names):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(done)],
                                stdout=subprocess.PIPE, universal_newlines=True)
        header = json.loads(proc.stdout.readline() or "null")
        if header is None:
            raise SystemExit("dump_ranks: the worker died before probing (exit %s)" % proc.wait())
        doc["tf_version"], doc["graph_def_version"] = header["tf_version"], header["graph_def_version"]
        names = header["names"]
        for line in proc.stdout:
            record = json.loads(line)
            last, done = record["op"], done + 1
            if "unbuildable" in record:
                doc["unbuildable"][last] = record["unbuildable"]
                continue
            doc["probed"].append(last)
            if record["refused"]:
                doc["refused_ranks"][last] = record["refused"]
        code = proc.wait()
        if code != 0 and done < len(names):
            doc["unbuildable"][names[done]] = "probing it killed the process (exit %s)" % code
            done += 1
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker is not None:
        worker(a.worker)
        return 0
    doc = drive()
    write_dump(doc, a.out, "%d ops probed, %d refuse some input rank, %d not buildable"
               % (len(doc["probed"]), len(doc["refused_ranks"]), len(doc["unbuildable"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
