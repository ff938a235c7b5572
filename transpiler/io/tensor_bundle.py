"""TensorFlow's tensor bundle (the V2 checkpoint format), read and written without TensorFlow.

A V2 checkpoint at PREFIX is two kinds of file:

* ``PREFIX.data-NNNNN-of-MMMMM``: the shards, the tensors' bytes back to back;
* ``PREFIX.index``: a LevelDB-format table (SSTable) whose entry ``""`` is a
  BundleHeaderProto (num_shards, endianness, version) and every other entry
  maps a tensor key to a BundleEntryProto (dtype, shape, shard_id, offset,
  size, crc32c of the bytes; the slices of a partitioned variable, whose
  parts have keys of their own that embed the variable's name).

Renaming tensors only rewrites the index: the shards are copied byte for
byte and each kept entry's bytes stay as they were. The table is written the
way TensorFlow writes it (uncompressed blocks, restart points every 16 keys,
a 48-byte footer), so every release since TF 1.0 reads it; blocks that a
tool compressed with snappy are read too.

Keys are ``str``; a key's bytes that are not UTF-8 (a slice key's ordered
code) are kept as surrogate escapes and written back unchanged.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

import google_crc32c

from transpiler.errors import TranspileError
from transpiler.io.copying import ByteCopier, hard_link, open_for_writing
from transpiler.options import Progress

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48            # two block handles padded to 40 bytes, then the magic number
TRAILER_SIZE = 5            # after every block: compression type byte, masked crc32c
NO_COMPRESSION, SNAPPY = 0, 1
BLOCK_SIZE = 4096           # LevelDB's default; TensorFlow's own writer uses 256 KiB blocks
RESTART_INTERVAL = 16
HEADER_KEY = ""
_MASK_DELTA = 0xA282EAD8

Entries = Dict[str, bytes]


class CorruptIndex(TranspileError):
    """A checkpoint's .index file is not a readable table (bad magic, bad checksum, truncated)."""

    def __init__(self, path, detail: str):
        super().__init__("%s: corrupt checkpoint index (%s)" % (path, detail))


# ---------------------------------------------------------------------------
# checksums and varints


def masked_crc32c(data: bytes, crc: int = 0) -> int:
    """The crc32c of `data` (extending `crc`), masked as LevelDB and TensorFlow store it."""
    value = google_crc32c.extend(crc, data) if crc else google_crc32c.value(data)
    return _mask(value)


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _get_varint(buf: bytes, pos: int, limit: int) -> Tuple[int, int]:
    """(value, position after it); ValueError when the varint runs past `limit`."""
    value = shift = 0
    while pos < limit and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")


# ---------------------------------------------------------------------------
# the table: reading


def _block(data: bytes, offset: int, size: int, path, kinds: Optional[set] = None) -> bytes:
    """The contents of the block at (offset, size), its checksum checked, decompressed; its
    compression type is added to `kinds`."""
    if offset + size + TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise CorruptIndex(path, "truncated: block at %d+%d runs past the end of the file" % (offset, size))
    raw = data[offset:offset + size + 1]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if masked_crc32c(raw) != stored:
        raise CorruptIndex(path, "block checksum mismatch at offset %d" % offset)
    kind = raw[-1]
    if kinds is not None:
        kinds.add(kind)
    if kind == NO_COMPRESSION:
        return raw[:-1]
    if kind == SNAPPY:
        import cramjam

        try:
            return bytes(cramjam.snappy.decompress_raw(raw[:-1]))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise CorruptIndex(path, "bad snappy block at offset %d: %s" % (offset, (str(exc).splitlines() or [""])[0])) from None
    raise CorruptIndex(path, "unknown block compression type %d at offset %d" % (kind, offset))


def _block_items(block: bytes, where: str, path) -> Iterator[Tuple[bytes, bytes]]:
    """(key, value) of every entry of a block, prefix-compressed keys expanded."""
    if len(block) < 4:
        raise CorruptIndex(path, "block %s too short" % where)
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if restarts < 1 or limit < 0:
        raise CorruptIndex(path, "bad restart array in block %s" % where)
    pos, key = 0, b""
    try:
        while pos < limit:
            shared, pos = _get_varint(block, pos, limit)
            unshared, pos = _get_varint(block, pos, limit)
            length, pos = _get_varint(block, pos, limit)
            if shared > len(key) or pos + unshared + length > limit:
                raise ValueError("entry runs past the block")
            key = key[:shared] + block[pos:pos + unshared]
            pos += unshared
            yield key, block[pos:pos + length]
            pos += length
    except ValueError as exc:
        raise CorruptIndex(path, "malformed block %s: %s" % (where, exc)) from None


