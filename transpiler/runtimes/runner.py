"""Running models in a real TensorFlow release: one implementation for `verify` and the tests.

A *runtime* is any interpreter that imports some TensorFlow: a release this
package provisioned (``provision.Runtime``, run inside its root), the host's
own Python (``host_runtime()``), or one the user names (``PythonRuntime``, e.g.
``--python ~/venvs/tf18/bin/python``). All of them run the same standalone
script, ``loader.py`` beside this module, on a *plan* (the model, a tag set,
steps: signature calls or feeds/fetches) and exchange arrays through .npz
files in a private temporary directory.

``run_plan(runtime, plan, arrays)`` -> {"tf_version", "signatures", "steps":
{id: {"ok": True, "outputs": {key: ndarray}} | {"ok": False, "error", "type",
"stage"}}} (+ "variables": the loader's list, when the plan asks for them in
an .npz the caller owns). A model that does not load raises ``ReleaseLoadError``; a loader
that crashes or prints no result raises ``LoaderCrashed`` (with the last lines
of its stderr); one that runs past ``timeout`` raises ``LoaderTimeout``.
``find_runtime(release, python=None)`` picks where a release runs, or raises
``provision.RuntimeUnavailable`` saying how to get one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

from transpiler.runtimes import provision

LOADER = Path(__file__).resolve().parent / "loader.py"


class ReleaseLoadError(Exception):
    """The release refused to load (or initialize) the model.

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


class LoaderCrashed(RuntimeError):
    """The loader died without a result (a segfault, an abort, an import failure of the runtime)."""

    def __init__(self, message: str, tail: str = ""):
        super().__init__(message + ("\n--- stderr tail ---\n" + tail if tail else ""))
        self.summary = message
        self.tail = tail


class LoaderTimeout(Exception):
    """The loader ran longer than the timeout; it was killed."""

    def __init__(self, seconds: float, tail: str = ""):
        super().__init__("the loader ran past its timeout of %gs and was stopped" % seconds)
        self.seconds = seconds
        self.tail = tail


class PythonRuntime:
    """An interpreter on this machine that imports TensorFlow (same surface as provision.Runtime)."""

    def __init__(self, python: str, version: str = "", label: str = ""):
        self.python = os.fspath(python)
        self.version = version or "?"
        self.label = label or self.python

    def __repr__(self) -> str:
        return "PythonRuntime(%r)" % self.python

    def chroot_path(self, host_path) -> str:
        return os.path.realpath(os.fspath(host_path))

    def run_python(self, script, args: Iterable = (), timeout: Optional[float] = 900,
                   env: Optional[Mapping[str, str]] = None, cwd=None, **_ignored) -> subprocess.CompletedProcess:
        e = dict(os.environ)
        e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        e.pop("PYTHONPATH", None)  # the user's old environment, not ours
        if env:
            e.update(env)
        return provision.run_captured([self.python, os.fspath(script)] + [os.fspath(a) for a in args],
                                      timeout=timeout, env=e, cwd=os.fspath(cwd) if cwd is not None else None)


    def run_code(self, code: str, args: Iterable = (), **kw) -> subprocess.CompletedProcess:
        """Run Python source `code` (``python -c code args...``)."""
        return self.run_python("-c", [code] + [os.fspath(a) for a in args], **kw)


def host_version() -> Optional[str]:
    """The TensorFlow installed for this Python (from its package metadata, without importing it)."""
    from importlib import metadata

    for dist in ("tensorflow-cpu", "tensorflow", "tf-nightly", "tensorflow-intel"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def host_runtime() -> PythonRuntime:
    return PythonRuntime(sys.executable, host_version() or "?", "host %s" % os.path.basename(sys.executable))


def same_release(a: str, b: str) -> bool:
    """1.8 == 1.8.0 == 1.8.1: a release is its major.minor."""
    return a.split(".")[:2] == b.split(".")[:2]


def find_runtime(release: str, python: Optional[str] = None):
    """Where `release` runs: `python` if given, else the host's TF when it is that release, else a
    provisioned runtime. Raises provision.RuntimeUnavailable with how to get one."""
    if python:
        if not shutil.which(python) and not os.access(python, os.X_OK):
            raise provision.RuntimeUnavailable("--python %s: no such interpreter" % python)
        return PythonRuntime(shutil.which(python) or python, release, "%s (--python)" % python)
    host = host_version()
    if host and same_release(host, release):
        return host_runtime()
    try:
        version = provision.normalize_version(release)
    except provision.RuntimeUnavailable:
        raise provision.RuntimeUnavailable(
            "no runtime for TF %s: tf-transpile provisions %s; for another release pass --python PATH "
            "(an interpreter that imports TF %s)" % (release, ", ".join(provision.RELEASES), release)) from None
    if version not in provision.ready_releases():
        raise provision.RuntimeUnavailable(
            "TF %s is not installed here: run `tf-transpile runtimes install %s` (needs root and debootstrap; "
            "cached in %s) or pass --python PATH (an interpreter that imports TF %s)"
            % (version, release, provision.RUNTIMES_DIR, release))
    return provision.ensure_runtime(version)


def as_feedable(value):
    """An array a TF 1.x session accepts after an .npz round trip: text as UTF-8 bytes ('S')."""
    import numpy as np

    a = np.asarray(value)
    if a.dtype.kind == "U":
        return np.char.encode(a, "utf-8")
    if a.dtype == object:
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in a.ravel()]
        return np.array(flat, dtype=bytes).reshape(a.shape) if flat else np.zeros(a.shape, dtype="S1")
    return a


