"""Compiled template code kept beside the package's own bytecode, so a process does not compile it again.

jinja2 turns a template into Python in pure Python: the built-in rules' 104
templates take 0.9 s (BERT's eight about 0.25 s, einsum's alone 0.1 s), on
every run. The code it makes, and what the template reads of its context (template_memo's
analyses, another walk of the tree), depend only on the template's text, jinja2's
version, the interpreter (marshal's format), this package's code generator
and environment (sandbox.py, templates.py, template_memo.py, name_flow.py) and
the shared macros a template may import (rules/*.j2). So it is stored, marshalled,
under that hash in the package's ``engine/__pycache__/``, where Python keeps
the bytecode of these modules; a template then needs neither parsing nor compiling.

The trust is Python's own for ``__pycache__``: whoever can write there can
change the package's modules too. As Python does, nothing is written when
bytecode writing is off (``-B``, ``PYTHONDONTWRITEBYTECODE``) or the directory
is not writable, and a missing or damaged file is compiled anew. At most
MAX_FILES are kept (the store starts over when full), so hostile rule files
with many templates cannot fill the disk.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Callable, FrozenSet, Optional, Tuple

import jinja2

from transpiler.engine.builtin import builtin_rules_dir
from transpiler.io.user_cache import write_quietly

#: Where the code is kept: beside the engine modules' bytecode.
CACHE_DIR = Path(__file__).resolve().parent / "__pycache__"
#: Files this module writes there, at most (a rule file's templates beyond that are compiled every run).
MAX_FILES = 1024
#: The modules whose code decides what a template compiles to (a change makes every stored file stale).
_GENERATOR_FILES = ("sandbox.py", "templates.py", "template_memo.py", "name_flow.py", "template_code.py")
_PREFIX = "jinja-"
#: What is kept of a template: its code, the context names it reads and those when template_memo may stand in.
Facts = Tuple[CodeType, Optional[FrozenSet[str]], Optional[FrozenSet[str]]]

_salt: Optional[bytes] = None
_room: Optional[int] = None


def _generator_salt() -> bytes:
    """What besides the template's text decides its code, hashed once per process."""
    global _salt
    if _salt is None:
        digest = hashlib.sha256(("%s\0%s\0" % (jinja2.__version__, sys.version)).encode())
        for name in _GENERATOR_FILES:
            digest.update((Path(__file__).resolve().parent / name).read_bytes())
        for path in sorted(builtin_rules_dir().glob("*.j2")):  # what a template's imported macros do to its memo
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        _salt = digest.digest()
    return _salt


def path_for(text: str) -> Path:
    """The file that holds the facts of template `text` (a loaded file's: its name, NUL and its text)."""
    key = hashlib.sha256(_generator_salt() + text.encode("utf-8", "surrogatepass")).hexdigest()
    return CACHE_DIR / (_PREFIX + key[:40] + ".marshal")


def cached(text: str, analyse: Callable[[str], Facts]) -> Facts:
    """`analyse(text)`, (compiled code, context names read, names read when memoizable), or what it gave
    for the same template text in an earlier process."""
    path = path_for(text)
    facts = _read(path)
    if facts is None:
        facts = analyse(text)
        if not sys.dont_write_bytecode and _take_room():
            write_quietly(path, marshal.dumps(facts))
    return facts


def _read(path: Path) -> Optional[Facts]:
    try:
        facts = marshal.loads(path.read_bytes())
    except Exception:  # missing, unreadable or damaged (marshal raises EOFError, ValueError, TypeError)
        return None
    if type(facts) is tuple and len(facts) == 3 and isinstance(facts[0], CodeType) and \
            all(names is None or type(names) is frozenset and all(type(n) is str for n in names)
                for names in facts[1:]):
        return facts
    return None


def _take_room() -> bool:
    """Whether one more file may be written. The directory is counted once per process; when it holds
    MAX_FILES, they are removed and it starts over (files of edited rules or of an older package pile up
    otherwise, and a reader that loses one compiles the template)."""
    global _room
    if _room is None:
        try:
            kept = [entry.path for entry in os.scandir(CACHE_DIR) if entry.name.startswith(_PREFIX)]
        except OSError:
            kept = []
        if len(kept) >= MAX_FILES:
            for path in kept:
                Path(path).unlink(missing_ok=True)
            kept = []
        _room = MAX_FILES - len(kept)
    _room -= 1
    return _room >= 0
