"""The pass protocol: ``run(ir, ctx) -> PassLog``, one fresh ``Context`` per graph.

A pass edits the IR in place and says what it did in its ``PassLog``:
firings (rule id, node, op, detail: what the report lists), refusals (nodes
it chose not to rewrite, with the reason the validator attaches to the
problem they leave behind), checkpoint key renames and notes. A pipeline is a
plain list of pass classes (transpiler/pipeline/pipelines.py) run in order by
``run_passes``; validation is not a pass but the fixed last stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from transpiler.engine.rule_files import Rule
from transpiler.engine.rule_pass import Firing
from transpiler.ir.graph import GraphDefIR
from transpiler.knowledge.releases import Opset
from transpiler.options import ConvertOptions

#: (function or None, node) -> why a pass left it as it was.
Refusals = Dict[Tuple[Optional[str], str], str]


@dataclasses.dataclass
class PassLog:
    """What one pass (or a whole pipeline) did to one graph."""

    firings: List[Firing] = dataclasses.field(default_factory=list)
    refusals: Refusals = dataclasses.field(default_factory=dict)
    #: {old checkpoint key: new key}, for the back end that writes the checkpoint.
    checkpoint_keys: Dict[str, str] = dataclasses.field(default_factory=dict)
    notes: List[str] = dataclasses.field(default_factory=list)

    def extend(self, other: "PassLog") -> "PassLog":
        self.firings.extend(other.firings)
        self.refusals.update(other.refusals)
        self.checkpoint_keys.update(other.checkpoint_keys)
        self.notes.extend(n for n in other.notes if n not in self.notes)
        return self


@dataclasses.dataclass
class Context:
    """What a pass may read about the conversion of one graph; made fresh for each graph."""

    opset: Opset
    options: ConvertOptions
    rules: Sequence[Rule] = ()
    #: The MetaGraphDef the graph came from (signatures, collections, object graph), read-only.
    meta_graph: Any = None
    #: The model as read (kind, checkpoint), read-only.
    model: Any = None
    #: Facts a pass leaves for a later pass or the back end (signatures found, saver keys, ...).
    state: Dict[str, Any] = dataclasses.field(default_factory=dict)


class Pass:
    """Base of every pass: `applies` decides from the context alone, `run` does the work."""

    #: Short name for logs and `explain`.
    name = "pass"

    def applies(self, ctx: Context) -> bool:
        return True

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:  # pragma: no cover - abstract
        raise NotImplementedError


def run_passes(passes: Sequence[Type[Pass]], ir: GraphDefIR, ctx: Context) -> PassLog:
    """Run each pass that applies, in order; the merged log."""
    log = PassLog()
    for cls in passes:
        step = cls()
        if step.applies(ctx):
            log.extend(step.run(ir, ctx))
    return log


def context_for(opset: Opset, **options) -> Context:
    """A context for running passes on a bare graph (no model around it): tests and tools."""
    return Context(opset, ConvertOptions(to=opset.release, **options))
