#!/usr/bin/env python
"""Dump which checkpoint file formats the running TensorFlow reads, as JSON.

Runs inside any TensorFlow release (Python 2.7 or 3):

    python dump_formats.py --fixtures DIR [--out FILE]

DIR holds checkpoints that tools/build_opsets.py wrote without TensorFlow
(transpiler/io/tensor_bundle), each with one float tensor "x" = [1, 2, 3]:

    snappy_index/ckpt   the .index table's blocks compressed with snappy

Output: {"tf_version": ..., "reads": {fixture name: true|false}, "errors":
{fixture name: first error line}}. Some builds cannot decompress snappy
tables (TF 1.4's Linux wheel: "corrupted compressed block contents"), so a
converter must write their indexes uncompressed.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from dump_common import tf_version, write_dump  # noqa: E402

FIXTURES = ("snappy_index",)
EXPECTED = [1.0, 2.0, 3.0]


def reader(prefix):
    """A checkpoint reader in every release: tf.train.NewCheckpointReader (1.x) or its compat.v1 form."""
    make = getattr(getattr(tf, "compat", None), "v1", tf).train.NewCheckpointReader
    return make(prefix)


def reads(prefix):
    """(True, "") when the fixture's tensor "x" reads back as EXPECTED, else (False, first error line)."""
    try:
        value = reader(prefix).get_tensor("x")
    except Exception as exc:  # any failure to read is the answer we record
        return False, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if [float(v) for v in value.ravel()] != EXPECTED:
        return False, "read %r, expected %r" % (value.tolist(), EXPECTED)
    return True, ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    results = dict((name, reads(os.path.join(a.fixtures, name, "ckpt"))) for name in FIXTURES)
    doc = {"tf_version": tf_version(tf), "reads": dict((n, r[0]) for n, r in results.items()),
           "errors": dict((n, r[1]) for n, r in results.items() if not r[0])}
    write_dump(doc, a.out, "reads %s" % ", ".join("%s=%s" % kv for kv in sorted(doc["reads"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
