#!/usr/bin/env python
"""Dump the registered ops the running TensorFlow's GraphDef importer refuses by name, as JSON.

Runs inside any TensorFlow release (Python 2.7 or 3):

    python dump_importer.py [--out FILE]

TF 1.4-1.7 import GraphDefs in Python and look ops up in the Python op
registry, which holds only the ops some Python module wraps; an op registered
in C++ alone (`_Arg`, `_Retval`, ...) is refused there with "No op named X".
For each op of the C++ registry (read as tools/dump_opset.py reads it) that
the Python registry lacks, a one-node GraphDef is imported: an op refused by
name is listed, with tf.contrib imported first (as a program loading a contrib
model does). Releases that import through the C API refuse none.

Output: {"tf_version": ..., "unimportable_ops": [names], "python_registry": true|false}.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from dump_common import tf_version, write_dump  # noqa: E402
from dump_opset import op_list  # noqa: E402
from tensorflow.core.framework import graph_pb2  # noqa: E402

v1 = getattr(getattr(tf, "compat", None), "v1", tf)


def python_registry():
    """The op names Python's op_def_registry holds, or None where it has no listing (TF >= 2.x)."""
    from tensorflow.python.framework import op_def_registry
    get = getattr(op_def_registry, "get_registered_ops", None)
    return set(get()) if get is not None else None


def refused_by_name(op):
    """Whether importing a one-node GraphDef of `op` fails because the importer does not know the op."""
    gd = graph_pb2.GraphDef()
    gd.node.add(name="probe", op=op)
    try:
        with tf.Graph().as_default():
            v1.import_graph_def(gd, name="")
    except Exception as exc:  # the message tells an unknown op from a node it merely cannot build
        return "No op named" in str(exc) or "Op type not registered" in str(exc)
    return False


def import_contrib():
    """Import tf.contrib where the release has it: a model that uses an op whose Python wrapper lives
    there (BlockLSTM, GRUBlockCell, ...) is loaded by a program that imports it, so only what the
    importer refuses even then counts."""
    try:
        import tensorflow.contrib  # noqa: F401
    except Exception:  # TF 2.x has none; a broken contrib leaves the plain registry
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    import_contrib()
    registry = python_registry()
    candidates = [] if registry is None else sorted(op.name for op in op_list()[0].op if op.name not in registry)
    refused = [op for op in candidates if refused_by_name(op)]
    doc = {"tf_version": tf_version(tf), "unimportable_ops": refused, "python_registry": registry is not None}
    write_dump(doc, a.out, "%d of %d ops outside the Python registry refused by the importer"
               % (len(refused), len(candidates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
