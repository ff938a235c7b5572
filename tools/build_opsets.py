#!/usr/bin/env python3
"""Build transpiler/data/opsets.json from the real TensorFlow releases.

    python tools/build_opsets.py [--releases 1.4.0 1.8.0 ...] [--no-host] [--force]
                                 [--out transpiler/data/opsets.json]

Runs tools/dump_opset.py (op registries and kernels), dump_protos.py (SavedModel
proto schemas, 2.x), dump_formats.py (checkpoint formats read), dump_ranks.py
(input ranks shape functions refuse) and dump_importer.py (registered ops the
GraphDef importer refuses by name) inside every release provisioned by
transpiler/runtimes/provision.py (1.4.0 ... 1.15.0, 2.0.0, 2.1.0 under Python 2.7;
2.2 ... 2.20 under Python 3, see provision.RELEASES) and in
the host's TensorFlow (sys.executable), caches the raw dumps under
$TF_TRANSPILE_RUNTIMES/opset-dumps/ (keyed by a hash of dump_opset.py), and
merges them into one data file:

    {"format": 1,
     "generated_by": "tools/build_opsets.py",
     "releases": {"1.4.0": {"graph_def_version": 24, "kernels_method": "probed", ...}, ...},
     "ops": {"Conv2D": [{"releases": [...], "def": {OpDef dict}}, ...], ...},
     "contrib_ops": {...same shape: ops registered only once tf.contrib is imported...},
     "cpu_kernels": {"Conv2D": ["1.4.0", ...], ...},   # CPU or DEFAULT kernel exists
     "refused_ranks": {"MatMul": [{"releases": [...], "inputs": {"a": [0, 1, 3, 4], ...}}], ...}}

"probed" releases (1.4-1.10, no kernel listing API) find CPU kernels with
TryFindKernelClass; checked against the listing in 1.11-2.0 it agrees except
for TileGrad (deprecated) and KernelLabelRequired (a test op, labelled kernels).

Releases are in ascending order everywhere; one op per line so diffs read
well.  OpDefs are re-serialized with the host's protobuf so that formatting
does not depend on the protobuf version inside each release.  Never edit the
output by hand: rerun this script.
"""
import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transpiler.runtimes import provision as tf_runtimes  # noqa: E402

DUMP_SCRIPT = REPO / "tools" / "dump_opset.py"
#: SavedModel proto schemas (fields per message), dumped where object graphs exist: TF 2.x.
PROTO_SCRIPT = REPO / "tools" / "dump_protos.py"
#: Which checkpoint formats each release reads (fixtures written by write_format_fixtures).
FORMATS_SCRIPT = REPO / "tools" / "dump_formats.py"
#: Input ranks each op's shape function refuses (checked statically where a rank is known).
RANKS_SCRIPT = REPO / "tools" / "dump_ranks.py"
#: Registered ops the GraphDef importer refuses by name (TF 1.4-1.7 import through the Python registry).
IMPORTER_SCRIPT = REPO / "tools" / "dump_importer.py"
DEFAULT_OUT = REPO / "transpiler" / "data" / "opsets.json"

# Facts from the design brief (1.4-1.15, 2.21) and read from the provisioned
# runtimes' smoke tests (tf.compat.v1.GRAPH_DEF_VERSION; 2.0 onwards), checked
# against every build.
KNOWN_GRAPH_DEF_VERSIONS = {"1.4.0": 24, "1.5.0": 24, "1.6.0": 26, "1.7.0": 26, "1.8.0": 26,
                            "1.9.0": 26, "1.10.0": 26, "1.11.0": 27, "1.12.0": 27, "1.13.1": 27,
                            "1.14.0": 38, "1.15.0": 134, "2.0.0": 119, "2.1.0": 175,
                            "2.5.3": 716, "2.6.5": 808, "2.7.4": 898, "2.8.4": 987,
                            "2.9.3": 1087, "2.10.1": 1205, "2.11.1": 1286, "2.12.1": 1395,
                            "2.13.1": 1482, "2.14.1": 1575, "2.15.1": 1645, "2.16.2": 1766,
                            "2.17.1": 1882, "2.18.1": 1994, "2.19.1": 2129, "2.20.0": 2288,
                            "2.21.0": 2474}


def vkey(v):
    return tuple(int(p) for p in v.split("."))