def _handle(value: bytes, path) -> Tuple[int, int]:
    try:
        offset, pos = _get_varint(value, 0, len(value))
        size, _ = _get_varint(value, pos, len(value))
    except ValueError:
        raise CorruptIndex(path, "bad block handle") from None
    return offset, size


def read_table(path, kinds: Optional[set] = None) -> List[Tuple[bytes, bytes]]:
    """Every (key, value) of the LevelDB-format table at `path`, in order; CorruptIndex if it is not one.

    The compression types of its blocks (NO_COMPRESSION, SNAPPY) are added to `kinds`."""
    data = Path(path).read_bytes()
    if len(data) < FOOTER_SIZE:
        raise CorruptIndex(path, "truncated: %d bytes, a table has at least %d" % (len(data), FOOTER_SIZE))
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0] != MAGIC:
        raise CorruptIndex(path, "bad magic number: truncated, or not a checkpoint index")
    try:
        _, pos = _get_varint(footer, 0, FOOTER_SIZE - 8)     # the metaindex handle: nothing in it we need
        _, pos = _get_varint(footer, pos, FOOTER_SIZE - 8)
    except ValueError:
        raise CorruptIndex(path, "bad footer") from None
    index = _handle(footer[pos:FOOTER_SIZE - 8], path)
    items: List[Tuple[bytes, bytes]] = []
    for _, value in _block_items(_block(data, *index, path, kinds), "index", path):
        offset, size = _handle(value, path)
        for key, entry in _block_items(_block(data, offset, size, path, kinds), "at offset %d" % offset, path):
            if items and key <= items[-1][0]:
                raise CorruptIndex(path, "keys out of order at offset %d" % offset)
            items.append((key, entry))
    return items


# ---------------------------------------------------------------------------
# the table: writing


