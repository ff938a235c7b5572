#!/usr/bin/env python
"""Dump which checkpoint file formats the running TensorFlow reads, as JSON.

Runs inside any TensorFlow release (Python 2.7 or 3):

    python dump_formats.py --fixtures DIR [--out FILE]

DIR holds files that tools/build_opsets.py wrote without TensorFlow (the
project's tensor_bundle and proto classes):

    snappy_index/ckpt        a checkpoint of one float tensor "x" = [1, 2, 3]
                             whose .index table's blocks are snappy-compressed
    meta_version_head/meta   a meta graph (one Const) whose meta_info_def says
                             tensorflow_version "0.12.head", as TF 0.12's
                             nightly builds wrote it (not a PEP 440 version)

Output: {"tf_version": ..., "reads": {fixture name: true|false}, "errors":
{fixture name: first error line}}. Some builds cannot decompress snappy
tables (TF 1.4's Linux wheel: "corrupted compressed block contents"), so a
converter must write their indexes uncompressed; newer releases parse a meta
graph's tensorflow_version with packaging.version and refuse "0.12.head".
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from dump_common import tf_version, write_dump  # noqa: E402

EXPECTED = [1.0, 2.0, 3.0]


def reader(prefix):
    """A checkpoint reader in every release: tf.train.NewCheckpointReader (1.x) or its compat.v1 form."""
    make = getattr(getattr(tf, "compat", None), "v1", tf).train.NewCheckpointReader
    return make(prefix)


def reads_checkpoint(prefix):
    """None when the checkpoint's tensor "x" reads back as EXPECTED, else what went wrong."""
    value = reader(prefix).get_tensor("x")
    if [float(v) for v in value.ravel()] != EXPECTED:
        return "read %r, expected %r" % (value.tolist(), EXPECTED)
    return None


def imports_meta_graph(path):
    """None when the meta graph imports (tf.train.import_meta_graph, as loaders do), else what went wrong."""
    with tf.Graph().as_default():
        getattr(getattr(tf, "compat", None), "v1", tf).train.import_meta_graph(path)
    return None


#: fixture name -> (file under DIR, the reader that must take it).
FIXTURES = {"snappy_index": ("ckpt", reads_checkpoint), "meta_version_head": ("meta", imports_meta_graph)}


def reads(name, path):
    """(True, "") when the fixture's reader takes it, else (False, first error line)."""
    try:
        wrong = FIXTURES[name][1](path)
    except Exception as exc:  # any failure to read is the answer we record
        wrong = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (False, wrong) if wrong else (True, "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    results = dict((name, reads(name, os.path.join(a.fixtures, name, FIXTURES[name][0]))) for name in FIXTURES)
    doc = {"tf_version": tf_version(tf), "reads": dict((n, r[0]) for n, r in results.items()),
           "errors": dict((n, r[1]) for n, r in results.items() if not r[0])}
    write_dump(doc, a.out, "reads %s" % ", ".join("%s=%s" % kv for kv in sorted(doc["reads"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
