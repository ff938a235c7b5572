"""Pass: --clear-devices, as TF's own loaders offer it.

A model pinned to ``/device:GPU:0`` cannot be placed on a CPU-only release;
with the devices cleared (graph and function bodies) the target's placer
chooses. Colocation constraints (``_class``) are kept: they name nodes, not
devices.
"""

from __future__ import annotations

from transpiler.ir.graph import GraphDefIR
from transpiler.passes.base import Context, Pass, PassLog


class ClearDevices(Pass):
    name = "clear-devices"

    def applies(self, ctx: Context) -> bool:
        return ctx.options.clear_devices

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        cleared = 0
        for _, graph in ir.graphs():
            for node in graph.nodes:
                if node.device:
                    node.device = ""
                    cleared += 1
        return PassLog(notes=["cleared the device of %d node(s)" % cleared] if cleared else [])
