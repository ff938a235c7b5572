"""Pass: --clear-devices, as TF's own loaders offer it; without it, a note on GPU-pinned nodes.

A model pinned to ``/device:GPU:0`` cannot be placed on a CPU-only build of
any release, as it is or converted. With the devices cleared (graph and
function bodies) the target's placer chooses. Colocation constraints
(``_class``) are kept: they name nodes, not devices. Without the option the
devices are left alone (the model may be meant for a GPU machine), and the
report says which nodes need one, so that "wrote OUT" does not hide it.
"""

from __future__ import annotations

import re

from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog

#: "/device:GPU:0", "/gpu:0", "/job:w/replica:0/task:0/device:GPU:*" (TF's DeviceSpec is case-blind here).
_GPU = re.compile(r"(?:^|/)(?:device:)?gpu(?::|$)", re.IGNORECASE)


def on_gpu(device: str) -> bool:
    """Whether a NodeDef device string pins the node to a GPU."""
    return bool(_GPU.search(device))


class ClearDevices(Pass):
    name = "clear-devices"

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        placed = [node for _, graph in ir.graphs() for node in graph.nodes if node.device]
        if ctx.options.clear_devices:
            for node in placed:
                node.device = ""
            return PassLog(notes=["cleared the device of %d node(s)" % len(placed)] if placed else [])
        gpu = [node for node in placed if on_gpu(node.device)]
        if not gpu:
            return PassLog()
        return PassLog(notes=["%d node(s) are pinned to a GPU (%s, e.g. %s): TF %s runs them only where a GPU is "
                              "present; --clear-devices lets its placer choose" % (
                                  len(gpu), gpu[0].device, gpu[0].name, ctx.opset.short)])
