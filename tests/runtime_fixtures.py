"""pytest fixtures that run models in real TensorFlow releases.

tests/conftest.py does ``from runtime_fixtures import *``.

* ``tf_release("1.8")`` -> tf_runtimes.Runtime, provisioned on first use.  When
  it cannot be provisioned the test is skipped with the reason, except under
  CI (env CI=true) where it fails loudly: CI must never skip these silently.
  TF_TRANSPILE_SKIP_REAL_RUNTIMES=1 skips them on purpose (outside CI).
* ``run_in_release(version, saved_model_dir, inputs, signature=..., tags=...)``
  -> {output key: np.ndarray}; raises ReleaseLoadError when the release
  refuses to load or run the model.
* ``run_graph_def_in_release(version, pb_path, feeds, fetches)`` ->
  {fetch name: np.ndarray}, same error contract.
* ``run_plan_in_release(version, plan, arrays)`` -> {"tf_version", "signatures",
  "steps": {id: {"ok": True, "outputs": {key: np.ndarray}} or {"ok": False,
  "error", "type", "stage"}}}: several steps (signature calls, feeds/fetches)
  against one model loaded once (SavedModel with a tag set, .meta with its
  checkpoint, GraphDef); see tests/harness/tf1_run.py --plan.  Raises
  ReleaseLoadError when loading (or initializing) fails; a failing step is
  reported in its entry.  A plain function, also used by tools/corpus_matrix.py.

``version`` may also be "host": the TensorFlow installed for this Python
(sys.executable), run in a subprocess through the same loader, so a model can
be run in its source release (TF 2.x on the host) and in the target release
with identical plumbing.

Arrays pass through .npz files in a temporary directory under /tmp.  String
inputs may be bytes/str/object arrays; they are sent as numpy 'S' arrays
(numpy 1.16 in the old releases reads them without pickle).  String outputs
come back as 'S' arrays (note: numpy 'S' drops trailing NUL bytes).
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import pytest

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from transpiler.runtimes import provision as tf_runtimes  # noqa: E402
from transpiler.runtimes.provision import RuntimeUnavailable, ensure_runtime  # noqa: E402

__all__ = [
    "ReleaseLoadError",
    "HARNESS_DIR",
    "TF1_RUN",
    "tf_release",
    "run_in_release",
    "run_graph_def_in_release",
    "run_plan_in_release",
]

HARNESS_DIR = _HERE / "harness"
TF1_RUN = HARNESS_DIR / "tf1_run.py"
HOST = "host"


class ReleaseLoadError(Exception):
    """The release refused to load or run the model.

    ``str(err)`` is the loader's error, e.g. "KeyError: u'FusedBatchNormV3'"
    or "NotFoundError: Op type not registered 'Foo' in binary ...".
    """

    def __init__(self, message: str, *, version: str = "", error_type: str = "",
                 stage: str = "", stderr: str = ""):
        super().__init__(message)
        self.message = message
        self.version = version
        self.error_type = error_type
        self.stage = stage
        self.stderr = stderr


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class _HostRuntime:
    """The host's own TensorFlow, run as a subprocess (same surface as Runtime)."""

    version = HOST

    def chroot_path(self, host_path) -> str:
        return os.path.realpath(os.fspath(host_path))

    def run_python(self, script, args: Iterable = (), timeout: Optional[float] = 900,
                   env: Optional[Mapping[str, str]] = None, cwd=None, **_ignored):
        e = dict(os.environ)
        e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        if env:
            e.update(env)
        return subprocess.run([sys.executable, os.fspath(script)] + [os.fspath(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              errors="replace", timeout=timeout, env=e,
                              cwd=os.fspath(cwd) if cwd is not None else None)


_runtimes: Dict[str, object] = {}
_failures: Dict[str, str] = {}


def _get_release(version: str):
    v = str(version)
    if v == HOST:
        return _HostRuntime()
    if os.environ.get("TF_TRANSPILE_SKIP_REAL_RUNTIMES") and not _in_ci():
        pytest.skip("real TF runtimes disabled by TF_TRANSPILE_SKIP_REAL_RUNTIMES")
    try:
        key = tf_runtimes.normalize_version(v)
    except RuntimeUnavailable as e:
        pytest.fail(str(e))
    if key not in _runtimes and key not in _failures:
        try:
            _runtimes[key] = ensure_runtime(key)
        except RuntimeUnavailable as e:
            _failures[key] = str(e)
    if key in _failures:
        msg = "TF %s runtime unavailable: %s" % (key, _failures[key])
        if _in_ci():
            pytest.fail(msg + "\n(CI=true: real-runtime tests must not skip)", pytrace=False)
        pytest.skip(msg)
    return _runtimes[key]


@pytest.fixture(scope="session")
def tf_release():
    """Factory: ``tf_release("1.8")`` -> provisioned tf_runtimes.Runtime (or skip/fail)."""
    return _get_release


def _as_feedable(value) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind == "U":
        a = np.char.encode(a, "utf-8")
    elif a.dtype == object:
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in a.ravel()]
        a = (np.array(flat, dtype=bytes).reshape(a.shape) if flat
             else np.zeros(a.shape, dtype="S1"))
    return a


def _run_loader(rt, args: Sequence[str], workdir: pathlib.Path, timeout: float) -> Dict[str, np.ndarray]:
    return _run_loader_full(rt, args, workdir, timeout)[1]


def _run_loader_full(rt, args: Sequence[str], workdir: pathlib.Path, timeout: float,
                     cwd=None):
    """(the loader's JSON result, {npz key: array})."""
    out_npz = workdir / "out.npz"
    argv = list(args) + ["--outputs", rt.chroot_path(out_npz)]
    if cwd is None:
        proc = rt.run_python(TF1_RUN, argv, timeout=timeout)
    else:
        proc = rt.run_python(TF1_RUN, argv, timeout=timeout, cwd=cwd)
    result = None
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    version = getattr(rt, "version", "?")
    if proc.returncode == 3 and result and "error" in result:
        raise ReleaseLoadError(result["error"], version=version,
                               error_type=result.get("type", ""),
                               stage=result.get("stage", ""), stderr=proc.stderr)
    if proc.returncode != 0 or not result or not result.get("ok"):
        tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
        raise RuntimeError("tf1_run.py in TF %s failed (exit %s): %s\n--- stderr tail ---\n%s"
                           % (version, proc.returncode, result or proc.stdout[-2000:], tail))
    with np.load(str(out_npz), allow_pickle=False) as f:
        return result, {k: f[k] for k in f.files}


def _workdir() -> pathlib.Path:
    # /tmp is visible inside the release roots (tf_runtimes binds it).
    return pathlib.Path(tempfile.mkdtemp(prefix="tf-release-run-", dir="/tmp"))


def _run_in_release(version: str, saved_model_dir, inputs: Mapping[str, object],
                    signature: str = "serving_default", tags: Sequence[str] = ("serve",),
                    timeout: float = 900) -> Dict[str, np.ndarray]:
    rt = _get_release(version)
    if isinstance(tags, str):
        tags = (tags,)
    wd = _workdir()
    try:
        in_npz = wd / "in.npz"
        np.savez(str(in_npz), **{k: _as_feedable(v) for k, v in inputs.items()})
        args = ["--saved-model", rt.chroot_path(saved_model_dir), "--tags", ",".join(tags),
                "--signature", signature, "--inputs", rt.chroot_path(in_npz)]
        return _run_loader(rt, args, wd, timeout)
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


def _run_graph_def_in_release(version: str, pb_path, feeds: Mapping[str, object],
                              fetches: Sequence[str], timeout: float = 900) -> Dict[str, np.ndarray]:
    rt = _get_release(version)
    wd = _workdir()
    try:
        in_npz = wd / "in.npz"
        arrays = {"feed_%d" % i: _as_feedable(v) for i, v in enumerate(feeds.values())}
        np.savez(str(in_npz), **arrays)
        args = ["--graph-def", rt.chroot_path(pb_path), "--inputs", rt.chroot_path(in_npz)]
        for i, name in enumerate(feeds):
            args += ["--feed", "%s=feed_%d" % (name, i)]
        for i, name in enumerate(fetches):
            args += ["--fetch", "%s=fetch_%d" % (name, i)]
        raw = _run_loader(rt, args, wd, timeout)
        return {name: raw["fetch_%d" % i] for i, name in enumerate(fetches)}
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


def _pack_arrays(arrays: Mapping[str, object]) -> Dict[str, np.ndarray]:
    """String arrays as KEY~u8 + KEY~len (tf1_run.py rebuilds them with their
    trailing NUL bytes, which an 'S' array drops); the rest as _as_feedable."""
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.kind in "USO":
            items = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in a.ravel()]
            out[k + "~u8"] = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
            out[k + "~len"] = np.array([len(x) for x in items], np.int64).reshape(a.shape)
        else:
            out[k] = _as_feedable(a)
    return out