class _BlockBuilder:
    """One block: entries with keys sharing a prefix with the previous one, restart points every `interval`."""

    def __init__(self, interval: int):
        self.interval, self.buffer, self.restarts, self.count, self.last = interval, bytearray(), [0], 0, b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count = 0
        self.buffer += _put_varint(shared) + _put_varint(len(key) - shared) + _put_varint(len(value))
        self.buffer += key[shared:] + value
        self.last, self.count = key, self.count + 1

    def size(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return bytes(self.buffer) + struct.pack("<%dI" % (len(self.restarts) + 1), *self.restarts, len(self.restarts))


def _table_bytes(items: List[Tuple[bytes, bytes]], block_size: int, compress: bool) -> bytes:
    out = bytearray()

    def emit(contents: bytes) -> bytes:
        kind = NO_COMPRESSION
        if compress:
            import cramjam

            packed = bytes(cramjam.snappy.compress_raw(contents))
            if len(packed) < len(contents) - len(contents) // 8:   # as LevelDB: only when it saves 12.5%
                contents, kind = packed, SNAPPY
        handle = _put_varint(len(out)) + _put_varint(len(contents))
        out.extend(contents + bytes([kind]) + struct.pack("<I", masked_crc32c(contents + bytes([kind]))))
        return handle

    index, block = _BlockBuilder(1), _BlockBuilder(RESTART_INTERVAL)
    for key, value in items:
        block.add(key, value)
        if block.size() >= block_size:
            index.add(block.last, emit(block.finish()))    # the block's last key: >= its keys, < the next block's
            block = _BlockBuilder(RESTART_INTERVAL)
    if block.count:
        index.add(block.last, emit(block.finish()))
    metaindex = emit(_BlockBuilder(RESTART_INTERVAL).finish())
    footer = (metaindex + emit(index.finish())).ljust(FOOTER_SIZE - 8, b"\0") + struct.pack("<Q", MAGIC)
    return bytes(out + footer)


def write_table(path, items: List[Tuple[bytes, bytes]], block_size: int = BLOCK_SIZE, compress: bool = False) -> None:
    """Write `items` (keys strictly increasing bytewise) as a LevelDB-format table at `path`, atomically.

    Blocks are uncompressed unless `compress` (snappy, which TF releases before
    1.1 and builds without snappy cannot read; for tests and other tools).
    """
    if any(a[0] >= b[0] for a, b in zip(items, items[1:])):
        raise ValueError("table keys must be unique and sorted bytewise")
    _write_atomically(Path(path), _table_bytes(items, block_size, compress))


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".%s.tmp-" % path.name, dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# the bundle index


def _protos():
    from transpiler.io import protos

    return protos


def _key(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def is_compressed(path) -> bool:
    """Whether any block of the .index table at `path` is compressed (snappy, which some builds cannot read)."""
    kinds: set = set()
    read_table(path, kinds)
    return bool(kinds - {NO_COMPRESSION})


def read_index(path) -> Tuple[object, Entries]:
    """(BundleHeaderProto, {tensor key: serialized BundleEntryProto}) of a checkpoint's .index file.

    The header entry "" is not among the entries. CorruptIndex (one line,
    naming the file) when the table is damaged or has no parseable header.
    """
    items = read_table(path)
    if not items or items[0][0] != b"":
        raise CorruptIndex(path, "no header entry")
    header = _protos().tensor_bundle_pb2.BundleHeaderProto()
    try:
        header.ParseFromString(items[0][1])
    except Exception:
        raise CorruptIndex(path, "unparseable header entry") from None
    return header, {_key(k): v for k, v in items[1:]}


def write_index(path, header, entries: Mapping[str, Union[bytes, object]], block_size: int = BLOCK_SIZE,
                compress: bool = False) -> None:
    """Write a .index file: `header` (BundleHeaderProto) under "", then `entries` sorted bytewise.

    Entry values are serialized BundleEntryProtos (written as they are) or
    BundleEntryProto messages. The file appears only when complete.
    """
    items = [(b"", header.SerializeToString())]
    for key in sorted(entries, key=_raw):
        if key == HEADER_KEY:
            raise ValueError("the key \"\" is the bundle header's")
        value = entries[key]
        items.append((_raw(key), value if isinstance(value, bytes) else value.SerializeToString()))
    write_table(path, items, block_size, compress)


def parse_entry(value: bytes):
    """The BundleEntryProto of a serialized entry."""
    entry = _protos().tensor_bundle_pb2.BundleEntryProto()
    entry.ParseFromString(value)
    return entry


# ---------------------------------------------------------------------------
# slice keys: the parts of a partitioned variable
#
# A part's key is OrderedCode: the number 0 (one byte 0x00), the variable's name
# with 0x00 -> 00 ff and 0xff -> ff 00 and ending in 00 01, then the extents.


def slice_key_name(key: str) -> Optional[str]:
    """The variable name inside a slice key, or None for an ordinary key."""
    raw = _raw(key)
    if not raw.startswith(b"\0"):
        return None
    name, pos = bytearray(), 1
    while pos + 1 < len(raw):
        pair = raw[pos:pos + 2]
        if pair == b"\0\x01":
            return _key(bytes(name))
        if pair in (b"\0\xff", b"\xff\0"):
            name.append(0 if pair == b"\0\xff" else 0xFF)
            pos += 2
        else:
            name.append(raw[pos])
            pos += 1
    return None


def rename_slice_key(key: str, name: str) -> str:
    """`key` (a slice key) for the same extents of the variable `name`."""
    old = slice_key_name(key)
    if old is None:
        raise ValueError("not a slice key: %r" % key)
    rest = _raw(key)[1 + len(_escape(_raw(old))) + 2:]
    return _key(b"\0" + _escape(_raw(name)) + b"\0\x01" + rest)


def _escape(name: bytes) -> bytes:
    return bytes(b for c in name for b in ((0, 0xFF) if c == 0 else (0xFF, 0) if c == 0xFF else (c,)))


# ---------------------------------------------------------------------------
# new tensors (an object graph, a save counter) without TensorFlow

_DTYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32", "uint8": "DT_UINT8",
           "int16": "DT_INT16", "int8": "DT_INT8", "complex64": "DT_COMPLEX64", "int64": "DT_INT64",
           "bool": "DT_BOOL", "uint16": "DT_UINT16", "complex128": "DT_COMPLEX128", "float16": "DT_HALF",
           "uint32": "DT_UINT32", "uint64": "DT_UINT64"}


def encode_tensor(value) -> Tuple[object, bytes]:
    """(BundleEntryProto without shard_id/offset, the bytes to store) for a numpy value, bytes or str.

    Numbers are stored little-endian as they are in memory; strings (bytes,
    str, or arrays of them) as TensorFlow's writer lays them out: varint64
    lengths, a masked crc32c of the lengths, the strings.
    """
    import numpy as np   # only here: a rename that adds no tensor need not load it

    protos = _protos()
    array = np.asarray(value, dtype=object if isinstance(value, (bytes, str)) else None)  # 'S' would drop trailing NULs
    entry = protos.tensor_bundle_pb2.BundleEntryProto()
    for size in array.shape:
        entry.shape.dim.add(size=size)
    if array.dtype.kind in "SUO":
        strings = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel().tolist()]
        lengths = b"".join(_put_varint(len(s)) for s in strings)
        crc = 0
        for s in strings:
            crc = google_crc32c.extend(crc, struct.pack("<I" if len(s) <= 0xFFFFFFFF else "<Q", len(s)))
        checksum = struct.pack("<I", _mask(crc))
        data = lengths + checksum + b"".join(strings)
        crc = google_crc32c.extend(google_crc32c.extend(crc, checksum), b"".join(strings))
        entry.dtype = protos.types_pb2.DT_STRING
    elif array.dtype.name in _DTYPES:
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        crc = google_crc32c.value(data)
        entry.dtype = protos.types_pb2.DataType.Value(_DTYPES[array.dtype.name])
    else:
        raise TranspileError("cannot store a %s tensor in a checkpoint without TensorFlow" % array.dtype)
    entry.size, entry.crc32c = len(data), _mask(crc)
    return entry, data