def dump_dir():
    d = tf_runtimes.RUNTIMES_DIR / "opset-dumps"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check_dump(path):
    with open(path) as f:
        d = json.load(f)
    if not d.get("ops") and not d.get("messages") and not d.get("reads") and not d.get("probed") \
            and "unimportable_ops" not in d:
        raise RuntimeError("empty dump %s" % path)
    return d


def _cache_file(version, script):
    """Cached dump of `script` in `version` (op dumps keep their old names: no re-dump needed)."""
    tag = "" if script == DUMP_SCRIPT else script.stem.replace("dump_", "") + "-"
    digest = hashlib.sha256(script.read_bytes())
    for module in ("dump_common", "dump_opset"):    # what it imports is part of it
        if ("from %s import" % module).encode() in script.read_bytes():
            digest.update((script.parent / (module + ".py")).read_bytes())
    if script == FORMATS_SCRIPT:    # the fixtures are inputs too
        for path in sorted(p for p in write_format_fixtures().rglob("*") if p.is_file()):
            digest.update(path.read_bytes())
    digest = digest.hexdigest()[:12]
    return dump_dir() / ("%s-%s%s.json" % (version, tag, digest))


def write_format_fixtures():
    """The files dump_formats.py reads, written by the project's own tensor_bundle and protos; returns their dir."""
    import numpy as np
    from transpiler.io import protos, tensor_bundle

    root = dump_dir() / "format-fixtures"
    prefix = root / "snappy_index" / "ckpt"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    entry, data = tensor_bundle.encode_tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    entry.shard_id, entry.offset = 0, 0
    tensor_bundle.data_filename(prefix, 0, 1).write_bytes(data)
    header = protos.tensor_bundle_pb2.BundleHeaderProto(num_shards=1)
    header.version.producer = 1
    # Long, alike keys, so that snappy saves the 12.5% without which a block is stored raw.
    entries = dict([("x", entry)] + [("padding/%s/%02d" % ("p" * 64, i), entry) for i in range(16)])
    index = tensor_bundle.index_filename(prefix)
    tensor_bundle.write_index(index, header, entries, compress=False)
    raw_size = index.stat().st_size
    tensor_bundle.write_index(index, header, entries, compress=True)
    assert index.stat().st_size < raw_size, "the fixture's index block was not compressed"
    meta = protos.meta_graph_pb2.MetaGraphDef()
    meta.meta_info_def.tensorflow_version = "0.12.head"
    meta.graph_def.node.add(name="c", op="Const").attr["dtype"].type = protos.types_pb2.DT_FLOAT
    meta.graph_def.node[0].attr["value"].tensor.dtype = protos.types_pb2.DT_FLOAT
    meta.graph_def.versions.producer = 21
    (root / "meta_version_head").mkdir(exist_ok=True)
    (root / "meta_version_head" / "meta").write_bytes(meta.SerializeToString(deterministic=True))
    return root


def _script_args(version, path_of, script):
    """The arguments `script` needs in release `version`, besides --out; `path_of` maps a host
    path to the path the release's process sees."""
    if script == DUMP_SCRIPT and vkey(version) < (2, 0):
        return ["--contrib"]
    if script == FORMATS_SCRIPT:
        return ["--fixtures", path_of(write_format_fixtures())]
    return []


def dump_release(version, force=False, script=DUMP_SCRIPT):
    """Run a dump script in one provisioned release (cached); returns the parsed dump."""
    out = _cache_file(version, script)
    if out.exists() and not force:
        return _check_dump(out)
    rt = tf_runtimes.ensure_runtime(version)
    args = ["--out", rt.chroot_path(out)] + _script_args(rt.version, rt.chroot_path, script)
    t0 = time.monotonic()
    p = rt.run_python(script, args, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("%s failed in TF %s (exit %s):\n%s"
                           % (script.name, version, p.returncode, p.stderr[-3000:]))
    print("  %s %s: %s (%.1fs)" % (script.name, version, p.stderr.strip().splitlines()[-1],
                                   time.monotonic() - t0), file=sys.stderr)
    return _check_dump(out)


def dump_host(force=False, script=DUMP_SCRIPT):
    """Run a dump script in the host's TensorFlow with sys.executable (cached by its version)."""
    v = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(tf.__version__)"],
                       capture_output=True, text=True, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout.strip().split()[-1]
    out = _cache_file(v, script)
    if out.exists() and not force:
        return _check_dump(out)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(script), "--out", str(out)] + _script_args(v, str, script),
                       capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if p.returncode != 0:
        raise RuntimeError("%s failed in host TF:\n%s" % (script.name, p.stderr[-3000:]))
    print("  %s host %s: %s (%.1fs)" % (script.name, v, p.stderr.strip().splitlines()[-1],
                                        time.monotonic() - t0), file=sys.stderr)
    return _check_dump(out)


