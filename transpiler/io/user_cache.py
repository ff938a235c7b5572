"""The user's cache directory, for files a later run may reuse (parsed rules, the release data's index).

Everything kept there is a convenience: a cache that cannot be written is
skipped without a word, and readers treat a missing or damaged file as absent.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Optional, Tuple


def user_cache_dir() -> Path:
    """$TF_TRANSPILE_CACHE, else $XDG_CACHE_HOME/tf-transpile, else ~/.cache/tf-transpile."""
    base = os.environ.get("TF_TRANSPILE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tf-transpile")
    return Path(base)


def write_quietly(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a concurrent reader sees the whole file or none); an OSError
    (read-only home, full disk) leaves the cache without the file and is not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".%s.tmp-" % path.stem[:16], dir=str(path.parent))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass


class _OnlyThese(pickle.Unpickler):
    """Builds builtin containers, numbers and strings, and objects of the classes `allowed` only."""

    def __init__(self, data: bytes, allowed: Tuple[type, ...]):
        super().__init__(io.BytesIO(data))
        self.allowed = {(cls.__module__, cls.__qualname__): cls for cls in allowed}

    def find_class(self, module: str, name: str):
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError("unexpected %s.%s in a cache file" % (module, name))
        return found


def read_pickle(path: Path, allowed: Tuple[type, ...] = ()) -> Optional[Any]:
    """What the pickle at `path` holds, or None when it is missing, unreadable or damaged, or names any class
    but `allowed`: a planted cache file cannot run code. The caller still checks the value's shape."""
    try:
        return _OnlyThese(path.read_bytes(), allowed).load()
    except Exception:  # missing, unreadable or damaged: the caller makes the value again
        return None