# ---------------------------------------------------------------------------
# checking a checkpoint before it is copied

#: dtypes whose bytes in a shard are exactly the ones the entry's crc32c covers (strings and variants
#: are written with length prefixes and checksums of their own; resources are not stored).
_CHECKSUMMED_DTYPES = {1, 2, 3, 4, 5, 6, 9, 10, 14, 17, 18, 19, 22, 23}   # DT_FLOAT ... DT_UINT64, no 7/20/21
#: Bytes read per step of a shard's checksums (and written per step of a checked copy). Small enough that
#: glibc's malloc reuses its heap for each chunk's bytes once its mmap threshold has risen to their size
#: (at 1 MiB a check of BERT's 868 MB shard faulted 70 000 pages in, 0.5 s CPU); 64-512 KiB measured alike,
#: 256 KiB the fastest copy (0.43-0.55 s CPU, against 0.62-0.68 s for checking and then copying by sendfile).
CHUNK = 256 << 10


class CorruptCheckpoint(TranspileError):
    """A V2 checkpoint whose shards do not hold what its index says."""

    def __init__(self, prefix, detail: str):
        super().__init__("%s: corrupt checkpoint (%s)" % (prefix, detail))


def check_bundle(prefix) -> None:
    """Every entry of the checkpoint at `prefix` parses, lies inside an existing shard, and (for
    plain numeric tensors) has the bytes its crc32c says: a damaged checkpoint is refused, never carried
    into OUT silently (a copy checks as it goes: `shard_checks`). Streams the shards; no tensor is held whole."""
    for path, check in shard_checks(prefix).items():
        check_shard(path, check)


def check_shard(path: Path, check: "ShardCheck") -> None:
    """Feed `check` the bytes of the shard at `path`, then finish it (CorruptCheckpoint if one fails)."""
    if check.spans:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                check(chunk)
    check.finish()


