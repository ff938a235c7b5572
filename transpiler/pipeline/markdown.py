"""Markdown for reports pasted into tickets: table cells and tables (GitHub-flavoured).

A module of its own, importing nothing, so the command line renders its
listings with the same tables without loading the pipeline.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence


def md_cell(value) -> str:
    """A value as one Markdown table cell: pipes escaped, newlines flattened (a cell is one line)."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> List[str]:
    """A GitHub-flavoured Markdown table, as lines (a header row, a rule, one line per row)."""
    lines = ["| %s |" % " | ".join(md_cell(h) for h in headers), "|%s|" % "|".join("---" for _ in headers)]
    lines += ["| %s |" % " | ".join(md_cell(v) for v in row) for row in rows]
    return lines
