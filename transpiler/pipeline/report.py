"""The compatibility report: what blocks loading in the target, grouped by op."""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import List, Tuple

from transpiler.passes.validate import Problem
from transpiler.pipeline.markdown import md_cell, md_table

#: Node names shown per group in the text report; JSON always lists all.
SHOWN_NODES = 5


#: The problem kind of an op the target loads but computes differently (see passes/validate.Problem).
BEHAVIOUR = "kernel-behaviour"


def _counts(problems: List[Problem]) -> str:
    counts = collections.Counter(p.op for p in problems)
    return ", ".join("%s x%d" % kv for kv in sorted(counts.items()))


@dataclasses.dataclass
class Report:
    model: str
    target: str
    #: (meta graph label, problems) per graph of the model.
    sections: List[Tuple[str, List[Problem]]]
    #: Which rule fired on which node, filled by the rule pass.
    fired: List[dict] = dataclasses.field(default_factory=list)
    #: What a conversion decided on its own (signatures found, constants unfrozen, ...), one line each.
    notes: List[str] = dataclasses.field(default_factory=list)
    #: Each pass that ran, per graph: {"graph", "name", "seconds", "firings", "nodes"} (`-v`).
    passes: List[dict] = dataclasses.field(default_factory=list)

    @property
    def problems(self) -> List[Problem]:
        return [p for _, problems in self.sections for p in problems]

    @property
    def blocking(self) -> bool:
        return bool(self.problems)

    def groups(self) -> List[Tuple[Tuple[str, str], List[Problem]]]:
        grouped = collections.defaultdict(list)
        for p in self.problems:
            grouped[(p.op, p.reason)].append(p)
        return sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))

    def summary(self) -> str:
        """One line: what a user pastes into an issue.  A `kernel-behaviour` problem does not stop the
        target loading the op, it computes other numbers there, so those are counted apart."""
        loading = [p for p in self.problems if p.kind != BEHAVIOUR]
        behaviour = [p for p in self.problems if p.kind == BEHAVIOUR]
        parts = []
        if loading:
            parts.append("%d problem(s) block loading in TF %s: %s" % (len(loading), self.target, _counts(loading)))
        if behaviour:
            parts.append("%d op(s) would compute other numbers in TF %s: %s" % (
                len(behaviour), self.target, _counts(behaviour)))
        return "; ".join(parts)

    def fired_summary(self) -> str:
        """Per-rule hit counts, e.g. `rules fired: leaky-relu-to-relu x2, ...`."""
        counts = collections.Counter(f["rule"] for f in self.fired)
        return "rules fired: " + (", ".join("%s x%d" % kv for kv in sorted(counts.items())) or "none")

    def fired_by_node(self) -> List[str]:
        return ["%s%s [%s]: %s (%s)" % (f["function"] + "/" if f["function"] else "", f["node"], f["op"],
                                        f["rule"], f["detail"]) for f in self.fired]

    def pass_lines(self) -> List[str]:
        """One line per pass that ran: graph, name, time, firings, nodes after it (what `-v` prints)."""
        return ["pass %-20s %8.3f s  %5d firing(s)  %7d nodes  %s" % (
            p["name"], p["seconds"], p["firings"], p["nodes"], p.get("graph", "")) for p in self.passes]

    def to_text(self, verbose: bool = False) -> str:
        """The report for a terminal; `verbose` adds each firing by node and each pass's time."""
        lines = ["model:  %s" % self.model, "target: TF %s" % self.target]
        lines.extend("note:   %s" % note for note in self.notes)
        if verbose:
            lines.extend(self.pass_lines())
        if self.fired:
            lines.append(self.fired_summary())
            if verbose:
                lines.extend("  " + line for line in self.fired_by_node())
        if not self.blocking:
            return "\n".join(lines + ["nothing blocks loading in TF %s" % self.target])
        lines.append(self.summary())
        for (op, reason), problems in self.groups():
            names = [p.where for p in problems]
            more = " (+%d more)" % (len(names) - SHOWN_NODES) if len(names) > SHOWN_NODES else ""
            lines.append("  %s x%d: %s" % (op, len(problems), reason))
            lines.append("      %s%s" % (", ".join(names[:SHOWN_NODES]), more))
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({
            "model": self.model,
            "target": self.target,
            "ok": not self.blocking,
            "problems": [dict(dataclasses.asdict(p), graph=label) for label, ps in self.sections for p in ps],
            "groups": [{"op": op, "reason": reason, "count": len(ps), "nodes": [p.where for p in ps]}
                       for (op, reason), ps in self.groups()],
            "rules_fired": self.fired,
            "notes": self.notes,
            "passes": self.passes,
        }, indent=2, sort_keys=True)

    def to_markdown(self, verbose: bool = False) -> str:
        """The report to paste into a ticket: a heading, the verdict, then tables of the blocking
        problems (by op, with every node), the rules that fired and, if `verbose`, the passes."""
        verdict = ("**%s**" % self.summary()) if self.blocking else "Nothing blocks loading in TF %s." % self.target
        lines = ["## tf-transpile: %s for TF %s" % (md_cell(self.model), self.target), "", verdict]
        if self.notes:
            lines += [""] + ["- %s" % md_cell(note) for note in self.notes]
        if self.blocking:
            lines += ["", "### Problems", ""]
            lines += md_table(("Op", "Count", "Reason", "Nodes"),
                              [(op, len(ps), reason, ", ".join(p.where for p in ps))
                               for (op, reason), ps in self.groups()])
        if self.fired:
            counts = collections.Counter(f["rule"] for f in self.fired)
            lines += ["", "### Rules fired", ""] + md_table(("Rule", "Count"), sorted(counts.items()))
        if verbose and self.passes:
            lines += ["", "### Passes", ""]
            lines += md_table(("Graph", "Pass", "Seconds", "Firings", "Nodes"),
                              [(p.get("graph", ""), p["name"], "%.3f" % p["seconds"], p["firings"], p["nodes"])
                               for p in self.passes])
        return "\n".join(lines)

