"""io/copying: byte-for-byte copies through the kernel or, where it cannot, through Python."""

import errno
import os

import pytest

from transpiler.io import copying


def _source(tmp_path, size):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    return src


@pytest.mark.parametrize("size", [0, 1, copying.CHUNK + 12345])
@pytest.mark.parametrize("kernel", [True, False])
def test_a_copy_has_the_same_bytes_and_progress_counts_them(tmp_path, monkeypatch, size, kernel):
    if not kernel:
        def no_sendfile(*args):
            raise OSError(errno.EINVAL, "sendfile not between these files")
        monkeypatch.setattr(os, "sendfile", no_sendfile)
    src = _source(tmp_path, size)
    heard = []
    copier = copying.ByteCopier([src], lambda what, done, total: heard.append((done, total)))
    copier.copy(src, tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    assert heard[-1] == (size, size) and [d for d, _ in heard] == sorted(d for d, _ in heard)
    if size > copying.CHUNK:
        assert len(heard) >= 2     # a chunk at a time when someone listens


def test_a_copy_over_a_longer_file_leaves_none_of_its_bytes(tmp_path):
    src = _source(tmp_path, 100)
    dst = tmp_path / "dst.bin"
    dst.write_bytes(b"x" * 1000)
    copying.ByteCopier([src], None).copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()


def test_an_empty_file_is_opened_without_truncating_it(tmp_path, monkeypatch):
    # truncating to zero makes ext4 flush the new data on close (auto_da_alloc): 0.4 s per 868 MB shard
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.write_bytes(b"")
    full.write_bytes(b"old bytes")
    truncated = []
    real = os.ftruncate
    monkeypatch.setattr(os, "ftruncate", lambda fd, n: (truncated.append(n), real(fd, n)))
    for path in (empty, full):
        with copying.open_for_writing(path) as f:
            f.write(b"new")
        assert path.read_bytes() == b"new"
    assert truncated == [0]        # only the file that held bytes


def test_other_sendfile_errors_are_raised(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(os, "sendfile", broken)
    src = _source(tmp_path, 10)
    with pytest.raises(OSError):
        copying.ByteCopier([src], None).copy(src, tmp_path / "dst.bin")
