"""Canonical text of a transpiled model, for golden-file regression tests.

Small graphs are written out whole as pbtxt (functions sorted by name); big
ones as a readable summary: op histogram, signatures, and the nodes rules
created or changed. Paths never appear, so the text depends only on the input
model, the release and our own rules.
"""

from __future__ import annotations

import collections
import re
from typing import List

from transpiler.io.protos import graph_pb2, text_format
from transpiler.io.readers import Model
from transpiler.pipeline.report import Report

#: Graphs up to this many serialized bytes are written out whole.
FULL_TEXT_LIMIT = 16 * 1024

#: Names exporters make unique per process, not per model: a saver's temp dir uuid, and the
#: counter TF appends to traced functions (it depends on what the process traced before).
_UNSTABLE = [(re.compile(r"_temp_[0-9a-f]{32}"), "_temp_<uuid>"),
             (re.compile(r"(__inference_\w*?)_\d+\b"), r"\1_<n>")]


def _mask(text: str) -> str:
    for pattern, replacement in _UNSTABLE:
        text = pattern.sub(replacement, text)
    return text


def golden_text(model: Model, report: Report, header: List[str], whole: bool = True) -> str:
    """`whole=False` never writes the graph out: for SavedModels TensorFlow itself wrote (upgrades)."""
    lines = ["# " + h for h in header]
    lines += ["", "## report", report.fired_summary()]
    lines += ["note: " + note for note in report.notes]
    # Sorted: exporters do not keep node order stable between runs of the same code.
    lines += ["  " + line for line in sorted(_mask(f) for f in report.fired_by_node())]
    lines += ["problems: %d" % len(report.problems)] + ["  %s %s: %s" % (p.where, p.op, p.reason) for p in report.problems]
    for index, mg in enumerate(model.meta_graphs):
        lines += ["", "## meta graph %d (tags: %s)" % (index, ",".join(mg.meta_info_def.tags) or "-")]
        lines += _signatures(mg)
        lines += ["ops: " + ", ".join("%s x%d" % kv for kv in sorted(_histogram(mg.graph_def).items()))]
        if whole:
            lines += ["", _graph_text(mg.graph_def, report)]
    return _mask("\n".join(lines).rstrip() + "\n")


def _signatures(mg) -> List[str]:
    out = []
    for key in sorted(mg.signature_def):
        sig = mg.signature_def[key]
        io = ["%s=%s" % (k, sig.inputs[k].name) for k in sorted(sig.inputs)]
        oo = ["%s=%s" % (k, sig.outputs[k].name) for k in sorted(sig.outputs)]
        out.append("signature %s (%s): %s -> %s" % (key, sig.method_name, ", ".join(io), ", ".join(oo)))
    return out


def _histogram(graph_def: graph_pb2.GraphDef) -> collections.Counter:
    ops = collections.Counter(n.op for n in graph_def.node)
    ops.update(n.op for f in graph_def.library.function for n in f.node_def)
    return ops


def _graph_text(graph_def: graph_pb2.GraphDef, report: Report) -> str:
    ordered = graph_pb2.GraphDef()
    ordered.CopyFrom(graph_def)
    functions = sorted(ordered.library.function, key=lambda f: _mask(f.signature.name))
    del ordered.library.function[:]
    ordered.library.function.extend(functions)
    if ordered.ByteSize() <= FULL_TEXT_LIMIT:
        return text_format.MessageToString(ordered).rstrip()
    touched = {f["node"] for f in report.fired}
    nodes = sorted((n for n in ordered.node if n.name in touched or n.name.rsplit("/", 1)[0] in touched),
                   key=lambda n: _mask(n.name))
    body = "\n".join(_node_line(n) for n in nodes)
    return "(graph of %d bytes: only nodes rules touched)\n%s" % (ordered.ByteSize(), body)


def _node_line(node) -> str:
    attrs = " ".join("%s=%s" % (k, text_format.MessageToString(node.attr[k], as_one_line=True))
                     for k in sorted(node.attr) if not k.startswith("_"))
    device = " @" + node.device if node.device else ""
    return "node %s: %s(%s)%s %s" % (node.name, node.op, ", ".join(node.input), device, attrs)
