"""Pass (downgrade, 2.x targets): object-graph values the target's schema cannot read.

A TF 2 loader reads the object graph (function specs, signatures' structures)
with its own release's protos. A field it lacks is an unknown field and is
ignored, except as a member of a oneof: the oneof then reads as empty, and
``tf.saved_model.load`` fails (TF 2.9 on a TF 2.14 function whose default
argument is a tensor: "NotEncodableError: No encoder for object of type
StructuredValue"). Such a value is replaced by the nearest one the target
reads: a StructuredValue becomes ``none_value`` (a Python default that is no
longer a tensor; signatures are not affected), any other oneof member is
cleared. Which fields each release's schema has is data dumped from the real
runtimes (tools/dump_protos.py, the opset data's "proto_fields").
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog

STRUCTURED_VALUE = "tensorflow.StructuredValue"


class ObjectGraphSchema(Pass):
    name = "object-graph-schema"

    def applies(self, ctx: Context) -> bool:
        # TF 1.x targets never read the object graph (the writer drops it)
        return not ctx.opset.is_tf1 and ctx.meta_graph is not None and ctx.meta_graph.HasField("object_graph_def")

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        mg = ctx.meta_graph
        unreadable = list(_unreadable(mg.object_graph_def, ctx.opset, "object_graph_def"))
        for message, oneof, member, where in unreadable:      # found all first, then changed
            if message.DESCRIPTOR.full_name == STRUCTURED_VALUE:
                message.none_value.SetInParent()
            else:
                message.ClearField(oneof)
        if unreadable:
            members = sorted({"%s.%s" % (m.DESCRIPTOR.name, member) for m, _, member, _ in unreadable})
            log.notes.append("%d object-graph value(s) TF %s cannot read (%s) replaced: a StructuredValue by None, "
                             "e.g. at %s" % (len(unreadable), ctx.opset.short, ", ".join(members), unreadable[0][3]))
        return log


def _unreadable(message, opset, where: str) -> Iterator[Tuple[object, str, str, str]]:
    """(message, oneof, member, path) for every oneof member set in `message`'s tree that the
    target's schema lacks (messages the data does not describe are trusted)."""
    known = opset.proto_fields(message.DESCRIPTOR.full_name)
    for oneof in message.DESCRIPTOR.oneofs:
        member = message.WhichOneof(oneof.name)
        if known is not None and member is not None and member not in known:
            yield message, oneof.name, member, where
            return      # the replacement drops the member's subtree
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for key, child in _children(field, value):
            yield from _unreadable(child, opset, "%s.%s%s" % (where, field.name, key))


def _children(field, value) -> List[Tuple[str, object]]:
    if field.message_type.GetOptions().map_entry:
        if field.message_type.fields_by_name["value"].message_type is None:
            return []
        return [("[%r]" % k, value[k]) for k in sorted(value)]
    if hasattr(value, "ListFields"):     # a single message (protobuf's descriptor API for labels varies)
        return [("", value)]
    return [("[%d]" % i, v) for i, v in enumerate(value)]
