"""Per-release facts (op registries, GraphDef versions) read from generated data.

The data file is produced by ``tools/build_opsets.py`` from the real runtimes;
nothing here is typed by hand. Each op carries its history: the distinct
OpDefs it had and the releases that registered each one.
"""

from __future__ import annotations

import difflib
import functools
import gzip
from importlib import resources
from typing import Dict, Iterable, List, Optional

from transpiler.errors import TranspileError
from transpiler.io.protos import json_format, op_def_pb2
from transpiler.knowledge import lazy_data

DATA_FILE = "opsets.json"


def version_key(version: str) -> tuple:
    return tuple(int(p) for p in version.split("."))


@functools.lru_cache(maxsize=None)
def _load_data() -> dict:
    data_dir = resources.files("transpiler") / "data"
    plain, packed = data_dir / DATA_FILE, data_dir / (DATA_FILE + ".gz")
    if plain.is_file():
        return lazy_data.load(plain.read_bytes())
    if packed.is_file():
        return lazy_data.load(gzip.decompress(packed.read_bytes()))
    raise TranspileError("opset data missing: run tools/build_opsets.py (package data %s)" % DATA_FILE)


class Opset:
    """One release's op registry, with answers about when things appeared."""

    def __init__(self, catalog: "Catalog", release: str):
        self.catalog = catalog
        self.release = release
        self.graph_def_version: int = catalog.info[release]["graph_def_version"]

    def __repr__(self) -> str:
        return "Opset(%s)" % self.release

    @property
    def is_tf1(self) -> bool:
        """A TF 1.x release: no object graph, no function runtime for control flow v2 by default."""
        return version_key(self.release)[0] < 2

    @property
    def short(self) -> str:
        """`1.8` for 1.8.0: the way users write it."""
        major, minor, patch = self.release.split(".")
        return self.release if patch != "0" else "%s.%s" % (major, minor)

    def op(self, name: str) -> Optional[op_def_pb2.OpDef]:
        return self.catalog.op_def(name, self.release)

    def has_op(self, name: str) -> bool:
        """The release registers `name` and accepts it in the graphs it loads: an op deprecated at
        its GraphDef version or earlier (OpDef.deprecation) is refused there, and so is one its importer
        refuses by name (`importer_refuses`), so both count as missing."""
        op_def = self.op(name)
        return (op_def is not None and not 0 < op_def.deprecation.version <= self.graph_def_version
                and not self.importer_refuses(name))

    def attr(self, op: str, attr: str) -> Optional[op_def_pb2.OpDef.AttrDef]:
        op_def = self.op(op)
        return next((a for a in op_def.attr if a.name == attr), None) if op_def else None

    def has_cpu_kernel(self, op: str) -> Optional[bool]:
        """None when the release's kernels are unknown."""
        return self.catalog.has_cpu_kernel(op, self.release)

    @property
    def reads_snappy_index(self) -> bool:
        """Whether the release reads checkpoint indexes whose blocks are snappy-compressed (TF 1.4's
        Linux wheel does not: tools/dump_formats.py); unknown (not dumped) counts as yes."""
        return self.catalog.info[self.release].get("reads_snappy_index") is not False

    @property
    def reads_legacy_tf_version(self) -> bool:
        """Whether the release imports a meta graph whose meta_info_def.tensorflow_version is not a PEP 440
        version ("0.12.head", as TF 0.12's nightlies wrote it): newer ones parse it with packaging.version
        and raise InvalidVersion (tools/dump_formats.py); unknown (not dumped) counts as yes."""
        return self.catalog.info[self.release].get("reads_meta_version_head") is not False

    def importer_refuses(self, op: str) -> bool:
        """Whether the release's GraphDef importer refuses the registered op `op` by name: TF 1.4-1.7
        import through the Python op registry, which lacks ops only C++ registers (`_Arg`, ...;
        tools/dump_importer.py). Unknown (not dumped) counts as no."""
        return op in (self.catalog.info[self.release].get("unimportable_ops") or ())

    def refused_ranks(self, op: str) -> Dict[str, List[int]]:
        """{input arg: ranks} that `op`'s shape function refuses in this release (Catalog.refused_ranks)."""
        return self.catalog.refused_ranks(op, self.release)

    def proto_fields(self, message: str) -> Optional[frozenset]:
        """The fields the release's SavedModel schema has in `message` ("tensorflow.StructuredValue"),
        None when its schema was not dumped (TF 1.x, or a message it does not have)."""
        return self.catalog.proto_fields(message, self.release)


