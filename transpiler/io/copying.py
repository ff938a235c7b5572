"""Copying files byte for byte, telling a progress callback (options.Progress) how many bytes are done.

Without a callback a copy is `shutil.copyfile` (the kernel's fast path); with one it
streams in chunks, so a multi-gigabyte checkpoint shows its progress.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from transpiler.options import Progress

#: What copies report to the progress callback.
CHECKPOINT_PROGRESS = "copying checkpoint (bytes)"
#: Bytes per chunk when progress is reported: a callback per 4 MiB costs nothing next to the copy.
CHUNK = 4 << 20


class ByteCopier:
    """Copies files, counting their bytes against the total of all the files it will copy."""

    def __init__(self, sources: Iterable[Path], progress: Optional[Progress], what: str = CHECKPOINT_PROGRESS):
        self.progress = progress
        self.what = what
        self.done = 0
        self.total = sum(_size(p) for p in sources) if progress is not None else 0

    def copy(self, src: Path, dst: Path) -> None:
        """`dst` becomes a copy of `src`; the callback hears of each chunk, and of the end of the last file."""
        if self.progress is None:
            shutil.copyfile(src, dst)
            return
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                fout.write(chunk)
                self.done += len(chunk)
                self.progress(self.what, min(self.done, self.total), self.total)
        if self.done >= self.total:
            self.progress(self.what, self.total, self.total)

    def skip(self, src: Path) -> None:
        """`src` was not copied (hard-linked instead): count it as done."""
        self.done += _size(src)
        if self.progress is not None:
            self.progress(self.what, min(self.done, self.total), self.total)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