def shard_checks(prefix) -> Dict[Path, "ShardCheck"]:
    """What `check_bundle` checks, split: the index's entries are checked here (they parse and lie inside
    existing shards), and each shard's checksums by the ShardCheck it maps to, fed the shard's bytes as they
    are read (for a copy, as they are copied: one read of each shard, not two). Raises CorruptCheckpoint."""
    header, entries = read_index(index_filename(prefix))
    shards = [data_filename(prefix, i, header.num_shards) for i in range(header.num_shards)]
    for path in shards:
        if not path.is_file():
            raise CorruptCheckpoint(prefix, "data shard missing: %s" % path.name)
    spans: List[List[Tuple[int, int, int, str]]] = [[] for _ in shards]
    sizes = [path.stat().st_size for path in shards]
    for key, value in entries.items():
        try:
            entry = parse_entry(value)
        except Exception:
            raise CorruptCheckpoint(prefix, "entry %r does not parse" % key) from None
        if not entry.size:
            continue
        if entry.shard_id >= header.num_shards or entry.offset < 0 or entry.size < 0:
            raise CorruptCheckpoint(prefix, "entry %r points at shard %d of %d" % (key, entry.shard_id, header.num_shards))
        if entry.offset + entry.size > sizes[entry.shard_id]:
            raise CorruptCheckpoint(prefix, "tensor %r lies past the end of %s" % (key, shards[entry.shard_id].name))
        if entry.dtype in _CHECKSUMMED_DTYPES and not entry.slices:
            spans[entry.shard_id].append((entry.offset, entry.offset + entry.size, entry.crc32c, key))
    return {path: ShardCheck(prefix, path, found) for path, found in zip(shards, spans)}


class ShardCheck:
    """The checksums of one data shard's tensors, checked as its bytes are fed in order (`__call__` per
    chunk, then `finish`): each tensor's crc32c over exactly its byte range, ranges that overlap too."""

    def __init__(self, prefix, path: Path, spans: List[Tuple[int, int, int, str]]):
        self.prefix, self.path = prefix, path
        #: (start, end, masked crc32c, key), by start; `_next` is the first not yet begun.
        self.spans = sorted(spans)
        self._next = 0
        #: [start, end, crc so far, stored crc, key] of the ranges begun and not yet ended.
        self._open: List[list] = []
        self._at = 0

    def __call__(self, chunk: bytes) -> None:
        begin, end = self._at, self._at + len(chunk)
        while self._next < len(self.spans) and self.spans[self._next][0] < end:
            start, stop, crc, key = self.spans[self._next]
            self._open.append([start, stop, 0, crc, key])
            self._next += 1
        for span in list(self._open):
            start, stop = span[0], span[1]
            # the chunk itself when the range covers it (google_crc32c takes bytes, no memoryview), else a slice
            piece = chunk if start <= begin and stop >= end else chunk[max(start, begin) - begin:min(stop, end) - begin]
            span[2] = google_crc32c.extend(span[2], piece)
            if stop <= end:
                self._open.remove(span)
                if _mask(span[2]) != span[3]:
                    raise CorruptCheckpoint(self.prefix, "tensor %r fails its checksum in %s" % (span[4],
                                                                                              self.path.name))
        self._at = end

    def finish(self) -> None:
        """Every tensor was fed whole (the shard did not end early)."""
        left = self._open + [[start, stop, 0, crc, key] for start, stop, crc, key in self.spans[self._next:]]
        if left:
            raise CorruptCheckpoint(self.prefix, "tensor %r lies past the end of %s" % (left[0][4], self.path.name))


# ---------------------------------------------------------------------------
# renaming a checkpoint


def data_filename(prefix, shard: int, num_shards: int) -> Path:
    """The path of one data shard of the checkpoint at `prefix`."""
    return Path("%s.data-%05d-of-%05d" % (prefix, shard, num_shards))


def index_filename(prefix) -> Path:
    return Path(str(prefix) + ".index")


def renamed_entries(entries: Entries, mapping: Mapping[str, str]) -> Entries:
    """The entries under their new keys: a key `mapping` names is renamed, with the slices of
    a partitioned variable; every other key is left out. Entry bytes are unchanged."""
    out: Entries = {}
    for key, value in entries.items():
        name = slice_key_name(key)
        if name is not None:
            if name in mapping:
                out[rename_slice_key(key, mapping[name])] = value
        elif key in mapping:
            out[mapping[key]] = value
    return out


