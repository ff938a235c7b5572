"""Checkpoints on disk: find their files, copy them, read their entries, rename their keys.

Copying never loads tensors, and neither does renaming the keys of a V2
checkpoint: it rewrites the .index file alone (io/tensor_bundle.py), without
TensorFlow. Reading entries, and renaming a V1 checkpoint's keys, go through
TensorFlow's own checkpoint reader and SaveV2 (io/tf_runtime.py).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from transpiler.errors import TranspileError
from transpiler.io.copying import ByteCopier
from transpiler.options import Progress

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

#: Shards of at most this many bytes (one larger tensor makes a shard of its own).
SHARD_BYTES = 256 << 20


def checkpoint_files(prefix: Path) -> List[Path]:
    """Files of the checkpoint at `prefix`: V2 (.index + .data-*) or V1 (prefix or shards)."""
    prefix = Path(prefix)
    parent = prefix.parent
    if not parent.is_dir():
        return []
    v2 = sorted(parent.glob(prefix.name + ".data-*-of-*"))
    index = Path(str(prefix) + ".index")
    if index.is_file():
        return [index] + v2
    v1 = sorted(parent.glob(prefix.name + "-?????-of-?????"))
    return v1 or ([prefix] if prefix.is_file() else [])


def check_checkpoint(prefix: Path) -> None:
    """Refuse a damaged V2 checkpoint (tensor_bundle.check_bundle: entries inside their shards, checksums)
    with a one-line TranspileError, before anything copies or reads its tensors; a V1 one is not checked."""
    if Path(str(prefix) + ".index").is_file():
        from transpiler.io.tensor_bundle import check_bundle

        check_bundle(prefix)


def copy_checkpoint(prefix: Path, new_prefix: Path, uncompressed_index: bool = False,
                    progress: Optional[Progress] = None, link: bool = False) -> None:
    """Copy the checkpoint under a new prefix, streaming file contents (tensors are never loaded).

    A V2 checkpoint is checked (tensor_bundle.check_bundle: entries inside their shards, checksums), its
    index first and each shard's checksums as its bytes are copied: a damaged one is refused with a
    one-line error, and what was copied of it is removed, instead of being carried into OUT.
    With `uncompressed_index`, a V2 index with snappy-compressed blocks is written anew
    uncompressed (same keys and entries, data shards copied), for readers built without snappy.
    With `link`, a V2 checkpoint's data shards are hard-linked (copied where the file system
    refuses a link, e.g. across devices); the index, and V1 files, are always copied.
    `progress` hears of the bytes copied."""
    checks = {}
    if Path(str(prefix) + ".index").is_file():
        from transpiler.io import tensor_bundle

        index = tensor_bundle.index_filename(prefix)
        if uncompressed_index and tensor_bundle.is_compressed(index):
            tensor_bundle.check_bundle(prefix)
            _, entries = tensor_bundle.read_index(index)
            same = {key: key for key in entries if tensor_bundle.slice_key_name(key) is None}
            tensor_bundle.rename_bundle(prefix, new_prefix, same, link=link, progress=progress)
            return
        checks = tensor_bundle.shard_checks(prefix)  # the index now; each shard's checksums as it is copied
    files = checkpoint_files(prefix)
    copier = ByteCopier(files, progress)
    made: List[Path] = []
    try:
        for src in files:
            made.append(Path(str(new_prefix) + src.name[len(Path(prefix).name):]))
            _copy_checked(src, made[-1], checks.get(src), link, copier)
    except BaseException:  # a shard failing its checksums: no part of the checkpoint is left
        for path in made:
            path.unlink(missing_ok=True)
        raise


def _copy_checked(src: Path, dst: Path, check, link: bool, copier: ByteCopier) -> None:
    """Copy `src` to `dst`: a V2 data shard with its tensor_bundle.ShardCheck `check` (tensor_bundle.copy_shard),
    anything else (`check` None: an index or V1 file) as it is."""
    if check is None:
        copier.copy(src, dst)
        return
    from transpiler.io import tensor_bundle

    tensor_bundle.copy_shard(src, dst, check, link, copier)


# ---------------------------------------------------------------------------
# streaming copy under new keys


def rename_checkpoint(in_prefix, out_prefix, mapping: Dict[str, str], extra: Optional[Dict[str, object]] = None,
                      shard_bytes: int = SHARD_BYTES, link: bool = False,
                      progress: Optional[Progress] = None) -> int:
    """Write checkpoint `out_prefix` holding `in_prefix`'s tensors under new keys.

    `mapping` is {old key: new key}; keys it does not name are left out.
    `extra` adds tensors (e.g. an object graph). A V2 checkpoint gets a new
    index and byte-for-byte copies of its data shards (hard links with
    `link`), without TensorFlow; a V1 one is streamed through TensorFlow
    (rename_with_tf, `shard_bytes`). The files appear only when complete.
    Returns the number of tensors. `progress` hears of the bytes a V2 checkpoint's copy is at.
    """
    if Path(str(in_prefix) + ".index").is_file():
        from transpiler.io.tensor_bundle import rename_bundle

        return rename_bundle(in_prefix, out_prefix, mapping, extra, link=link, progress=progress)
    return rename_with_tf(in_prefix, out_prefix, mapping, extra, shard_bytes)


def rename_with_tf(in_prefix, out_prefix, mapping: Dict[str, str], extra: Optional[Dict[str, object]] = None,
                   shard_bytes: int = SHARD_BYTES) -> int:
    """rename_checkpoint through TensorFlow, for any checkpoint TF reads (V1 included); writes V2.

    Tensors are read one at a time and written in shards of at most
    `shard_bytes`, merged at the end.
    """
    from transpiler.io.tf_runtime import tf as load_tf

    tf = load_tf()
    out_prefix = Path(out_prefix)
    new_keys = list(mapping.values()) + list(extra or {})
    if len(set(new_keys)) != len(new_keys):
        raise TranspileError("checkpoint mapping gives two tensors the same key")
    reader = tf.train.load_checkpoint(str(in_prefix))
    known = reader.get_variable_to_shape_map()
    absent = sorted(k for k in mapping if k not in known)
    if absent:
        raise TranspileError("%s has no tensor %s" % (in_prefix, ", ".join(absent[:5])))
    work = Path(tempfile.mkdtemp(prefix=".%s.tmp-" % out_prefix.name, dir=str(out_prefix.parent)))
    try:
        shards, batch, size = [], [], 0

        def flush():
            if batch:
                shard = str(work / ("part-%05d" % len(shards)))
                tf.raw_ops.SaveV2(prefix=shard, tensor_names=[k for k, _ in batch],
                                  shape_and_slices=[""] * len(batch), tensors=[v for _, v in batch])
                shards.append(shard)
                batch.clear()

        for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
            value = reader.get_tensor(old)
            batch.append((new, value))
            size += getattr(value, "nbytes", 0)
            if size >= shard_bytes:
                flush()
                size = 0
        for key, value in (extra or {}).items():
            batch.append((key, value))
        flush()
        merged = work / "merged"
        tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=shards, destination_prefix=str(merged),
                                      delete_old_dirs=False)
        for path in checkpoint_files(merged):
            os.replace(path, str(out_prefix) + path.name[len("merged"):])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(new_keys)


# ---------------------------------------------------------------------------
# reading checkpoints


@dataclasses.dataclass
class Entry:
    key: str
    shape: List[int]
    dtype: str


def entries(prefix) -> Dict[str, Entry]:
    """Every tensor of a checkpoint: key -> shape and dtype (no values read)."""
    from transpiler.io.tf_runtime import tf as load_tf

    tf = load_tf()
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as exc:  # NotFoundError, DataLossError, ...
        raise TranspileError("not a checkpoint: %s (%s)" % (prefix, str(exc).splitlines()[0])) from None
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {k: Entry(k, list(shapes[k]), dtypes[k].name) for k in shapes}


def object_graph(prefix):
    """The TrackableObjectGraph of an object-based checkpoint, or None for a name-based one."""
    from transpiler.io.tf_runtime import tf as load_tf

    tf = load_tf()
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(str(prefix))
    if not reader.has_tensor(OBJECT_GRAPH_KEY):
        return None
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    return graph


def model_checkpoint(model: Path) -> Path:
    """The object-based checkpoint of `model`: a SavedModel directory's variables/, or a checkpoint prefix."""
    model = Path(model)
    if model.is_dir():
        prefix = model / "variables" / "variables"
        if not checkpoint_files(prefix):
            raise TranspileError("%s: a SavedModel without variables/ (nothing to map onto)" % model)
        return prefix
    if not checkpoint_files(model):
        raise TranspileError("--model %s is neither a SavedModel directory nor a checkpoint prefix" % model)
    return model