class Catalog:
    """All known releases, in ascending order."""

    def __init__(self, data: dict):
        self.info: dict = data["releases"]
        self.releases: list = sorted(self.info, key=version_key)
        self._ops: dict = data["ops"]
        self._kernels: dict = data.get("cpu_kernels") or {}
        self._contrib: dict = data.get("contrib_ops") or {}
        self._proto_fields: dict = data.get("proto_fields") or {}
        self._refused_ranks: dict = data.get("refused_ranks") or {}
        self._parsed: dict = {}
        self._last: Dict[str, Optional[str]] = {}
        self._first: Dict[tuple, Optional[str]] = {}

    def opset(self, version: str) -> Opset:
        return Opset(self, self.resolve(version))

    def resolve(self, version: str) -> str:
        """`1.8`, `1.8.0` and `v1.8` all name release 1.8.0."""
        text = version.strip().lstrip("v")
        parts = text.split(".")
        if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
            raise TranspileError("not a TensorFlow release: %r (expected e.g. 1.8 or 2.21)" % version)
        full = ".".join((parts + ["0", "0"])[:3])
        if len(parts) < 3:
            # `1.13` names the newest patch release of 1.13 we know (1.13.1: 1.13.0 has no py27 wheel).
            same_minor = [r for r in self.releases if r.split(".")[:2] == (parts + ["0"])[:2]]
            full = same_minor[-1] if same_minor else full
        if full not in self.info:
            raise TranspileError("unknown release %s; known releases: %s" % (version, ", ".join(self.short_names())))
        return full

    def short_names(self) -> list:
        return [Opset(self, r).short for r in self.releases]

    def op_def(self, name: str, release: str) -> Optional[op_def_pb2.OpDef]:
        key = (name, release)
        if key not in self._parsed:
            entry = next((e for e in self._ops.get(name, ()) if release in e["releases"]), None)
            self._parsed[key] = entry and json_format.ParseDict(entry["def"], op_def_pb2.OpDef())
        return self._parsed[key]

    def refused_ranks(self, op: str, release: str) -> Dict[str, List[int]]:
        """{input arg: ranks} that `op`'s shape function refuses in `release` whatever its attrs
        (tools/dump_ranks.py); empty when none or when the release could not probe the op."""
        entry = next((e for e in self._refused_ranks.get(op, ()) if release in e["releases"]), None)
        return entry["inputs"] if entry else {}

    def proto_fields(self, message: str, release: str) -> Optional[frozenset]:
        entry = next((e for e in self._proto_fields.get(message, ()) if release in e["releases"]), None)
        return frozenset(entry["fields"]) if entry else None

    def ops(self) -> list:
        """Every op any known release has."""
        return list(self._ops)

    def contrib_op_def(self, name: str, release: Optional[str] = None) -> Optional[op_def_pb2.OpDef]:
        """The OpDef `import tensorflow.contrib` registered in `release` (default: the newest that did).

        Contrib ops are not part of any release's core registry (`op_def`): a
        graph that uses them loads only where contrib is imported first.
        """
        entries = self._contrib.get(name, ())
        entry = (next((e for e in entries if release in e["releases"]), None) if release
                 else max(entries, key=lambda e: max(version_key(r) for r in e["releases"]), default=None))
        key = ("contrib", name, release)
        if key not in self._parsed:
            self._parsed[key] = entry and json_format.ParseDict(entry["def"], op_def_pb2.OpDef())
        return self._parsed[key]

    def contrib_releases(self, name: str) -> list:
        """The releases whose tf.contrib registers `name`, ascending ([] for core or unknown ops)."""
        found = {r for e in self._contrib.get(name, ()) for r in e["releases"]}
        return sorted(found, key=version_key)

    def has_cpu_kernel(self, op: str, release: str) -> Optional[bool]:
        if self.info[release].get("kernels_method") is None:
            return None
        return release in self._kernels.get(op, ())

    def first_release(self, op: str, attr: Optional[str] = None, after: Optional[str] = None) -> Optional[str]:
        """The earliest release (after `after`, if given) that has `op` (and its `attr`); remembered per
        question, since every problem of a kind asks it again (1 600 times for a Keras ResNet50)."""
        key = (op, attr, after)
        if key not in self._first:
            self._first[key] = next((release for release in self._later_releases(after)
                                     if _has(self.op_def(op, release), attr)), None)
        return self._first[key]

    def missing_before(self, release: str) -> list:
        """Minor releases ("2.2", ...) between `release` and the known release before it that the
        data lacks (no runtime could be provisioned for them), so a `first_release` answer of
        `release` may really be one of these."""
        i = self.releases.index(release)
        if i == 0:
            return []
        (major, minor), (pmajor, pminor) = version_key(release)[:2], version_key(self.releases[i - 1])[:2]
        if major != pmajor:
            return []
        return ["%d.%d" % (major, m) for m in range(pminor + 1, minor)]

    def last_release(self, op: str) -> Optional[str]:
        """The newest release that has `op` (asked for every node: remembered per op)."""
        if op not in self._last:
            self._last[op] = next((r for r in reversed(self.releases) if self.op_def(op, r)), None)
        return self._last[op]

    def close_ops(self, name: str, n: int = 3) -> List[str]:
        """Known op names (core or contrib) close to `name`, best first: what a typo of it meant."""
        by_lower = {}
        for op in sorted(set(self._ops) | set(self._contrib)):
            by_lower.setdefault(op.lower(), op)
        return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.75)]

    def did_you_mean(self, name: str) -> str:
        """'; did you mean Y?' when known ops are close to `name`, else ''."""
        close = self.close_ops(name)
        return "; did you mean %s?" % " or ".join(close) if close else ""

    def unknown_op(self, name: str) -> str:
        """'op X is unknown to every known release', with 'did you mean Y?' when a known op is close."""
        return "op %s is unknown to every known release%s" % (name, self.did_you_mean(name))

    def _later_releases(self, after: Optional[str]) -> Iterable[str]:
        floor = version_key(after) if after else ()
        return (r for r in self.releases if version_key(r) > floor)


def _has(op_def: Optional[op_def_pb2.OpDef], attr: Optional[str]) -> bool:
    """`op_def` exists and (when `attr` is given) declares `attr`."""
    return bool(op_def) and (attr is None or any(a.name == attr for a in op_def.attr))


@functools.lru_cache(maxsize=None)
def catalog() -> Catalog:
    return Catalog(_load_data())