def rename_bundle(in_prefix, out_prefix, mapping: Mapping[str, str], extra: Optional[Mapping[str, object]] = None,
                  link: bool = False, progress: Optional[Progress] = None) -> int:
    """Write checkpoint `out_prefix` holding `in_prefix`'s tensors under new keys, never loading a tensor.

    `mapping` is {old key: new key}; keys it does not name are left out (their
    bytes stay in the copied shards, unreferenced). `extra` adds tensors
    (numpy values, bytes or str) in a new shard of their own. The input's data
    shards are copied byte for byte (hard-linked when `link`, falling back to
    a copy across file systems); the index is written last, each file through
    a temporary name, so a failure leaves no partial checkpoint under
    `out_prefix`. Returns the number of tensors written. `progress` hears of the bytes copied.
    """
    in_prefix, out_prefix, extra = Path(in_prefix), Path(out_prefix), dict(extra or {})
    checks = shard_checks(in_prefix)
    header, entries = read_index(index_filename(in_prefix))
    new_keys = list(mapping.values()) + list(extra)
    if len(set(new_keys)) != len(new_keys):
        raise TranspileError("checkpoint mapping gives two tensors the same key")
    absent = sorted(k for k in mapping if k not in entries or slice_key_name(k) is not None)
    if absent:
        raise TranspileError("%s has no tensor %s" % (in_prefix, ", ".join(absent[:5])))
    if extra and header.endianness != header.LITTLE:
        raise TranspileError("%s is a big-endian checkpoint: cannot add tensors to it" % in_prefix)
    shards = [data_filename(in_prefix, i, header.num_shards) for i in range(header.num_shards)]
    missing = [str(p) for p in shards if not p.is_file()]
    if missing:
        raise TranspileError("%s: data shard missing: %s" % (in_prefix, missing[0]))
    out = renamed_entries(entries, mapping)
    total = header.num_shards + (1 if extra else 0)
    staged: List[Tuple[Path, Path]] = []
    copier = ByteCopier(shards, progress)
    try:
        for i, src in enumerate(shards):
            staged.append((_stage(src, out_prefix, link, copier, checks[src]), data_filename(out_prefix, i, total)))
        if extra:
            staged.append((_stage_extra(extra, header.num_shards, out, out_prefix), data_filename(
                out_prefix, header.num_shards, total)))
        new_header = type(header)()
        new_header.CopyFrom(header)
        new_header.num_shards = total
        index_tmp = _temp_path(out_prefix)
        staged.append((index_tmp, index_filename(out_prefix)))
        write_index(index_tmp, new_header, out)
        for tmp, final in staged:       # the index last: it is what makes the checkpoint
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return len(new_keys)


def _temp_path(out_prefix: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=".%s.tmp-" % out_prefix.name, dir=str(out_prefix.parent))
    os.close(fd)
    return Path(tmp)


def _stage(src: Path, out_prefix: Path, link: bool, copier: ByteCopier, check: ShardCheck) -> Path:
    """A copy of (or hard link to) `src` under a temporary name beside `out_prefix`, its checksums checked
    on the way (`check`); CorruptCheckpoint, with nothing left under the name, when one fails."""
    tmp = _temp_path(out_prefix)
    try:
        if link:
            tmp.unlink()
        copy_shard(src, tmp, check, link, copier)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def copy_shard(src: Path, dst: Path, check: ShardCheck, link: bool, copier: ByteCopier) -> None:
    """`dst` a copy of data shard `src` (a hard link with `link`, where the file system makes one), `check` fed
    its bytes on the way (a linked shard is read once for it): CorruptCheckpoint when a checksum fails."""
    if link and hard_link(src, dst):
        copier.skip(src)
        check_shard(src, check)
        return
    copier.copy(src, dst, check if check.spans else None, CHUNK)
    check.finish()


def _stage_extra(extra: Mapping[str, object], shard: int, entries: Entries, out_prefix: Path) -> Path:
    """A data shard holding the `extra` tensors, their entries added to `entries`."""
    tmp = _temp_path(out_prefix)
    offset = 0
    with open_for_writing(tmp) as f:
        for key, value in extra.items():
            entry, data = encode_tensor(value)
            entry.shard_id, entry.offset = shard, offset
            f.write(data)
            offset += len(data)
            entries[key] = entry.SerializeToString()
    return tmp