def run_plan_in_release(version: str, plan: Mapping[str, object],
                        arrays: Mapping[str, object], timeout: float = 900) -> Dict[str, object]:
    """Runs a tf1_run.py plan (host paths in plan["path"]/["checkpoint"])."""
    rt = _get_release(version)
    wd = _workdir()
    try:
        plan = dict(plan)
        plan["path"] = rt.chroot_path(plan["path"])
        if plan.get("checkpoint"):
            # a prefix need not exist as a file: translate its directory
            ckpt = os.fspath(plan["checkpoint"])
            plan["checkpoint"] = os.path.join(rt.chroot_path(os.path.dirname(ckpt) or "."),
                                              os.path.basename(ckpt))
        plan_file = wd / "plan.json"
        plan_file.write_text(json.dumps(plan))
        in_npz = wd / "in.npz"
        np.savez(str(in_npz), **_pack_arrays(arrays))
        result, raw = _run_loader_full(
            rt, ["--plan", rt.chroot_path(plan_file), "--inputs", rt.chroot_path(in_npz)],
            wd, timeout, cwd=wd)   # a fetched save op writes its checkpoint here, not in the clone
        steps = {}
        for sid, st in (result.get("steps") or {}).items():
            st = dict(st)
            if st.get("ok"):
                st["outputs"] = {k: raw[v[0]] for k, v in st["outputs"].items()}
            steps[sid] = st
        return {"tf_version": result.get("tf_version"), "signatures": result.get("signatures"),
                "steps": steps}
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


@pytest.fixture(scope="session")
def run_in_release(tf_release):
    """``run_in_release("1.8", saved_model_dir, {"x": arr}, signature=..., tags=...)`` -> outputs."""
    return _run_in_release


@pytest.fixture(scope="session")
def run_graph_def_in_release(tf_release):
    """``run_graph_def_in_release("1.8", "frozen.pb", {"x:0": arr}, ["y:0"])`` -> {"y:0": arr}."""
    return _run_graph_def_in_release
