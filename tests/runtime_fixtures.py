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
  checkpoint, GraphDef); see transpiler/runtimes/loader.py --plan.  Raises
  ReleaseLoadError when loading (or initializing) fails; a failing step is
  reported in its entry.  A plain function, also used by tools/corpus_matrix.py.

``version`` may also be "host": the TensorFlow installed for this Python
(sys.executable), run in a subprocess through the same loader, so a model can
be run in its source release (TF 2.x on the host) and in the target release
with identical plumbing. The plumbing is the product's own
(transpiler/runtimes/runner.py, which `tf-transpile verify` uses): these are
only pytest's view of it (skip or, under CI, fail when a runtime is missing).

Arrays pass through .npz files in a temporary directory under /tmp.  String
inputs may be bytes/str/object arrays; they are sent as numpy 'S' arrays
(numpy 1.16 in the old releases reads them without pickle).  String outputs
come back as 'S' arrays (note: numpy 'S' drops trailing NUL bytes).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import sys
from typing import Dict, Mapping, Sequence

import numpy as np
import pytest

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from transpiler.runtimes import provision as tf_runtimes  # noqa: E402
from transpiler.runtimes.provision import RuntimeUnavailable, ensure_runtime  # noqa: E402
from transpiler.runtimes.runner import (LOADER, LoaderTimeout, ReleaseLoadError, as_feedable, host_runtime,  # noqa: E402
                                        run_loader, run_plan, workdir)

__all__ = [
    "ReleaseLoadError",
    "LoaderTimeout",
    "HARNESS_DIR",
    "TF1_RUN",
    "tf_release",
    "run_in_release",
    "run_graph_def_in_release",
    "run_plan_in_release",
]

HARNESS_DIR = _HERE / "harness"
TF1_RUN = LOADER
HOST = "host"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


_runtimes: Dict[str, object] = {}
_failures: Dict[str, str] = {}


def _get_release(version: str):
    v = str(version)
    if v == HOST:
        return host_runtime()
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


def _run_in_release(version: str, saved_model_dir, inputs: Mapping[str, object],
                    signature: str = "serving_default", tags: Sequence[str] = ("serve",),
                    timeout: float = 900) -> Dict[str, np.ndarray]:
    rt = _get_release(version)
    if isinstance(tags, str):
        tags = (tags,)
    wd = workdir()
    try:
        in_npz = wd / "in.npz"
        np.savez(str(in_npz), **{k: as_feedable(v) for k, v in inputs.items()})
        args = ["--saved-model", rt.chroot_path(saved_model_dir), "--tags", ",".join(tags),
                "--signature", signature, "--inputs", rt.chroot_path(in_npz)]
        return run_loader(rt, args, wd, timeout)[1]
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


def _run_graph_def_in_release(version: str, pb_path, feeds: Mapping[str, object],
                              fetches: Sequence[str], timeout: float = 900) -> Dict[str, np.ndarray]:
    rt = _get_release(version)
    wd = workdir()
    try:
        in_npz = wd / "in.npz"
        arrays = {"feed_%d" % i: as_feedable(v) for i, v in enumerate(feeds.values())}
        np.savez(str(in_npz), **arrays)
        args = ["--graph-def", rt.chroot_path(pb_path), "--inputs", rt.chroot_path(in_npz)]
        for i, name in enumerate(feeds):
            args += ["--feed", "%s=feed_%d" % (name, i)]
        for i, name in enumerate(fetches):
            args += ["--fetch", "%s=fetch_%d" % (name, i)]
        raw = run_loader(rt, args, wd, timeout)[1]
        return {name: raw["fetch_%d" % i] for i, name in enumerate(fetches)}
    finally:
        shutil.rmtree(str(wd), ignore_errors=True)


def run_plan_in_release(version: str, plan: Mapping[str, object],
                        arrays: Mapping[str, object], timeout: float = 900) -> Dict[str, object]:
    """runner.run_plan in the release `version` ("host": this Python's TF)."""
    return run_plan(_get_release(version), plan, arrays, timeout)


@pytest.fixture(scope="session")
def run_in_release(tf_release):
    """``run_in_release("1.8", saved_model_dir, {"x": arr}, signature=..., tags=...)`` -> outputs."""
    return _run_in_release


@pytest.fixture(scope="session")
def run_graph_def_in_release(tf_release):
    """``run_graph_def_in_release("1.8", "frozen.pb", {"x:0": arr}, ["y:0"])`` -> {"y:0": arr}."""
    return _run_graph_def_in_release
