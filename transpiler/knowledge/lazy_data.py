"""The release data, read once per machine and then per entry, on demand.

``opsets.json`` is 3 MB of JSON: decoding all of it costs every process about
90 ms, though a conversion asks about a hundred of its two thousand ops. So
the first process that reads a given data file also writes an index of it
under ``$TF_TRANSPILE_CACHE`` (default ``~/.cache/tf-transpile``) in
``data/``, named by a hash of the file's bytes: for each large section, each
key with the compact JSON text of its value. Later processes load the index
(a few ms) and decode an entry's JSON when it is first asked for.

The index is a convenience, like the rule cache: an unwritable, missing or
damaged one is ignored (the JSON is decoded whole), and it is read with an
unpickler that builds only builtin containers and strings, so a planted
file cannot run code; what it holds is JSON text, decoded by ``json``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

from transpiler.io.user_cache import read_pickle, user_cache_dir, write_quietly

#: Sections kept as JSON text per key (the large ones); any other section is decoded with the index.
LAZY_SECTIONS = ("ops", "contrib_ops", "cpu_kernels", "refused_ranks")

#: Bumped when the index's layout changes (old index files are then ignored).
_LAYOUT = b"1"


class LazySection(Mapping):
    """A read-only mapping whose values are decoded from their JSON text when first read."""

    def __init__(self, texts: Dict[str, str]):
        self._texts = texts
        self._values: Dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._values.get(key, self)
        if value is self:
            value = self._values[key] = json.loads(self._texts[key])
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._texts

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


def load(raw: bytes) -> Dict[str, Any]:
    """The data of the JSON document `raw`, with LAZY_SECTIONS as LazySection mappings.

    Same values as ``json.loads(raw)``; the index is read from (or written to) the user's cache."""
    key = hashlib.sha256(_LAYOUT + b"\0" + raw).hexdigest()
    path = user_cache_dir() / "data" / (key + ".pickle")
    index = _read(path)
    if index is None:
        index = _index(json.loads(raw))
        _forget_others(path)
        write_quietly(path, pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
    return {name: LazySection(value) if name in LAZY_SECTIONS and isinstance(value, dict) else value
            for name, value in index.items()}


def _index(data: Dict[str, Any]) -> Dict[str, Any]:
    """`data` with each LAZY_SECTIONS section's values as compact JSON text."""
    return {name: ({k: json.dumps(v, separators=(",", ":")) for k, v in value.items()}
                   if name in LAZY_SECTIONS and isinstance(value, dict) else value)
            for name, value in data.items()}


def _forget_others(path: Path) -> None:
    """Remove the indexes of other data files (an older release of the package): 3 MB each, never read again
    by this one. Another installed version may still want its own, so each keeps rewriting it when asked."""
    for old in path.parent.glob("*.pickle"):
        if old != path and len(old.stem) == 64:
            try:
                old.unlink()
            except OSError:
                pass



def _read(path: Path) -> Optional[Dict[str, Any]]:
    index = read_pickle(path)  # builtins only; None when missing or damaged: the JSON is decoded instead
    valid = isinstance(index, dict) and all(
        isinstance(index.get(name, {}), dict) and all(isinstance(t, str) for t in index.get(name, {}).values())
        for name in LAZY_SECTIONS)
    return index if valid else None
