"""Comparing the trainable variables of OUT (in the target) with IN's (in the reference).

Both sides load with tf.saved_model.load; each loader writes every trainable
variable it reaches through the object graph to an .npz of its own and
reports its object path, name, dtype, shape and the sha256 of its bytes
(runtimes/loader.py). A conversion copies variables byte for byte, so equal
means equal digests; values are read from the .npz files only for a variable
whose digests differ, one pair at a time (a big model's weights are never
all in memory at once), to say how far apart they are.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional


@dataclasses.dataclass
class VariablesCheck:
    tags: Optional[List[str]]
    ok: bool
    #: How many trainable variables OUT has in the target, and IN in the reference.
    count: int
    reference_count: int
    #: One line per difference (a missing, extra or changed variable).
    problems: List[str] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return "[%s] " % ",".join(self.tags) if self.tags is not None else ""

    def summary(self) -> str:
        if self.ok:
            return "%d trainable variable(s) equal" % self.count
        return "trainable variables differ: %s" % self.problems[0]


def compare_variables(tags: Optional[List[str]], want: List[dict], want_npz: str, got: List[dict],
                      got_npz: str) -> VariablesCheck:
    """OUT's variables `got` (loader entries, values in `got_npz`) against IN's `want`, by object path."""
    check = VariablesCheck(tags, True, len(got), len(want))
    if len(got) != len(want):
        check.problems.append("OUT has %d trainable variable(s), IN %d" % (len(got), len(want)))
    by_path = {v["path"]: v for v in got}
    for w in want:
        g = by_path.pop(w["path"], None)
        if g is None:
            check.problems.append("%s missing in OUT" % _describe(w))
        else:
            problem = _differs(w, want_npz, g, got_npz)
            if problem:
                check.problems.append("%s: %s" % (_describe(w), problem))
    check.problems += ["%s only in OUT" % _describe(g) for g in by_path.values()]
    check.ok = not check.problems
    return check


def _describe(v: dict) -> str:
    return "variable %s (%s %s %s)" % (v["path"], v["name"], v["dtype"], v["shape"])


def _differs(want: dict, want_npz: str, got: dict, got_npz: str) -> Optional[str]:
    """Why OUT's variable is not IN's (None when equal)."""
    if (got["dtype"], got["shape"]) != (want["dtype"], want["shape"]):
        return "OUT has %s %s" % (got["dtype"], got["shape"])
    if got["sha256"] == want["sha256"]:
        return None
    import numpy as np

    with np.load(want_npz, allow_pickle=False) as fw, np.load(got_npz, allow_pickle=False) as fg:
        w, g = fw[want["key"]], fg[got["key"]]
    unequal = w != g
    n = int(np.sum(unequal))
    if want["raw"] or w.dtype.kind not in "iufc":
        return "%d of %d bytes differ" % (n, w.size) if want["raw"] else "%d of %d values differ" % (n, w.size)
    diff = np.abs(g.astype(np.complex128 if w.dtype.kind == "c" else np.float64) - w)
    return "%d of %d values differ (max |diff| %.3g)" % (n, w.size, float(np.nanmax(diff)) if diff.size else 0.0)
