"""Checkpoint files on disk: find them, copy them without loading tensors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List


def checkpoint_files(prefix: Path) -> List[Path]:
    """Files of the checkpoint at `prefix`: V2 (.index + .data-*) or V1 (prefix or shards)."""
    prefix = Path(prefix)
    parent = prefix.parent
    if not parent.is_dir():
        return []
    v2 = sorted(parent.glob(prefix.name + ".data-*-of-*"))
    index = Path(str(prefix) + ".index")
    if index.is_file():
        return [index] + v2
    v1 = sorted(parent.glob(prefix.name + "-?????-of-?????"))
    return v1 or ([prefix] if prefix.is_file() else [])


def copy_checkpoint(prefix: Path, new_prefix: Path) -> None:
    """Copy the checkpoint under a new prefix, streaming file contents (tensors are never loaded)."""
    for src in checkpoint_files(prefix):
        shutil.copyfile(src, Path(str(new_prefix) + src.name[len(Path(prefix).name):]))
