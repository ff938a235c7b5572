"""A cache of parsed rule files, so a conversion does not re-parse YAML and templates every run.

Parsing the built-in rules (pure-Python YAML composing with line marks, the
schema check, every template parsed in the sandbox) takes over a second; the
result depends only on the file's bytes, its path (rules carry "file:line")
and the code that parses them. So a valid file's rules are stored under
``$TF_TRANSPILE_CACHE`` (default ``$XDG_CACHE_HOME/tf-transpile``, i.e.
``~/.cache/tf-transpile``) in ``rules/``, named by a hash of those three,
and read back on the next run.

Only files that load without a problem are cached: an invalid one is parsed
every time, so its error message is the loader's own. The cache is a
convenience: an unwritable or damaged cache is ignored (the file is parsed),
and it is read with an unpickler that builds nothing but ``Rule`` objects and
plain containers, so a planted cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Callable, Dict, List, Optional

from transpiler.io.user_cache import read_pickle, user_cache_dir, write_quietly

#: The modules and data whose code decides what a rule file parses to (a change invalidates the cache).
_PARSER_FILES = ("engine/rule_files.py", "engine/safe_yaml.py", "engine/templates.py", "engine/sandbox.py",
                 "data/rule.schema.json")

#: Parsed rules of this process, by cache key (a batch or a test session loads the same files often).
_memory: Dict[str, list] = {}


def cache_dir() -> Path:
    """Where parsed rule files are kept: $TF_TRANSPILE_CACHE/rules, else ~/.cache/tf-transpile/rules."""
    return user_cache_dir() / "rules"


_code_hash: Optional[str] = None


def _parser_hash() -> str:
    """A hash of the parsing code, computed once per process."""
    global _code_hash
    if _code_hash is None:
        package = Path(__file__).resolve().parents[1]
        digest = hashlib.sha256(pickle.format_version.encode())
        for name in _PARSER_FILES:
            digest.update(name.encode() + b"\0" + (package / name).read_bytes())
        _code_hash = digest.hexdigest()
    return _code_hash


def cached_load(path: Path, data: Optional[bytes], parse: Callable[[Path], list], rule_class: type) -> list:
    """`parse(path)`, or the rules it gave last time for the same bytes `data` at the same path.

    `rule_class` is the class of the rules: the one class a cache file may hold objects of.
    `data` is the file's content (None when it could not be read: no caching,
    `parse` reports the problem). A fresh list is returned each call; the
    rules themselves are shared within a process, so callers must not edit them.
    """
    if data is None:
        return parse(path)
    key = hashlib.sha256(b"\0".join([_parser_hash().encode(), str(path).encode("utf-8", "surrogateescape"),
                                     data])).hexdigest()
    if key in _memory:
        return list(_memory[key])
    rules = _read(key, rule_class)
    if rules is None:
        rules = parse(path)
        _write(key, rules)
    _memory[key] = rules
    return list(rules)


def _read(key: str, allowed: type) -> Optional[list]:
    rules = read_pickle(cache_dir() / (key + ".pickle"), (allowed,))
    return rules if isinstance(rules, list) and all(type(r) is allowed for r in rules) else None


def _write(key: str, rules: list) -> None:
    """Store `rules` atomically; failures are ignored (io/user_cache.py)."""
    write_quietly(cache_dir() / (key + ".pickle"), pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL))


def cached_rules(paths: List[Path], limit: int, parse: Callable[[Path], list], rule_class: type) -> List[list]:
    """The rules of each file in `paths`, through the cache (an unreadable file, or one over `limit`
    bytes, is handed to `parse`, which reports it)."""
    out = []
    for path in paths:
        try:
            with open(path, "rb") as stream:
                data: Optional[bytes] = stream.read(limit + 1)
        except OSError:
            data = None
        out.append(cached_load(path, data if data is not None and len(data) <= limit else None, parse, rule_class))
    return out
