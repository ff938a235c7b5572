#!/usr/bin/env python
"""Dump which fields and enum values the running TensorFlow's SavedModel protos have, as JSON.

Runs inside any TensorFlow 2.x (Python 3), and in 1.x where the modules exist:

    python dump_protos.py [--out FILE]

Output: {"tf_version": ..., "messages": {full message name: [field names]},
"enums": {full enum name: [value names]}} for every message and enum reachable
from SavedModel (the object graph, struct.proto's StructuredValue and
TypeSpecProto, function specs, ...), read from the protobuf descriptors this
release was built with. A loader meets a field its release does not know as
an unknown field: harmless for plain fields, but a oneof member it lacks
leaves the oneof empty (TF 2.9 reading a TF 2.15 function default:
"NotEncodableError: No encoder for object of type StructuredValue").
tools/build_opsets.py merges these dumps into the opset data.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from dump_common import tf_version, write_dump  # noqa: E402


def walk(descriptor, messages, enums):
    """Every message and enum type reachable from `descriptor`, recorded by full name."""
    if descriptor.full_name in messages:
        return
    messages[descriptor.full_name] = sorted(f.name for f in descriptor.fields)
    for enum in descriptor.enum_types:
        enums[enum.full_name] = sorted(v.name for v in enum.values)
    for field in descriptor.fields:
        if field.message_type is not None:
            walk(field.message_type, messages, enums)
        if field.enum_type is not None:
            enums[field.enum_type.full_name] = sorted(v.name for v in field.enum_type.values)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    messages, enums = {}, {}
    walk(saved_model_pb2.SavedModel.DESCRIPTOR, messages, enums)
    write_dump({"tf_version": tf_version(tf), "messages": messages, "enums": enums}, a.out,
               "%d messages, %d enums" % (len(messages), len(enums)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
