"""Checkpoint keys renamed by rewriting the tensor bundle's index alone (io/tensor_bundle.py).

The checkpoints are written by the host TensorFlow (tf.train.Checkpoint,
tf.compat.v1.train.Saver, SaveV2); the renamed ones are read back by the
host TF and, where provisioned, by a real TF 1.4.
"""

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transpiler.errors import TranspileError
from transpiler.io import tensor_bundle as tb
from transpiler.io.checkpoints import checkpoint_files, rename_checkpoint

ROOT = Path(__file__).resolve().parent.parent
LISTER = Path(__file__).resolve().parent / "harness" / "list_checkpoint.py"

ODD_STRINGS = [b"", b"a", b"bb\x00c", b"\xff\xfe not utf-8", b"x" * 300, b"ends in NUL\x00"]


@pytest.fixture(scope="module")
def tf():
    from transpiler.io.tf_runtime import tf as load_tf

    return load_tf()


@pytest.fixture(scope="module")
def checkpoints(tf, tmp_path_factory):
    """{name: prefix} of checkpoints that TF 2.21 wrote, of every kind the renamer must handle."""
    root = tmp_path_factory.mktemp("ckpts")
    rng = np.random.RandomState(0)
    made = {}
    # object-based, several dtypes, a string tensor, a tensor of 4 MB, 40 keys with long names
    values = {"f32": rng.randn(3, 5).astype(np.float32), "f64": rng.randn(7), "i32": np.arange(6, dtype=np.int32),
              "i64": np.array([2 ** 40, -3]), "b": np.array([True, False, True]), "f16": rng.randn(4).astype(np.float16),
              "u8": np.arange(250, dtype=np.uint8), "c64": (rng.randn(3) + 1j * rng.randn(3)).astype(np.complex64),
              "big": rng.randn(1000, 1000).astype(np.float32)}
    module = tf.Module()
    for key, value in values.items():
        setattr(module, key, tf.Variable(value))
    module.s = tf.Variable(tf.constant(ODD_STRINGS))
    module.layers = [tf.Variable(np.full((2, 2), i, np.float32), name="v%d" % i) for i in range(40)]
    made["object"] = Path(tf.train.Checkpoint(model=module).write(str(root / "object" / "ckpt")))
    # name-based, through a TF 1.x Saver: a partitioned variable (slices), a scalar step
    with tf.Graph().as_default() as graph:
        v1 = tf.compat.v1
        kernel = v1.get_variable("dense/kernel", initializer=rng.randn(4, 3).astype(np.float32))
        v1.get_variable("part/emb", shape=[10, 4], partitioner=v1.fixed_size_partitioner(3),
                        initializer=v1.random_normal_initializer(seed=1))
        step = v1.train.create_global_step()
        (root / "v1").mkdir()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            made["saver"] = Path(v1.train.Saver().save(sess, str(root / "saver" / "model")))
            # V1: one file; TF 2.21 reads no sliced V1 checkpoint, so no partitioned variable in it
            v1_saver = v1.train.Saver([kernel, step], write_version=v1.train.SaverDef.V1)
            made["v1"] = Path(v1_saver.save(sess, str(root / "v1" / "model")))
    # 6000 keys: an index over 256 KiB, so that TF itself writes several data blocks
    names = ["scope_%04d/some/rather/long/variable/name/kernel" % i for i in range(6000)]
    (root / "many").mkdir()
    tf.raw_ops.SaveV2(prefix=str(root / "many" / "ckpt"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[np.float32(i) for i in range(len(names))])
    made["many"] = root / "many" / "ckpt"
    return made


def tf_tensors(tf, prefix):
    """{key: value} of every tensor of a checkpoint as TF reads it (partitioned variables whole)."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def assert_same_tensors(got, want):
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def renamed(key):
    return "renamed/" + key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")


# ---------------------------------------------------------------------------
# reading and writing the index


@pytest.mark.parametrize("name", ["object", "saver", "many"])
def test_read_index_agrees_with_tf(tf, checkpoints, name):
    header, entries = tb.read_index(str(checkpoints[name]) + ".index")
    assert header.num_shards == 1 and header.version.producer == 1
    reader = tf.train.load_checkpoint(str(checkpoints[name]))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    whole = {k: tb.parse_entry(v) for k, v in entries.items() if tb.slice_key_name(k) is None}
    assert sorted(whole) == sorted(shapes)
    for key, entry in whole.items():
        assert [d.size for d in entry.shape.dim] == list(shapes[key]), key
        assert entry.dtype == dtypes[key].as_datatype_enum, key


@pytest.mark.parametrize("name", ["object", "saver", "many"])
def test_identity_rewrite_is_read_by_tf(tf, checkpoints, tmp_path, name):
    prefix = checkpoints[name]
    header, entries = tb.read_index(str(prefix) + ".index")
    out = tmp_path / "same"
    tb.write_index(str(out) + ".index", header, entries)
    for path in checkpoint_files(prefix)[1:]:
        os.link(path, str(out) + path.name[len(prefix.name):])
    assert tb.read_index(str(out) + ".index") == (header, entries)
    assert_same_tensors(tf_tensors(tf, out), tf_tensors(tf, prefix))


def test_index_is_written_in_small_blocks_with_restart_points(checkpoints, tmp_path):
    header, entries = tb.read_index(str(checkpoints["many"]) + ".index")
    tb.write_index(tmp_path / "x.index", header, entries)
    data = (tmp_path / "x.index").read_bytes()
    blocks = [v for _, v in tb._block_items(tb._block(data, *tb._handle(_index_handle(data), "x"), "x"), "index", "x")]
    assert len(blocks) > 50                      # ~330 KiB of entries in 4 KiB blocks
    offset, size = tb._handle(blocks[0], "x")
    block = tb._block(data, offset, size, "x")
    restarts = int.from_bytes(block[-4:], "little")
    assert restarts == -(-sum(1 for _ in tb._block_items(block, "0", "x")) // tb.RESTART_INTERVAL)
    assert data[offset + size] == tb.NO_COMPRESSION


def _index_handle(data):
    footer = data[-tb.FOOTER_SIZE:]
    _, pos = tb._get_varint(footer, 0, 40)
    _, pos = tb._get_varint(footer, pos, 40)
    return footer[pos:40]


def test_snappy_compressed_blocks_are_read(tf, checkpoints, tmp_path):
    """TF writes uncompressed indexes; other tools may compress. TF itself checks ours is real snappy."""
    header, entries = tb.read_index(str(checkpoints["many"]) + ".index")
    out = tmp_path / "snappy"
    tb.write_index(str(out) + ".index", header, entries, compress=True)
    os.link(str(checkpoints["many"]) + ".data-00000-of-00001", str(out) + ".data-00000-of-00001")
    data = Path(str(out) + ".index").read_bytes()
    assert len(data) < Path(str(checkpoints["many"]) + ".index").stat().st_size / 2
    assert tb.read_index(str(out) + ".index") == (header, entries)
    reader = tf.train.load_checkpoint(str(out))
    assert reader.get_tensor("scope_4321/some/rather/long/variable/name/kernel") == 4321


# ---------------------------------------------------------------------------
# renaming


@pytest.mark.parametrize("name", ["object", "saver", "many"])
def test_rename_round_trip(tf, checkpoints, tmp_path, name):
    prefix = checkpoints[name]
    original = tf_tensors(tf, prefix)
    keep = sorted(k for k in original if k != "_CHECKPOINTABLE_OBJECT_GRAPH")[:-1]   # one key left out
    mapping = {k: renamed(k) for k in keep}
    out = tmp_path / "out"
    assert tb.rename_bundle(prefix, out, mapping) == len(mapping)
    assert_same_tensors(tf_tensors(tf, out), {mapping[k]: original[k] for k in keep})
    for src, dst in zip(checkpoint_files(prefix)[1:], checkpoint_files(out)[1:]):
        assert filecmp.cmp(src, dst, shallow=False)
    _, before = tb.read_index(str(prefix) + ".index")
    _, after = tb.read_index(str(out) + ".index")
    assert {before[k] for k in keep} <= set(after.values())   # entry bytes unchanged, crc32c included
    assert sorted(os.listdir(tmp_path)) == ["out.data-00000-of-00001", "out.index"]   # no temporary left


def test_partitioned_variable_keeps_its_slices(tf, checkpoints, tmp_path):
    prefix = checkpoints["saver"]
    _, entries = tb.read_index(str(prefix) + ".index")
    assert sorted({tb.slice_key_name(k) for k in entries} - {None}) == ["part/emb"]
    tb.rename_bundle(prefix, tmp_path / "out", {"part/emb": "embedding/table\x00odd\xff", "global_step": "step"})
    _, out = tb.read_index(str(tmp_path / "out") + ".index")
    assert len(out) == 2 + 3 and {tb.slice_key_name(k) for k in out} == {None, "embedding/table\x00odd\xff"}
    reader = tf.train.load_checkpoint(str(tmp_path / "out"))
    assert sorted(reader.get_variable_to_shape_map()) == ["embedding/table\x00odd\xff", "step"]
    np.testing.assert_array_equal(reader.get_tensor("embedding/table\x00odd\xff"),
                                  tf.train.load_checkpoint(str(prefix)).get_tensor("part/emb"))


def test_extra_tensors_go_in_a_shard_of_their_own(tf, checkpoints, tmp_path):
    prefix = checkpoints["saver"]
    extra = {"_CHECKPOINTABLE_OBJECT_GRAPH": b"\x0a\x00proto bytes\x00", "save_counter": np.int64(0),
             "strings": np.array(ODD_STRINGS, dtype=object).reshape(2, 3), "text": "h\u00e9llo",
             "halves": np.arange(5, dtype=np.float16), "flags": np.array([[True], [False]])}
    assert rename_checkpoint(prefix, tmp_path / "out", {"dense/kernel": "w"}, extra) == 7
    assert [p.name for p in checkpoint_files(tmp_path / "out")] == \
        ["out.index", "out.data-00000-of-00002", "out.data-00001-of-00002"]
    got = tf_tensors(tf, tmp_path / "out")
    assert sorted(got) == sorted(["w"] + list(extra))
    assert got["_CHECKPOINTABLE_OBJECT_GRAPH"] == extra["_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert got["text"] == "h\u00e9llo".encode()
    assert got["save_counter"].dtype == np.int64 and got["save_counter"] == 0
    assert got["strings"].tolist() == [ODD_STRINGS[:3], ODD_STRINGS[3:]]
    np.testing.assert_array_equal(got["halves"], extra["halves"])
    np.testing.assert_array_equal(got["flags"], extra["flags"])


def test_link_shares_the_data_shards(tf, checkpoints, tmp_path):
    prefix = checkpoints["object"]
    rename_checkpoint(prefix, tmp_path / "out", {"model/big/.ATTRIBUTES/VARIABLE_VALUE": "big"}, link=True)
    [src], [dst] = checkpoint_files(prefix)[1:], checkpoint_files(tmp_path / "out")[1:]
    assert os.path.samefile(src, dst)
    assert tf.train.load_checkpoint(str(tmp_path / "out")).get_tensor("big").shape == (1000, 1000)


def test_v1_checkpoint_still_goes_through_tf(tf, checkpoints, tmp_path):
    prefix = checkpoints["v1"]
    assert not Path(str(prefix) + ".index").exists()
    original = tf_tensors(tf, prefix)
    rename_checkpoint(prefix, tmp_path / "out", {k: renamed(k) for k in original})
    assert_same_tensors(tf_tensors(tf, tmp_path / "out"), {renamed(k): v for k, v in original.items()})


def test_bad_mappings_are_one_line_errors(checkpoints, tmp_path):
    prefix = checkpoints["saver"]
    with pytest.raises(TranspileError, match="has no tensor nope"):
        tb.rename_bundle(prefix, tmp_path / "a", {"nope": "x"})
    with pytest.raises(TranspileError, match="two tensors the same key"):
        tb.rename_bundle(prefix, tmp_path / "b", {"dense/kernel": "x", "global_step": "x"})
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------
# damaged indexes


def damaged(checkpoints, tmp_path, edit):
    prefix = checkpoints["many"]
    out = tmp_path / "bad"
    data = bytearray(Path(str(prefix) + ".index").read_bytes())
    Path(str(out) + ".index").write_bytes(bytes(edit(data)))
    os.link(str(prefix) + ".data-00000-of-00001", str(out) + ".data-00000-of-00001")
    return out


def flip(at):
    def edit(data):
        data[at] ^= 0x40
        return data
    return edit


@pytest.mark.parametrize("edit, message", [
    (flip(1000), "block checksum mismatch at offset 0"),
    (flip(-60), "block checksum mismatch"),           # in the index block
    (flip(-3), "bad magic number"),
    (lambda d: d[:-10], "bad magic number: truncated"),
    (lambda d: d[:len(d) // 2] + d[-48:], "truncated: block at"),
    (lambda d: d[:30], "truncated: 30 bytes"),
    (lambda d: b"", "truncated: 0 bytes"),
])
def test_corrupt_index_is_a_one_line_error(checkpoints, tmp_path, edit, message):
    bad = damaged(checkpoints, tmp_path, edit)
    with pytest.raises(tb.CorruptIndex) as err:
        rename_checkpoint(bad, tmp_path / "out", {})
    text = str(err.value)
    assert "\n" not in text and text.startswith("%s.index: corrupt checkpoint index (" % bad) and message in text
    assert isinstance(err.value, TranspileError) and not (tmp_path / "out.index").exists()


@pytest.mark.parametrize("where", [0, 1, -1], ids=["first chunk", "second chunk", "last byte"])
def test_a_flipped_byte_anywhere_in_a_big_tensor_fails_its_checksum(checkpoints, tmp_path, where):
    """check_bundle reads a tensor in chunks (tb.CHUNK): a damaged byte in any of them is found."""
    import shutil

    src = checkpoints["object"]
    _, entries = tb.read_index(tb.index_filename(src))
    (key,) = [k for k in entries if k.startswith("model/big/")]
    entry = tb.parse_entry(entries[key])
    assert entry.size > 3 * tb.CHUNK, "the tensor spans several chunks"
    bad = tmp_path / "ckpt"
    for path in checkpoint_files(src):
        shutil.copyfile(path, tmp_path / path.name.replace(src.name, "ckpt"))
    tb.check_bundle(bad)   # the copy as it is passes
    (shard,) = tmp_path.glob("ckpt.data-*")
    data = bytearray(shard.read_bytes())
    data[entry.offset + (entry.size - 1 if where == -1 else where * tb.CHUNK + 5)] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(tb.CorruptCheckpoint, match="tensor %r fails its checksum" % key):
        tb.check_bundle(bad)
    # copies check as the bytes go by: the same refusal, and nothing of the copy is left
    from transpiler.io.checkpoints import copy_checkpoint

    copies = [lambda out, link: rename_checkpoint(bad, out, {key: "renamed"}, link=link),
              lambda out, link: copy_checkpoint(bad, out, link=link)]
    for index, (copy, link) in enumerate((c, link) for c in copies for link in (False, True)):
        out = tmp_path / ("out%d" % index)
        out.mkdir()
        with pytest.raises(tb.CorruptCheckpoint, match="tensor %r fails its checksum" % key):
            copy(out / "ckpt", link)
        assert list(out.iterdir()) == [], (index, list(out.iterdir()))


def test_shard_checks_take_chunks_of_any_size_and_ranges_that_overlap():
    """ShardCheck checks each range's crc32c whatever the chunks the bytes come in: ranges inside one chunk,
    across several, overlapping, back to back, with gaps; a flipped byte fails the ranges holding it."""
    import random

    rng = random.Random(3)
    data = bytes(rng.randrange(256) for _ in range(5000))
    for _ in range(200):
        spans = []
        for _ in range(rng.randint(1, 6)):
            start = rng.randrange(len(data))
            stop = min(len(data), start + rng.randint(1, 1500))
            spans.append((start, stop, tb.masked_crc32c(data[start:stop]), "t%d" % len(spans)))
        flipped = bytearray(data)
        at = rng.randrange(len(data))
        flipped[at] ^= 0x10
        for feed, failing in ((data, set()), (bytes(flipped), {k for s, e, _, k in spans if s <= at < e})):
            check, pos = tb.ShardCheck("p", Path("shard"), spans), 0
            try:
                while pos < len(feed):
                    size = rng.choice([1, 7, 64, 1000, 4096])
                    check(feed[pos:pos + size])
                    pos += size
                check.finish()
                assert not failing
            except tb.CorruptCheckpoint as exc:
                assert re.search("tensor '(%s)' fails its checksum" % "|".join(failing or ["-"]), str(exc))
    short = tb.ShardCheck("p", Path("shard"), [(0, 10, tb.masked_crc32c(data[:10]), "t")])
    short(data[:5])
    with pytest.raises(tb.CorruptCheckpoint, match="tensor 't' lies past the end of shard"):
        short.finish()


def test_rename_never_imports_tensorflow(checkpoints, tmp_path):
    code = """
import json, sys
import numpy as np
from transpiler.io.checkpoints import rename_checkpoint
n = rename_checkpoint(sys.argv[1], sys.argv[2], {"dense/kernel": "w", "part/emb": "e"}, {"counter": np.int64(3)})
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
print(json.dumps({"n": n, "tensorflow": "tensorflow" in sys.modules, "loaded": loaded}))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, str(checkpoints["saver"]), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == 3 and result["tensorflow"] is False
    assert all((m + ".").startswith("tensorflow.core.") for m in result["loaded"]), result["loaded"]   # generated protos only


# ---------------------------------------------------------------------------
# a real old release reads what we write

_READ_ALL = """
import json, sys, numpy as np, tensorflow as tf
r = tf.train.NewCheckpointReader(sys.argv[1])
names = sorted(r.get_variable_to_shape_map())
values = dict(("t%d" % i, r.get_tensor(n)) for i, n in enumerate(names))
strings = dict((k, [s.encode("hex") for s in v.ravel()]) for k, v in values.items() if v.dtype == object)
np.savez(sys.argv[2], **dict((k, v) for k, v in values.items() if k not in strings))
print(json.dumps(strings))
"""


@pytest.mark.real_runtime
@pytest.mark.parametrize("name", ["object", "saver", "many"])
def test_tf_1_4_reads_a_renamed_index(tf, tf_release, checkpoints, tmp_path, name):
    import ast

    prefix = checkpoints[name]
    original = tf_tensors(tf, prefix)
    mapping = {k: renamed(k) for k in original if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    tb.rename_bundle(prefix, tmp_path / "out", mapping)
    runtime = tf_release("1.4.0")
    listed = runtime.run_python(str(LISTER), [runtime.chroot_path(tmp_path / "out")])
    assert listed.returncode == 0, listed.stderr[-2000:]
    shapes = dict(ast.literal_eval(listed.stdout.strip().splitlines()[-1]))
    assert shapes == {new: list(original[old].shape) for old, new in mapping.items()}
    done = runtime.run_code(_READ_ALL, [runtime.chroot_path(tmp_path / "out"), runtime.chroot_path(tmp_path / "v.npz")])
    assert done.returncode == 0, done.stderr[-2000:]
    strings = json.loads(done.stdout.strip().splitlines()[-1])
    by_new = {new: original[old] for old, new in mapping.items()}
    with np.load(str(tmp_path / "v.npz")) as got:
        for i, new in enumerate(sorted(by_new)):
            key, want = "t%d" % i, by_new[new]
            if want.dtype == object:
                assert [bytes.fromhex(h) for h in strings[key]] == list(want.ravel()), new
            else:
                np.testing.assert_array_equal(got[key], want, err_msg=new)


# ---------------------------------------------------------------------------
# targets that cannot read snappy (TF 1.4's Linux wheel; tools/dump_formats.py)

SNAPPY_MODEL = ROOT / "tests" / "data" / "serving__saved_model_half_plus_two_cpu"


def test_the_release_data_says_which_targets_read_snappy_indexes():
    from transpiler.knowledge.releases import catalog

    assert not catalog().opset("1.4").reads_snappy_index
    assert catalog().opset("1.8").reads_snappy_index and catalog().opset("2.21").reads_snappy_index


@pytest.mark.parametrize("release,rewritten", [("1.4", True), ("1.8", False)])
def test_a_snappy_index_is_rewritten_only_for_a_target_that_cannot_read_it(tmp_path, release, rewritten):
    import transpiler

    index = SNAPPY_MODEL / "variables" / "variables.index"
    assert tb.is_compressed(index)     # TF Serving's test model: a data block is snappy-compressed
    out = tmp_path / "out"
    transpiler.convert(SNAPPY_MODEL, out, to=release)
    out_index = out / "variables" / "variables.index"
    assert tb.is_compressed(out_index) is not rewritten
    assert filecmp.cmp(index, out_index, shallow=False) is not rewritten
    assert tb.read_index(out_index) == tb.read_index(index)     # same header, keys and entry bytes
    assert filecmp.cmp(SNAPPY_MODEL / "variables" / "variables.data-00000-of-00001",
                       out / "variables" / "variables.data-00000-of-00001", shallow=False)


@pytest.mark.parametrize("release,blocks", [("1.4", True), ("1.8", False)])
def test_check_in_names_a_snappy_index_the_target_cannot_read(cli, tmp_path, release, blocks):
    """Real TF 1.4 refuses this model as is ("corrupted compressed block contents", the corpus matrix):
    `check IN` says so, and `check OUT` passes once the conversion rewrote the index."""
    result = cli("check", SNAPPY_MODEL, "--to", release)
    assert result.returncode == (1 if blocks else 0), result.stdout + result.stderr
    assert ("variables.index" in result.stdout and "snappy-compressed" in result.stdout) is blocks, result.stdout
    out = tmp_path / "out"
    assert cli(SNAPPY_MODEL, out, "--to", release).returncode == 0
    assert cli("check", out, "--to", release).returncode == 0
