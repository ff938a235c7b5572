"""What the command line prints, and how much: -q/-v, --format text|json|markdown, progress on a terminal.

One process runs one command, so the verbosity is set once (by `main`, from
the global flags) and read here; nothing below the cli layer knows of it.
The layers below hear of long work only through ConvertOptions.progress,
a plain callback (`progress_callback` makes the one that draws the line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import List, Optional, TextIO, Tuple

from transpiler.options import Progress
from transpiler.pipeline.markdown import md_cell

QUIET, NORMAL, VERBOSE = -1, 0, 1
#: Every --format; text is the default, json and markdown are one document on stdout.
FORMATS = ("text", "json", "markdown")
#: Seconds of work before a progress line appears (short work never shows one); tests set it to 0.
PROGRESS_DELAY_ENV = "TF_TRANSPILE_PROGRESS_DELAY"
PROGRESS_DELAY = 0.5
#: Redraws per second at most: a terminal needs no more, and each redraw is a write.
REDRAW_EVERY = 0.1
BAR_WIDTH = 30

GLOBAL_FLAGS = {"-q": QUIET, "--quiet": QUIET, "-v": VERBOSE, "--verbose": VERBOSE}

_level = NORMAL
#: The progress lines made in this process (end_progress ends them).
_lines: List["ProgressLine"] = []


def split_global_flags(argv: List[str]) -> Tuple[int, List[str]]:
    """(verbosity, argv without -q/--quiet/-v/--verbose): the flags may come anywhere (before a `--`).

    The last one given wins, as with most tools' repeated flags."""
    level, rest = NORMAL, []
    for i, arg in enumerate(argv):
        if arg == "--":
            return level, rest + argv[i:]
        if arg in GLOBAL_FLAGS:
            level = GLOBAL_FLAGS[arg]
        else:
            rest.append(arg)
    return level, rest


def set_level(level: int) -> None:
    global _level
    _level = level


def quiet() -> bool:
    return _level <= QUIET


def verbose() -> bool:
    return _level >= VERBOSE


def say(text: str, stream: Optional[TextIO] = None) -> None:
    """Informational text (what was done): printed unless -q."""
    if not quiet():
        print(text, file=stream or sys.stdout)


def requested_format(argv: List[str]) -> str:
    """The --format of a command line, read without parsing it (for errors raised before or while parsing)."""
    fmt = "text"
    for i, arg in enumerate(argv):
        if arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg == "--format" and i + 1 < len(argv):
            fmt = argv[i + 1]
    return fmt if fmt in FORMATS else "text"


def error_document(fmt: str, message: str, code: int, report=None) -> Optional[str]:
    """What stdout gets when a command fails with --format json or markdown (None for text):
    json {"error", "exit_code"[, the report's fields]}, markdown the report then the error."""
    if fmt == "json":
        document = json.loads(report.to_json()) if report is not None else {}
        document.update(error=message, exit_code=code)
        return json.dumps(document, indent=2, sort_keys=True)
    if fmt == "markdown":
        head = report.to_markdown(verbose()) if report is not None else "## tf-transpile: error"
        return "%s\n\n**Error (exit status %d):** %s" % (head, code, md_cell(message))
    return None


# ---------------------------------------------------------------------------
# progress


class ProgressLine:
    """A progress callback (options.Progress) that redraws one line with \\r on a terminal:
    `what [#####.....]  45%  12.0/27.0 MB`. It shows nothing for work that ends within `delay`."""

    def __init__(self, stream: TextIO, delay: float = PROGRESS_DELAY):
        self.stream = stream
        self.delay = delay
        self.what: Optional[str] = None
        self.began = self.drawn_at = 0.0
        self.shown = False

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if what != self.what:
            self.end()
            self.what, self.began, self.shown = what, now, False
        finished = total <= 0 or done >= total
        if now - self.began < self.delay and not self.shown:
            return  # short work: no line at all
        if not finished and self.shown and now - self.drawn_at < REDRAW_EVERY:
            return
        self.stream.write("\r" + render_progress(what, done, total))
        self.stream.flush()
        self.shown, self.drawn_at = True, now
        if finished:
            self.end()
            self.what = None

    def end(self) -> None:
        """Move past the drawn line (the next output starts a line of its own)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def render_progress(what: str, done: int, total: int) -> str:
    """`what [####......]  40%  4.0/10.0 MB` (bytes are shown in MB, anything else as counts)."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(round(fraction * BAR_WIDTH))
    if "bytes" in what:
        amount = "%.1f/%.1f MB" % (done / 1e6, total / 1e6)
    else:
        amount = "%d/%d" % (done, total)
    return "%s [%s%s] %3d%%  %s" % (what, "#" * filled, "." * (BAR_WIDTH - filled), fraction * 100, amount)


def progress_callback(stream: Optional[TextIO] = None) -> Optional[Progress]:
    """A ProgressLine on stderr when stderr is a terminal and -q was not given; else None (no progress)."""
    stream = stream or sys.stderr
    if quiet() or not _isatty(stream):
        return None
    try:
        delay = float(os.environ.get(PROGRESS_DELAY_ENV, PROGRESS_DELAY))
    except ValueError:
        delay = PROGRESS_DELAY
    _lines.append(ProgressLine(stream, delay))
    return _lines[-1]


def end_progress() -> None:
    """End any progress line left half drawn (work that failed midway), so the error starts a line."""
    for line in _lines:
        line.end()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
