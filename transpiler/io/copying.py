"""Copying files byte for byte, telling a progress callback (options.Progress) how many bytes are done.

A copy is the kernel's `sendfile` (no bytes pass through Python), in chunks when a callback
wants to hear of progress, so a multi-gigabyte checkpoint shows it; where `sendfile` cannot
copy between the two files, or the bytes are to be checked on the way (a tap), they are read
and written in chunks instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Optional

from transpiler.options import Progress

#: What copies report to the progress callback.
CHECKPOINT_PROGRESS = "copying checkpoint (bytes)"
#: Bytes per chunk when progress is reported: a callback per 4 MiB costs nothing next to the copy.
CHUNK = 4 << 20
#: Bytes per `sendfile` call without a callback (the kernel may copy less per call; the loop goes on).
WHOLE = 1 << 30
#: What `sendfile` says where it cannot copy between two files (then they are read and written).
_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOTSOCK})


def open_for_writing(path: Path) -> BinaryIO:
    """`path` opened to be written from its start, created if absent, and emptied only if it holds bytes.

    An empty file (a temporary name reserved with mkstemp) is not truncated: on ext4 a truncation
    to zero makes the file's close wait for its new data to reach the disk (auto_da_alloc), which
    measured 0.4 s on closing an 868 MB checkpoint shard."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        if os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class ByteCopier:
    """Copies files, counting their bytes against the total of all the files it will copy."""

    def __init__(self, sources: Iterable[Path], progress: Optional[Progress], what: str = CHECKPOINT_PROGRESS):
        self.progress = progress
        self.what = what
        self.done = 0
        self.total = sum(_size(p) for p in sources) if progress is not None else 0

    def copy(self, src: Path, dst: Path, tap: Optional[Callable[[bytes], None]] = None, chunk: int = CHUNK) -> None:
        """`dst` becomes a copy of `src`; the callback hears of each chunk, and of the end of the last file.
        With `tap`, the bytes pass through Python in pieces of `chunk` bytes, each handed to `tap` (a checksum
        check, which may raise) before it is written: one read of `src` serves both."""
        step = WHOLE if self.progress is None else CHUNK
        kernel = hasattr(os, "sendfile") and tap is None
        with open(src, "rb") as fin, open_for_writing(dst) as fout:
            while True:
                copied = _sendfile(fin, fout, step) if kernel else None
                if copied is None:
                    kernel, copied = False, _read_write(fin, fout, chunk if tap else step, tap)
                if not copied:
                    break
                self._count(copied)
        if self.progress is not None and self.done >= self.total:
            self.progress(self.what, self.total, self.total)

    def skip(self, src: Path) -> None:
        """`src` was not copied (hard-linked instead): count it as done."""
        self._count(_size(src))

    def _count(self, size: int) -> None:
        self.done += size
        if self.progress is not None:
            self.progress(self.what, min(self.done, self.total), self.total)


def _sendfile(fin: BinaryIO, fout: BinaryIO, size: int) -> Optional[int]:
    """Up to `size` bytes of `fin`, from its position, appended to `fout` by the kernel (0 at the end);
    None, nothing copied, where the kernel cannot copy between these two files."""
    try:
        return os.sendfile(fout.fileno(), fin.fileno(), None, size)
    except OSError as exc:
        if exc.errno in _NO_SENDFILE:
            return None
        raise


def _read_write(fin: BinaryIO, fout: BinaryIO, size: int, tap: Optional[Callable[[bytes], None]] = None) -> int:
    chunk = fin.read(min(size, CHUNK))
    if tap is not None and chunk:
        tap(chunk)
    fout.write(chunk)
    return len(chunk)


def hard_link(src: Path, dst: Path) -> bool:
    """Make `dst` a hard link to `src`; False (nothing made) when the file system refuses one."""
    try:
        os.link(src, dst)
    except OSError:  # EXDEV across file systems, EPERM/ENOTSUP where links are not supported
        return False
    return True


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
