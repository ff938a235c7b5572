"""The user's cache directory, for files a later run may reuse (parsed rules, the release data's index).

Everything kept there is a convenience: a cache that cannot be written is
skipped without a word, and readers treat a missing or damaged file as absent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