def _canonical(op_dict):
    """Re-serialize an OpDef dict with the host protobuf (stable formatting)."""
    from google.protobuf import json_format
    from tensorflow.core.framework import op_def_pb2
    op = json_format.ParseDict(op_dict, op_def_pb2.OpDef())
    return json_format.MessageToDict(op, preserving_proto_field_name=True)


def _releases_per_value(dumps, items):
    """{name: [(value, [releases])]}: each distinct value a name has, with the releases that have it,
    in ascending release order; `items(dump)` yields (name, value) pairs."""
    merged = {}
    for version, d in sorted(dumps, key=lambda vd: vkey(vd[0])):
        for name, value in items(d):
            merged.setdefault(name, {}).setdefault(json.dumps(value, sort_keys=True), (value, []))[1].append(version)
    return {name: list(merged[name].values()) for name in sorted(merged)}


def _merge_defs(dumps, field):
    """{op: [{"releases": [...], "def": {...}}]} over dumps."""
    grouped = _releases_per_value(dumps, lambda d: ((n, _canonical(od)) for n, od in (d.get(field) or {}).items()))
    return {op: [{"releases": r, "def": v} for v, r in entries] for op, entries in grouped.items()}


def merge_proto_fields(dumps):
    """{message: [{"releases": [...], "fields": [...]}]}: the fields each release's schema has."""
    grouped = _releases_per_value(dumps, lambda d: d["messages"].items())
    return {m: [{"releases": r, "fields": v} for v, r in entries] for m, entries in grouped.items()}


def merge_refused_ranks(dumps):
    """{op: [{"releases": [...], "inputs": {input arg: [refused ranks]}}]}; a release that probed the
    op and refuses no rank of it appears with empty inputs, one that could not probe it not at all."""
    def items(d):
        refused = d["refused_ranks"]
        return ((op, refused.get(op, {})) for op in d["probed"])
    grouped = _releases_per_value(dumps, items)
    return {op: [{"releases": r, "inputs": v} for v, r in entries] for op, entries in grouped.items()
            if any(v for v, _ in entries)}


def merge(dumps, proto_dumps=(), format_dumps=(), rank_dumps=(), importer_dumps=()):
    dumps = sorted(dumps, key=lambda vd: vkey(vd[0]))
    reads = dict((version, d["reads"]) for version, d in format_dumps)
    unimportable = dict((version, d["unimportable_ops"]) for version, d in importer_dumps)
    releases = {}
    cpu = {}
    for version, d in dumps:
        releases[version] = {
            "graph_def_version": d["graph_def_version"],
            "graph_def_version_min_consumer": d.get("graph_def_version_min_consumer"),
            "graph_def_version_min_producer": d.get("graph_def_version_min_producer"),
            "kernels_method": d.get("kernels_method"),
            "op_count": len(d["ops"]),
            "contrib_op_count": None if d.get("contrib_ops") is None else len(d["contrib_ops"]),
            "reads_snappy_index": reads.get(version, {}).get("snappy_index"),
            "reads_meta_version_head": reads.get(version, {}).get("meta_version_head"),
            "unimportable_ops": unimportable.get(version),
        }
        for op, devices in (d.get("kernels") or {}).items():
            # DEFAULT kernels (NoOp, Enter, Assert, IdentityN, ... from 1.15 on)
            # serve every device, CPU included.
            if "CPU" in devices or "DEFAULT" in devices:
                cpu.setdefault(op, []).append(version)
    return {
        "format": 1,
        "generated_by": "tools/build_opsets.py",
        "releases": releases,
        "ops": _merge_defs(dumps, "ops"),
        "contrib_ops": _merge_defs(dumps, "contrib_ops"),
        "cpu_kernels": {op: cpu[op] for op in sorted(cpu)},
        "proto_fields": merge_proto_fields(proto_dumps),
        "refused_ranks": merge_refused_ranks(rank_dumps),
    }


