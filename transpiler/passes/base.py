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
import time
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
    #: (function or None, node) -> (op, reason): an op the target has but computes differently (rules with
    #: `when: target_before`); the validator cannot see it, so these become problems of their own.
    behaviour_refusals: Dict[Tuple[Optional[str], str], Tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: {old checkpoint key: new key}, for the back end that writes the checkpoint.
    checkpoint_keys: Dict[str, str] = dataclasses.field(default_factory=dict)
    notes: List[str] = dataclasses.field(default_factory=list)
    #: One {"name", "seconds", "firings", "nodes"} per pass that ran, in order (`-v` shows them).
    passes: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    def extend(self, other: "PassLog") -> "PassLog":
        self.firings.extend(other.firings)
        self.passes.extend(other.passes)
        self.refusals.update(other.refusals)
        self.behaviour_refusals.update(other.behaviour_refusals)
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


#: What run_passes reports to ConvertOptions.progress.
PASSES_PROGRESS = "passes over the graph (nodes)"


def run_passes(passes: Sequence[Type[Pass]], ir: GraphDefIR, ctx: Context) -> PassLog:
    """Run each pass that applies, in order; the merged log, with each pass's time and firings.

    Progress is counted in nodes: each pass that applies advances it by the graph's node count
    (taken once, before the first pass), so a big graph shows how far the pipeline is."""
    steps = [step for step in (cls() for cls in passes) if step.applies(ctx)]
    nodes = node_count(ir)
    total, progress = nodes * len(steps), ctx.options.progress
    log = PassLog()
    for i, step in enumerate(steps):
        began = time.perf_counter()
        step_log = step.run(ir, ctx)
        step_log.passes = [{"name": step.name, "seconds": round(time.perf_counter() - began, 4),
                            "firings": len(step_log.firings), "nodes": node_count(ir)}]
        log.extend(step_log)
        if progress is not None:
            progress(PASSES_PROGRESS, nodes * (i + 1), total)
    return log


def node_count(ir: GraphDefIR) -> int:
    """Nodes of the graph and of every function body."""
    return sum(len(graph) for _, graph in ir.graphs())


def context_for(opset: Opset, **options) -> Context:
    """A context for running passes on a bare graph (no model around it): tests and tools."""
    return Context(opset, ConvertOptions(to=opset.release, **options))