def pack_arrays(arrays: Mapping[str, object]) -> Dict[str, object]:
    """String arrays as KEY~u8 + KEY~len (the loader rebuilds them with their trailing NUL bytes,
    which an 'S' array drops: a serialized tf.Example may end in one); the rest as_feedable."""
    import numpy as np

    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.kind in "USO":
            items = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in a.ravel()]
            out[k + "~u8"] = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
            out[k + "~len"] = np.array([len(x) for x in items], np.int64).reshape(a.shape)
        else:
            out[k] = as_feedable(a)
    return out


def workdir() -> Path:
    """A private directory every runtime can see (/tmp is bound into the provisioned roots)."""
    return Path(tempfile.mkdtemp(prefix="tf-transpile-run-", dir="/tmp"))


def _result_line(stdout: str) -> Optional[dict]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_loader(rt, args, wd: Path, timeout: float, cwd=None) -> Tuple[dict, Dict[str, object]]:
    """Run loader.py with `args` (+ --outputs in `wd`): (its JSON result, {npz key: array})."""
    import numpy as np

    out_npz = wd / "out.npz"
    argv = [os.fspath(a) for a in args] + ["--outputs", rt.chroot_path(out_npz)]
    try:
        proc = rt.run_python(LOADER, argv, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise LoaderTimeout(timeout, _tail(_text(exc.stderr))) from None
    result = _result_line(proc.stdout)
    version = getattr(rt, "version", "?")
    if proc.returncode == 3 and result and "error" in result and result.get("stage") != "import":
        raise ReleaseLoadError(result["error"], version=version, error_type=result.get("type", ""),
                               stage=result.get("stage", ""), stderr=proc.stderr)
    if proc.returncode != 0 or not result or not result.get("ok"):
        what = result.get("error") if result else "no result (exit %s)" % proc.returncode
        raise LoaderCrashed("the loader in TF %s failed (exit %s): %s" % (version, proc.returncode, what),
                            _tail(proc.stderr))
    with np.load(str(out_npz), allow_pickle=False) as f:
        return result, {k: f[k] for k in f.files}


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def _in_runtime(rt, path) -> str:
    """A host path as `rt` sees it; a checkpoint prefix need not exist as a file: its directory does."""
    path = os.fspath(path)
    return os.path.join(rt.chroot_path(os.path.dirname(path) or "."), os.path.basename(path))


def run_plan(rt, plan: Mapping[str, object], arrays: Mapping[str, object], timeout: float = 900) -> dict:
    """Run a loader plan (host paths in plan["path"] / plan["checkpoint"]) in runtime `rt`."""
    import numpy as np

    wd = workdir()
    try:
        plan = dict(plan)
        plan["path"] = rt.chroot_path(plan["path"])
        if plan.get("checkpoint"):
            plan["checkpoint"] = _in_runtime(rt, plan["checkpoint"])
        if plan.get("variables"):   # the caller's file: it outlives this run's workdir
            plan["variables"] = _in_runtime(rt, plan["variables"])
        plan_file = wd / "plan.json"
        plan_file.write_text(json.dumps(plan))
        in_npz = wd / "in.npz"
        np.savez(str(in_npz), **pack_arrays(arrays))
        result, raw = run_loader(rt, ["--plan", rt.chroot_path(plan_file), "--inputs", rt.chroot_path(in_npz)],
                                 wd, timeout, cwd=wd)   # a fetched save op writes its checkpoint here
        steps = {}
        for sid, st in (result.get("steps") or {}).items():
            st = dict(st)
            if st.get("ok"):
                st["outputs"] = {k: raw[v[0]] for k, v in st["outputs"].items()}
            steps[sid] = st
        done = {"tf_version": result.get("tf_version"), "signatures": result.get("signatures"), "steps": steps}
        for key in ("variables", "variables_error"):
            if key in result:
                done[key] = result[key]
        return done
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)