def _dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def write(data, path):
    """Sorted top-level keys, one op (or release) per line; releases ascending."""
    lines = ["{"]
    keys = sorted(data)
    for i, k in enumerate(keys):
        v = data[k]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(v, dict) and v:
            lines.append("%s: {" % _dumps(k))
            inner = list(v) if k == "releases" else sorted(v)
            for j, ik in enumerate(inner):
                c = "," if j < len(inner) - 1 else ""
                lines.append("%s: %s%s" % (_dumps(ik), _dumps(v[ik]), c))
            lines.append("}" + comma)
        else:
            lines.append("%s: %s%s" % (_dumps(k), _dumps(v), comma))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)     # it must stay valid JSON
    path = pathlib.Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return len(text)


def sanity(data):
    problems = []
    rel = data["releases"]
    for v, gdv in KNOWN_GRAPH_DEF_VERSIONS.items():
        if v in rel and rel[v]["graph_def_version"] != gdv:
            problems.append("GRAPH_DEF_VERSION of %s is %s, expected %s"
                            % (v, rel[v]["graph_def_version"], gdv))
    ops = data["ops"]

    def has(op, v):
        return any(v in e["releases"] for e in ops.get(op, ()))

    if "1.8.0" in rel:
        for op in ("FusedBatchNormV3", "BatchMatMulV2", "StaticRegexFullMatch", "Einsum"):
            if has(op, "1.8.0"):
                problems.append("%s unexpectedly registered in 1.8.0" % op)
        for op in ("Conv2D", "MatMul", "FusedBatchNorm"):
            if not has(op, "1.8.0"):
                problems.append("%s missing in 1.8.0" % op)
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--releases", nargs="*", default=list(tf_runtimes.RELEASES))
    ap.add_argument("--no-host", action="store_true", help="skip the host TensorFlow")
    ap.add_argument("--force", action="store_true", help="redo cached dumps")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args(argv)

    dumps, failed = [], {}
    for v in a.releases:
        try:
            d = dump_release(tf_runtimes.normalize_version(v), force=a.force)
            dumps.append((d["tf_version"], d))
        except (tf_runtimes.RuntimeUnavailable, RuntimeError) as e:
            failed[v] = str(e)
            print("FAILED %s: %s" % (v, e), file=sys.stderr)
    proto_dumps, format_dumps, rank_dumps, importer_dumps = [], [], [], []
    for version, _ in dumps:
        if vkey(version) >= (2, 0):
            d = dump_release(version, force=a.force, script=PROTO_SCRIPT)
            proto_dumps.append((d["tf_version"], d))
        d = dump_release(version, force=a.force, script=FORMATS_SCRIPT)
        format_dumps.append((d["tf_version"], d))
        d = dump_release(version, force=a.force, script=RANKS_SCRIPT)
        rank_dumps.append((d["tf_version"], d))
        d = dump_release(version, force=a.force, script=IMPORTER_SCRIPT)
        importer_dumps.append((d["tf_version"], d))
    if not a.no_host:
        for script, into in ((DUMP_SCRIPT, dumps), (PROTO_SCRIPT, proto_dumps), (FORMATS_SCRIPT, format_dumps),
                             (RANKS_SCRIPT, rank_dumps), (IMPORTER_SCRIPT, importer_dumps)):
            d = dump_host(force=a.force, script=script)
            into.append((d["tf_version"], d))
    data = merge(dumps, proto_dumps, format_dumps, rank_dumps, importer_dumps)
    size = write(data, a.out)
    for v, r in data["releases"].items():
        print("%-7s graph_def_version=%-5s ops=%-5s contrib=%-4s kernels=%s"
              % (v, r["graph_def_version"], r["op_count"], r["contrib_op_count"],
                 r["kernels_method"]))
    print("%d ops (%d distinct defs), %d contrib-only ops, %d ops with CPU kernels -> %s (%.2f MB)"
          % (len(data["ops"]), sum(len(e) for e in data["ops"].values()),
             len(data["contrib_ops"]), len(data["cpu_kernels"]), a.out, size / 1e6))
    problems = sanity(data)
    for p in problems:
        print("SANITY: " + p, file=sys.stderr)
    if failed:
        print("releases that failed: %s" % ", ".join(sorted(failed)), file=sys.stderr)
    return 1 if (problems or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
