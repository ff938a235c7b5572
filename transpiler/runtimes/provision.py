#!/usr/bin/env python3
"""Real TensorFlow releases (1.4 ... 2.20) for tests and data tools.

Old TensorFlow only ships wheels for old Pythons (1.x, 2.0 and 2.1: Python
2.7; 2.2-2.4: Python <= 3.8; 2.5-2.20: Python 3.9 among others), so this
module keeps Debian roots (built with debootstrap) whose Pythons fit, and
installs each release into its own directory ``/tf/<version>`` of its root:

    root      Debian suite  Python      releases
    rootfs/   bullseye      python2.7   1.4.0 ... 1.15.0, 2.0.0, 2.1.0
    rootfs/   bullseye      python3.9   2.5.3 ... 2.20.0 (tensorflow-cpu)
    rootfs-buster/  buster  python3.7   2.2.3, 2.3.4, 2.4.4 (tensorflow-cpu)

Buster is no longer on deb.debian.org; its root is debootstrapped from
``$TF_TRANSPILE_BUSTER_MIRROR`` (default http://archive.debian.org/debian),
and where that is unreachable 2.2-2.4 are unavailable (RuntimeUnavailable;
they also have no lock files yet: ``lock 2.2.3`` writes one once the root exists).
Which root and which Python a release uses is decided by :func:`_python_for`;
everything else (download, install, smoke test, stamps) is one code path.
Commands run as::

    unshare --mount --net sh -c 'mount --bind ...; exec chroot ROOT env -i ... python3.9 ...'

so the bind mounts live only as long as the process (nothing to clean up)
and a TF run has no network at all.

Everything lives under ``RUNTIMES_DIR`` (``$TF_TRANSPILE_RUNTIMES``, default
``/var/cache/tf-transpile`` for root, else ``~/.cache/tf-transpile``), outside the clone::

    RUNTIMES_DIR/
      .lock                 fcntl lock held while provisioning
      wheels/ sdists/       downloaded distributions (re-provisioning is offline)
      logs/<version>.log    output of the last provisioning
      rootfs/               the bullseye root (ready when .tf-transpile-ready exists)
      rootfs/.tf-transpile-<python>-ready   one of that root's Pythons (apt + pip) is set up
      rootfs/tf/<version>/  one release (ready when .tf-transpile-ready exists)
      rootfs-buster/...     the same for the buster root

A stamp file is written last, after a smoke import succeeded, so a killed
provisioning is simply redone by the next caller; a release's stamp records
its recipe and its requirements, and a release whose recipe or pinned
requirements changed since is provisioned again.

Requirements: the Python 2.7 releases have hand-pinned lists
(:func:`requirements`); a Python 3 release installs exactly the pins of its
lock file ``transpiler/runtimes/locks/<version>.txt`` (committed; made by
``python -m transpiler.runtimes.provision lock VERSION``, which resolves
``tensorflow-cpu==VERSION`` with pip inside the release's root, under
per-release upper bounds such as numpy<2 and protobuf<3.20, see
:func:`lock_constraints`).  Everything is installed with --no-deps.

Provisioning needs root, debootstrap, unshare and access to PyPI and the
Debian mirror; running needs root and unshare.

Library use::

    from transpiler.runtimes.provision import ensure_runtime
    rt = ensure_runtime("1.8")
    proc = rt.run_python(script, ["--saved-model", rt.chroot_path(d), ...])
    # or, for models: transpiler/runtimes/runner.py run_plan(rt, plan, arrays)

Command line::

    python -m transpiler.runtimes.provision provision 1.8.0 2.9.3
    python -m transpiler.runtimes.provision provision all
    python -m transpiler.runtimes.provision lock 2.9.3          # (re)write locks/2.9.3.txt
    python -m transpiler.runtimes.provision run 2.9.3 script.py args...   # host paths in args are translated
    python -m transpiler.runtimes.provision status
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "RUNTIMES_DIR",
    "RELEASES",
    "RuntimeUnavailable",
    "Runtime",
    "ensure_runtime",
    "normalize_version",
    "ready_releases",
]

log = logging.getLogger("tf_runtimes")

def _default_dir() -> str:
    """Provisioning needs root, so root's cache is the system's; anyone else gets their own cache dir."""
    if os.geteuid() == 0:
        return "/var/cache/tf-transpile"
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tf-transpile")


RUNTIMES_DIR = pathlib.Path(os.environ.get("TF_TRANSPILE_RUNTIMES") or _default_dir())

#: Every release this module provisions by default ("all"), ascending.
#: 1.13.0 was never uploaded to PyPI; 1.13.1 is the first 1.13 release.
#: From 2.2 on: the last patch release of each minor with a Linux x86_64
#: tensorflow-cpu wheel for the release's Python (see _python_for).
RELEASES: Tuple[str, ...] = (
    "1.4.0", "1.5.0", "1.6.0", "1.7.0", "1.8.0", "1.9.0", "1.10.0", "1.11.0",
    "1.12.0", "1.13.1", "1.14.0", "1.15.0", "2.0.0", "2.1.0",
    "2.2.3", "2.3.4", "2.4.4", "2.5.3", "2.6.5", "2.7.4", "2.8.4", "2.9.3",
    "2.10.1", "2.11.1", "2.12.1", "2.13.1", "2.14.1", "2.15.1", "2.16.2",
    "2.17.1", "2.18.1", "2.19.1", "2.20.0",
)

# Bump when the recipe changes in a way that invalidates existing installs.
RECIPE = 1

DEBIAN_SUITE = "bullseye"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

PIP_BOOTSTRAP = ("pip==20.3.4", "setuptools==44.1.1", "wheel==0.37.1")

LOCKS_DIR = pathlib.Path(__file__).resolve().parent / "locks"


class _Root:
    """One Debian root: a suite debootstrapped into RUNTIMES_DIR/<dirname>."""

    def __init__(self, dirname: str, suite: str, mirror: str):
        self.dirname, self.suite, self.mirror = dirname, suite, mirror

    @property
    def path(self) -> pathlib.Path:
        return RUNTIMES_DIR / self.dirname


class _Python:
    """One Python inside a root: how to get it, bootstrap pip, pick wheels for it."""

    def __init__(self, root: _Root, exe: str, debs: Tuple[str, ...],
                 bootstrap: Tuple[str, ...], piptools: str, wheel_args: Tuple[str, ...],
                 stamp: str):
        self.root, self.exe, self.debs = root, exe, debs
        self.bootstrap, self.piptools, self.wheel_args = bootstrap, piptools, wheel_args
        self.stamp = stamp          # file in the root written once the Python is set up

    @property
    def py3(self) -> bool:
        return self.exe.startswith("python3")


def _manylinux(glibc_minor: int) -> Tuple[str, ...]:
    """--platform arguments for every manylinux tag a glibc 2.<glibc_minor> system runs."""
    tags = ["manylinux_2_%d_x86_64" % m for m in range(glibc_minor, 4, -1)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    out: List[str] = []
    for t in tags:
        out += ["--platform", t]
    return tuple(out)


def _py3_wheel_args(full: str, glibc_minor: int) -> Tuple[str, ...]:
    # The full version: some wheels require e.g. Python != 3.9.0, != 3.9.1.
    nodot = "".join(full.split(".")[:2])
    return ("--only-binary=:all:", "--python-version", full, "--implementation", "cp",
            "--abi", "cp" + nodot, "--abi", "abi3", "--abi", "none") + _manylinux(glibc_minor)


_BULLSEYE = _Root("rootfs", "bullseye", DEBIAN_MIRROR)
_BUSTER = _Root("rootfs-buster", "buster",
                os.environ.get("TF_TRANSPILE_BUSTER_MIRROR") or "http://archive.debian.org/debian")

_PY3_BOOTSTRAP = ("pip==24.0", "setuptools==69.5.1", "wheel==0.43.0")

# cp27mu wheels for these exist on PyPI; the others are sdists only and are
# built inside the root by pip/setuptools (pure Python; wrapt falls back to
# its Python implementation since the root has no compiler).
_SDIST_ONLY = {"absl-py", "gast", "termcolor", "keras-applications", "wrapt",
               "opt-einsum"}

_ESTIMATOR = {(1, 13): "1.13.0", (1, 14): "1.14.0", (1, 15): "1.15.1",
              (2, 0): "2.0.1", (2, 1): "2.1.0"}

_WHEEL_PLATFORM_ARGS = (
    "--only-binary=:all:", "--python-version", "27", "--implementation", "cp",
    "--abi", "cp27mu", "--platform", "manylinux2010_x86_64",
    "--platform", "manylinux1_x86_64",
)

_PY27 = _Python(_BULLSEYE, "python2.7", ("python2.7",), PIP_BOOTSTRAP, "/opt/piptools",
                _WHEEL_PLATFORM_ARGS, stamp=".tf-transpile-python2.7-ready")
_PY39 = _Python(_BULLSEYE, "python3.9", ("python3.9", "python3-distutils"), _PY3_BOOTSTRAP,
                "/opt/piptools-python3.9", _py3_wheel_args("3.9.2", 31),   # bullseye: Python 3.9.2, glibc 2.31
                stamp=".tf-transpile-python3.9-ready")
_PY37 = _Python(_BUSTER, "python3.7", ("python3.7", "python3-distutils"), _PY3_BOOTSTRAP,
                "/opt/piptools-python3.7", _py3_wheel_args("3.7.3", 28),   # buster: Python 3.7.3, glibc 2.28
                stamp=".tf-transpile-python3.7-ready")
_PYTHONS = (_PY27, _PY39, _PY37)

_SMOKE = r"""
import json, sys
import tensorflow as tf
v1 = tf.compat.v1 if hasattr(tf, "compat") and hasattr(tf.compat, "v1") else tf
with v1.Graph().as_default() as g:
    x = v1.placeholder(tf.float32, [2])
    y = x * 2.0 + 1.0
    with v1.Session(graph=g) as s:
        r = s.run(y, {x: [1.0, 2.0]}).tolist()
assert r == [3.0, 5.0], r
print(json.dumps({"tf_version": tf.__version__,
                  "graph_def_version": v1.GRAPH_DEF_VERSION,
                  "python": sys.version.split()[0]}))
"""


class RuntimeUnavailable(Exception):
    """A release cannot be provisioned or run on this machine (reason in the message)."""


def _vtuple(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _python_for(version: str) -> _Python:
    """Which root and Python a release runs in.

    TF <= 2.1 has cp27mu wheels; 2.2-2.4 have cp35-cp38 wheels only (buster's
    3.7); 2.5-2.20 all have cp39 wheels (bullseye's 3.9).
    """
    mm = _vtuple(version)[:2]
    if mm <= (2, 1):
        return _PY27
    if mm <= (2, 4):
        return _PY37
    return _PY39


def normalize_version(version: str) -> str:
    """'1.8' -> '1.8.0', '1.13' -> '1.13.1', '1.8.0' -> '1.8.0'."""
    v = str(version).strip()
    if v.startswith("v"):
        v = v[1:]
    if not re.match(r"^\d+\.\d+(\.\d+)?$", v):
        raise RuntimeUnavailable("not a TensorFlow release number: %r" % (version,))
    parts = v.split(".")
    if len(parts) == 2:
        for rel in RELEASES:
            if rel.split(".")[:2] == parts:
                return rel
        return v + ".0"
    return v


def _lock_path(version: str) -> pathlib.Path:
    return LOCKS_DIR / (version + ".txt")


def _read_lock(version: str) -> List[Tuple[str, bool]]:
    """[(name==version, is_sdist)] from locks/<version>.txt ("# sdist" marks an sdist)."""
    try:
        text = _lock_path(version).read_text()
    except OSError:
        raise RuntimeUnavailable(
            "TF %s has no lock file %s; write it with "
            "`python -m transpiler.runtimes.provision lock %s` (needs network)"
            % (version, _lock_path(version), version))
    out = []
    for line in text.splitlines():
        req, _, comment = line.partition("#")
        req = req.strip()
        if req:
            out.append((req, comment.strip() == "sdist"))
    return out


def lock_constraints(version: str) -> List[str]:
    """Upper bounds used when resolving a Python 3 release's lock.

    TF's own metadata leaves many dependencies open-ended; these keep the
    resolver to what the release was built and tested with (numpy 2 and
    protobuf 4 break older releases; keras/tensorboard/estimator versions
    follow TF's minor).
    """
    mm = _vtuple(version)[:2]
    nxt = "%d.%d" % (mm[0], mm[1] + 1)
    # wrapt 2 and setuptools 81 (no pkg_resources) came after TF 2.20.
    c = ["tensorflow-cpu==" + version, "tensorboard<" + nxt, "wrapt<2", "setuptools<81"]
    if mm < (2, 12):
        c.append("numpy<1.24")
    elif mm < (2, 18):
        c.append("numpy<2")
    if mm < (2, 10):
        c.append("protobuf<3.20")
    if mm < (2, 16):
        c.append("tensorflow-estimator<" + nxt)
    if (2, 6) <= mm < (2, 16):
        c.append("keras<" + nxt)
    return c


def requirements(version: str) -> List[str]:
    """The pinned distributions installed (with --no-deps) for one release."""
    major, minor = _vtuple(version)[:2]
    mm = (major, minor)
    if _python_for(version).py3:
        return [r for r, _ in _read_lock(version)]
    reqs = ["tensorflow==" + version, "numpy==1.16.6", "protobuf==3.17.3",
            "six==1.16.0", "mock==3.0.5", "funcsigs==1.0.2", "enum34==1.1.10",
            "backports.weakref==1.0.post1", "futures==3.3.0", "h5py==2.10.0"]
    if mm >= (1, 5):
        reqs.append("absl-py==0.15.0")
    if mm >= (1, 6):
        reqs += ["astor==0.8.1", "gast==0.2.2", "termcolor==1.1.0"]
    if mm >= (1, 9):
        reqs += ["keras-preprocessing==1.1.2", "keras-applications==1.0.8",
                 "wrapt==1.12.1", "opt-einsum==2.3.2"]
    if mm >= (1, 14):
        reqs.append("google-pasta==0.2.0")
    if mm in _ESTIMATOR:
        reqs.append("tensorflow-estimator==" + _ESTIMATOR[mm])
    return reqs


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_req(req: str) -> Tuple[str, str]:
    name, _, ver = req.partition("==")
    return _canon(name), ver


def _dist_files(directory: pathlib.Path) -> Dict[Tuple[str, str], pathlib.Path]:
    found = {}
    if not directory.is_dir():
        return found
    for p in directory.iterdir():
        n = p.name
        if n.endswith(".whl"):
            parts = n[:-4].split("-")
            if len(parts) >= 2:
                found[(_canon(parts[0]), parts[1])] = p
        else:
            for ext in (".tar.gz", ".zip", ".tar.bz2"):
                if n.endswith(ext):
                    name, _, ver = n[: -len(ext)].rpartition("-")
                    if name:
                        found[(_canon(name), ver)] = p
    return found


class Runtime:
    """One provisioned release inside its root.

    ``python`` is the interpreter the release runs under ("python2.7" up to
    TF 2.1, "python3.7" or "python3.9" after).
    """

    def __init__(self, version: str, root: pathlib.Path, python: Optional[str] = None):
        self.version = version
        self.root = pathlib.Path(root)
        if python is None:
            try:
                python = _python_for(version).exe
            except ValueError:          # "bootstrap" and other non-release names
                python = _PY27.exe
        self.python = python
        self.site_dir = "/tf/" + version          # as seen inside the root
        self.info: dict = {}
        stamp = self.root / "tf" / version / ".tf-transpile-ready"
        with contextlib.suppress(OSError, ValueError):
            self.info = json.loads(stamp.read_text())

    def __repr__(self) -> str:
        return "Runtime(%r)" % self.version

    @property
    def label(self) -> str:
        return "TF %s provisioned in %s" % (self.version, RUNTIMES_DIR)

    @property
    def graph_def_version(self) -> Optional[int]:
        return self.info.get("graph_def_version")

    # -- paths -----------------------------------------------------------
    def chroot_path(self, host_path) -> str:
        """How ``host_path`` is seen by a process inside the root.

        Paths inside the root map to their in-root form; paths under a bound
        host directory (/tmp, the system temp dir, the repository, /work,
        RUNTIMES_DIR, $TF_TRANSPILE_EXTRA_BINDS) appear under ``/host``.
        """
        p = os.path.realpath(os.fspath(host_path))
        root = os.path.realpath(str(self.root))
        if p == root:
            return "/"
        if p.startswith(root + os.sep):
            return p[len(root):]
        for b in _bind_dirs():
            if p == b or p.startswith(b.rstrip(os.sep) + os.sep):
                return "/host" + p
        raise ValueError(
            "%s is not reachable inside the TF %s root; put it under one of %s "
            "(or add its directory to $TF_TRANSPILE_EXTRA_BINDS)"
            % (host_path, self.version, ", ".join(_bind_dirs())))

    # -- running ---------------------------------------------------------
    def command(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
                cwd: Optional[str] = None) -> List[str]:
        """The host command line that runs ``argv`` (in-root paths) in this release."""
        return _chroot_command(self.root, argv, cwd=cwd, env=self.environment(env))

    def environment(self, env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        e = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PYTHONPATH": self.site_dir,
            "PYTHONDONTWRITEBYTECODE": "1",   # no .pyc files in the clone
            "PYTHONIOENCODING": "utf-8",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        }
        if env:
            e.update({str(k): str(v) for k, v in env.items()})
        return e

    def run(self, argv: Sequence[str], timeout: Optional[float] = 900,
            env: Optional[Mapping[str, str]] = None, cwd=None,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run an arbitrary command (in-root paths) inside this release's root."""
        in_cwd = None
        if cwd is not None:
            in_cwd = self.chroot_path(cwd)
        return run_captured(self.command(argv, env=env, cwd=in_cwd),
                             timeout=timeout, input=input)

    def run_python(self, script, args: Iterable = (), timeout: Optional[float] = 900,
                   env: Optional[Mapping[str, str]] = None, cwd=None,
                   input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``<self.python> script args...`` with this release on PYTHONPATH.

        ``script`` is a host path (translated automatically; an in-root path
        such as "/tf/..." that does not exist on the host is passed as is).
        ``args`` are passed unchanged: translate host paths with
        :meth:`chroot_path`.  Returns a text-mode CompletedProcess with
        stdout/stderr captured; raises subprocess.TimeoutExpired on timeout
        (the whole process group is killed).
        """
        script = os.fspath(script)
        if script == "-c" or (not os.path.exists(script) and script.startswith("/")):
            in_script = script
        else:
            in_script = self.chroot_path(script)
        if cwd is None:               # keep the caller's cwd when it is visible inside
            try:
                cwd = os.getcwd()
                self.chroot_path(cwd)
            except (OSError, ValueError):
                cwd = None
        argv = [self.python, in_script] + [os.fspath(a) for a in args]
        return self.run(argv, timeout=timeout, env=env, cwd=cwd, input=input)

    def run_code(self, code: str, args: Iterable = (), **kw) -> subprocess.CompletedProcess:
        """Run Python source ``code`` (``<self.python> -c code args...``)."""
        return self.run_python("-c", [code] + [os.fspath(a) for a in args], **kw)


# --------------------------------------------------------------------------
# plumbing

def _bind_dirs() -> List[str]:
    """Host directories bind-mounted into the root under /host (deduplicated)."""
    cands = ["/tmp", tempfile.gettempdir(),
             str(pathlib.Path(__file__).resolve().parents[2]), os.getcwd(), "/work",
             str(RUNTIMES_DIR)]
    extra = os.environ.get("TF_TRANSPILE_EXTRA_BINDS", "")
    cands += [c for c in extra.split(os.pathsep) if c]
    real = []
    for c in cands:
        r = os.path.realpath(c)
        if os.path.isdir(r) and r != "/" and r not in real:
            real.append(r)
    real.sort(key=len)
    out: List[str] = []
    for r in real:
        if not any(r.startswith(o + os.sep) for o in out):
            out.append(r)
    return out


def _chroot_command(root: pathlib.Path, argv: Sequence[str], cwd: Optional[str] = None,
                    env: Optional[Mapping[str, str]] = None, network: bool = False) -> List[str]:
    root = os.path.realpath(str(root))
    q = shlex.quote
    steps = ["set -e", "mount --bind /proc %s" % q(root + "/proc")]
    for b in _bind_dirs():
        mp = root + "/host" + b
        os.makedirs(mp, exist_ok=True)
        steps.append("mount --bind %s %s" % (q(b), q(mp)))
    envargs = ["%s=%s" % (k, v) for k, v in (env or {}).items()]
    inner = ["chroot", root, "env", "-i"]
    if cwd:
        inner += ["--chdir=" + cwd]
    inner += envargs + list(argv)
    steps.append("exec " + " ".join(q(a) for a in inner))
    cmd = ["unshare", "--mount"]
    if not network:
        cmd.append("--net")
    return cmd + ["sh", "-c", "\n".join(steps)]


def run_captured(cmd: Sequence[str], timeout: Optional[float] = None, input: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run `cmd` in a session of its own, output captured; on timeout the whole group is killed and
    subprocess.TimeoutExpired carries what it printed."""
    proc = subprocess.Popen(list(cmd), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


@contextlib.contextmanager
def _locked():
    RUNTIMES_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(RUNTIMES_DIR / ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        t0 = time.monotonic()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            log.info("waiting for another process provisioning in %s", RUNTIMES_DIR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            log.info("lock acquired after %.1fs", time.monotonic() - t0)
        yield
    finally:
        os.close(fd)


class _Log:
    """Provisioning log: a file under RUNTIMES_DIR/logs plus the module logger."""

    def __init__(self, name: str):
        d = RUNTIMES_DIR / "logs"
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / (name + ".log")
        self.f = open(self.path, "w")

    def step(self, msg: str) -> None:
        log.info(msg)
        self.f.write("### %s %s\n" % (time.strftime("%H:%M:%S"), msg))
        self.f.flush()

    def run(self, cmd: Sequence[str], what: str, timeout: float = 3600,
            env: Optional[Mapping[str, str]] = None) -> str:
        self.step("%s: %s" % (what, " ".join(shlex.quote(c) for c in cmd)[:2000]))
        try:
            p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", timeout=timeout,
                               env=dict(os.environ, **(env or {})))
        except FileNotFoundError as e:
            raise RuntimeUnavailable("%s: %s" % (what, e))
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable("%s timed out after %ss (log: %s)" % (what, timeout, self.path))
        self.f.write(p.stdout)
        self.f.flush()
        if p.returncode != 0:
            tail = "\n".join(p.stdout.strip().splitlines()[-15:])
            raise RuntimeUnavailable("%s failed (exit %s, log: %s):\n%s"
                                     % (what, p.returncode, self.path, tail))
        return p.stdout

    def close(self) -> None:
        self.f.close()


def _check_host() -> None:
    if not sys.platform.startswith("linux"):
        raise RuntimeUnavailable("real TF runtimes need Linux (this is %s)" % sys.platform)
    if os.uname().machine not in ("x86_64", "amd64"):
        raise RuntimeUnavailable("real TF runtimes need x86_64 (this is %s)" % os.uname().machine)
    if os.geteuid() != 0:
        raise RuntimeUnavailable("real TF runtimes need root (chroot, mount namespaces)")
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool):
            raise RuntimeUnavailable("%s not found on PATH" % tool)


def _root(py: _Python = _PY27) -> pathlib.Path:
    return py.root.path


def _root_ready(py: _Python = _PY27) -> bool:
    return (_root(py) / ".tf-transpile-ready").is_file()


def _python_ready(py: _Python) -> bool:
    if not _root_ready(py):
        return False
    try:
        info = json.loads((_root(py) / py.stamp).read_text())
    except (OSError, ValueError):
        return False
    return info.get("recipe") == RECIPE and list(info.get("bootstrap", ())) == list(py.bootstrap)


def _release_stamp(version: str) -> pathlib.Path:
    return _root(_python_for(version)) / "tf" / version / ".tf-transpile-ready"


def _release_ready(version: str) -> bool:
    try:
        info = json.loads(_release_stamp(version).read_text())
        reqs = requirements(version)
    except (OSError, ValueError, RuntimeUnavailable):
        return False
    return (info.get("recipe") == RECIPE and info.get("tf_version") == version
            and info.get("requirements") == reqs)


def _runtime(version: str) -> Runtime:
    py = _python_for(version)
    return Runtime(version, _root(py), python=py.exe)


def ready_releases() -> List[str]:
    """Releases provisioned and ready in RUNTIMES_DIR (every root), ascending."""
    vs = set()
    for root in {py.root.dirname: py.root for py in _PYTHONS}.values():
        d = root.path / "tf"
        if not (root.path / ".tf-transpile-ready").is_file() or not d.is_dir():
            continue
        for p in d.iterdir():
            if (re.match(r"^\d+\.\d+\.\d+$", p.name) and _python_for(p.name).root is root
                    and _release_ready(p.name)):
                vs.add(p.name)
    return sorted(vs, key=_vtuple)


def _download(reqs: Sequence[str], lg: _Log, py: _Python = _PY27,
              sdists_only: Iterable[str] = _SDIST_ONLY) -> None:
    """Fetch the distributions for ``reqs`` into RUNTIMES_DIR (skips what is there)."""
    wheels, sdists = RUNTIMES_DIR / "wheels", RUNTIMES_DIR / "sdists"
    wheels.mkdir(parents=True, exist_ok=True)
    sdists.mkdir(parents=True, exist_ok=True)
    have_w, have_s = _dist_files(wheels), _dist_files(sdists)
    sdists_only = {_canon(n) for n in sdists_only}
    need_w, need_s = [], []
    for r in reqs:
        key = _split_req(r)
        if key[0] in sdists_only:
            if key not in have_s:
                need_s.append(r)
        elif key not in have_w or (py.py3 and not _wheel_fits(have_w[key], py)):
            need_w.append(r)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
           "--disable-pip-version-check"]
    if py.py3 and len(need_w) > 1:
        # A lock has one version per name: fetch it in one call (pip starts once),
        # falling back to one call per requirement so that a failure names its culprit.
        try:
            lg.run(pip + ["-d", str(wheels)] + list(py.wheel_args) + need_w,
                   "download %d wheels" % len(need_w))
            need_w = []
        except RuntimeUnavailable:
            pass
    # One call per requirement: several TF pins conflict, and a failure names its culprit.
    for r in need_w:
        lg.run(pip + ["-d", str(wheels)] + list(py.wheel_args) + [r],
               "download wheel %s" % r)
    for r in need_s:
        lg.run(pip + ["-d", str(sdists), "--no-binary=:all:", r], "download sdist %s" % r)


def _wheel_fits(path: pathlib.Path, py: _Python) -> bool:
    """Whether a cached wheel's python/abi tags suit ``py`` (the cache may hold one
    name and version built for cp27mu and for cp39 side by side)."""
    parts = path.name[:-4].split("-")
    if len(parts) < 5:
        return False
    pytags, abitags = set(parts[-3].split(".")), set(parts[-2].split("."))
    nodot = py.exe[len("python"):].replace(".", "")
    if "cp" + nodot in pytags and abitags & {"cp" + nodot, "abi3", "none"}:
        return True
    if "none" in abitags and pytags & {"py3", "py" + nodot}:
        return True
    return "abi3" in abitags and any(
        t.startswith("cp3") and t[3:].isdigit() and int(t[3:]) <= int(nodot[1:]) for t in pytags)


def _provision_root(lg: _Log, py: _Python = _PY27) -> None:
    if _root_ready(py):
        return
    if not shutil.which("debootstrap"):
        raise RuntimeUnavailable("debootstrap not found (apt-get install -y debootstrap)")
    root = py.root
    partial = RUNTIMES_DIR / (root.dirname + ".partial")
    for d in (partial, root.path):
        if d.exists():
            lg.step("removing unfinished %s" % d)
            _rmtree(d)
    lg.run(["debootstrap", "--variant=minbase", "--include=ca-certificates," + ",".join(py.debs),
            root.suite, str(partial), root.mirror], "debootstrap %s" % root.suite, timeout=1800)
    (partial / "tf").mkdir(exist_ok=True)
    (partial / ".tf-transpile-ready").write_text(json.dumps(
        {"suite": root.suite, "recipe": RECIPE, "created": time.time()}) + "\n")
    os.rename(str(partial), str(root.path))


def _provision_python(lg: _Log, py: _Python) -> None:
    """Make ``py`` usable in its root: the Debian packages, then pip/setuptools/wheel
    in py.piptools (kept off the TF runs' path)."""
    if _python_ready(py):
        return
    _provision_root(lg, py)
    root = _root(py)
    if not (root / "usr" / "bin" / py.exe).exists():
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        lg.run(_chroot_command(root, ["apt-get", "update", "-q"], env=env, network=True),
               "apt-get update in %s" % py.root.suite)
        lg.run(_chroot_command(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
                               + list(py.debs), env=env, network=True),
               "apt-get install %s" % " ".join(py.debs), timeout=1800)
    _download(py.bootstrap, lg, py)
    # pip cannot build sdists when it runs from its zipped wheel: install it unzipped.
    pipname, _, pipver = py.bootstrap[0].partition("==")
    pipwhl = _dist_files(RUNTIMES_DIR / "wheels")[(pipname, pipver)]
    c = Runtime("bootstrap", root).chroot_path
    target = root / py.piptools.lstrip("/")
    if target.exists():
        _rmtree(target)
    argv = [py.exe, c(pipwhl) + "/pip", "install", "-q", "--no-index",
            "--find-links", c(RUNTIMES_DIR / "wheels"), "--no-deps", "--no-compile",
            "--target", py.piptools] + list(py.bootstrap)
    lg.run(_chroot_command(root, argv, env={"PATH": "/usr/bin:/bin", "HOME": "/root"}),
           "bootstrap pip for %s in root" % py.exe)
    (root / py.stamp).write_text(json.dumps(
        {"python": py.exe, "recipe": RECIPE, "bootstrap": list(py.bootstrap),
         "created": time.time()}) + "\n")


def _rmtree(path: pathlib.Path) -> None:
    # Never follow into bind mounts: they only exist inside private namespaces.
    shutil.rmtree(str(path), ignore_errors=False)


def _pip_env(py: _Python) -> Dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/root", "PYTHONPATH": py.piptools,
            "TMPDIR": "/tmp", "LANG": "C.UTF-8"}


def _provision_release(version: str, lg: _Log) -> None:
    py = _python_for(version)
    reqs = requirements(version)
    sdists = ({_split_req(r)[0] for r, sd in _read_lock(version) if sd} if py.py3
              else _SDIST_ONLY)
    _download(reqs, lg, py, sdists)
    root = _root(py)
    target = root / "tf" / version
    if target.exists():
        lg.step("removing unfinished %s" % target)
        _rmtree(target)
    rt = Runtime(version, root, python=py.exe)
    c = rt.chroot_path
    argv = [py.exe, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
            "--disable-pip-version-check", "--no-warn-script-location",
            "--find-links", c(RUNTIMES_DIR / "wheels"), "--find-links", c(RUNTIMES_DIR / "sdists"),
            "--target", rt.site_dir] + reqs
    lg.run(_chroot_command(root, argv, env=_pip_env(py)),
           "pip install TF %s in root" % version, timeout=1800)
    if not py.py3:
        # --target skips protobuf's namespace .pth; make google a plain package.
        # (Python 3 imports google.* as an implicit namespace package.)
        g = target / "google"
        g.mkdir(exist_ok=True)
        (g / "__init__.py").touch()
    lg.step("smoke test TF %s" % version)
    p = rt.run_code(_SMOKE, timeout=600)
    lg.f.write(p.stdout + p.stderr)
    info = None
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                info = json.loads(line)
            break
    if p.returncode != 0 or not info:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-20:])
        raise RuntimeUnavailable("TF %s does not import/run in the root (log: %s):\n%s"
                                 % (version, lg.path, tail))
    if info["tf_version"] != version:
        raise RuntimeUnavailable("TF %s: smoke test reports version %s"
                                 % (version, info["tf_version"]))
    info.update({"recipe": RECIPE, "requirements": reqs, "created": time.time()})
    tmp = target / ".tf-transpile-ready.tmp"
    tmp.write_text(json.dumps(info, sort_keys=True) + "\n")
    os.rename(str(tmp), str(_release_stamp(version)))
    lg.step("TF %s ready: %s" % (version, info))


def _host_pip_cert() -> Optional[str]:
    p = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.cert"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p.stdout.strip() or None if p.returncode == 0 else None


def write_lock(version: str, lg: _Log) -> pathlib.Path:
    """Resolve tensorflow-cpu==version under lock_constraints() with pip inside the
    release's root (its real Python; network on) and write locks/<version>.txt."""
    py = _python_for(version)
    if not py.py3:
        raise RuntimeUnavailable("TF %s has hand-pinned requirements (no lock file)" % version)
    _provision_python(lg, py)
    root = _root(py)
    work = pathlib.Path(tempfile.mkdtemp(prefix="tf-lock-", dir="/tmp"))
    try:
        c = Runtime(version, root, python=py.exe).chroot_path
        report = work / "report.json"
        argv = [py.exe, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                "--disable-pip-version-check", "--prefer-binary", "--report", c(report),
                "--target", "/tmp/unused"]
        # Trust what the host's pip trusts (a proxy's CA, say): the root has Debian's bundle.
        cert = os.environ.get("PIP_CERT") or _host_pip_cert()
        if cert and os.path.isfile(cert):
            shutil.copy(cert, str(work / "ca.pem"))
            argv += ["--cert", c(work / "ca.pem")]
        argv += lock_constraints(version)
        lg.run(_chroot_command(root, argv, env=_pip_env(py), network=True),
               "resolve TF %s" % version, timeout=1800)
        items = json.loads(report.read_text())["install"]
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    lines = []
    for it in items:
        name, ver = it["metadata"]["name"], it["metadata"]["version"]
        url = it.get("download_info", {}).get("url", "")
        lines.append("%s==%s%s" % (_canon(name), ver,
                                   "" if url.endswith(".whl") else "  # sdist"))
    tf_first = sorted(lines, key=lambda l: (not l.startswith("tensorflow-cpu=="), l))
    LOCKS_DIR.mkdir(parents=True, exist_ok=True)
    out = _lock_path(version)
    out.write_text("# TF %s under %s: written by `python -m transpiler.runtimes.provision lock "
                   "%s`\n# (pip's resolution of %s); installed with --no-deps.\n"
                   % (version, py.exe, version, " ".join(lock_constraints(version)))
                   + "\n".join(tf_first) + "\n")
    return out


def ensure_runtime(version: str) -> Runtime:
    """The Runtime for ``version`` ("1.8" or "1.8.0"), provisioning it if needed.

    Raises RuntimeUnavailable with the reason when it cannot be provided.
    """
    v = normalize_version(version)
    _check_host()
    py = _python_for(v)
    if _python_ready(py) and _release_ready(v):          # fast path, no lock
        return _runtime(v)
    with _locked():
        if not (_python_ready(py) and _release_ready(v)):
            t0 = time.monotonic()
            lg = _Log(v)
            try:
                lg.step("provisioning TF %s (%s, %s root) in %s"
                        % (v, py.exe, py.root.suite, RUNTIMES_DIR))
                _provision_python(lg, py)
                if not _release_ready(v):      # a ready release is kept (it may be in use)
                    _provision_release(v, lg)
                lg.step("done in %.1fs" % (time.monotonic() - t0))
            except RuntimeUnavailable:
                raise
            except Exception as e:  # pragma: no cover - unexpected host trouble
                raise RuntimeUnavailable("provisioning TF %s failed: %s: %s (log: %s)"
                                         % (v, type(e).__name__, e, lg.path)) from e
            finally:
                lg.close()
    return _runtime(v)


def remove_runtime(version: str) -> bool:
    """Delete one provisioned release (the shared root and the download cache stay); False if absent."""
    v = normalize_version(version)
    target = _root(_python_for(v)) / "tf" / v
    with _locked():
        if not target.exists():
            return False
        _release_stamp(v).unlink(missing_ok=True)   # not ready from now on, even if the removal stops
        _rmtree(target)
    return True


# --------------------------------------------------------------------------
# CLI

def _main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision", help="provision releases ('all' = %s)" % " ".join(RELEASES))
    p.add_argument("versions", nargs="+")
    lk = sub.add_parser("lock", help="resolve and write locks/<version>.txt for Python 3 releases")
    lk.add_argument("versions", nargs="+")
    r = sub.add_parser("run", help="run a Python script inside a release")
    r.add_argument("version")
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.add_argument("--timeout", type=float, default=None)
    sub.add_parser("status", help="list ready releases")
    sub.add_parser("binds", help="host directories visible inside the root")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[tf_runtimes] %(message)s")

    if a.cmd == "provision":
        versions = list(RELEASES) if a.versions == ["all"] else a.versions
        failed = 0
        for v in versions:
            t0 = time.monotonic()
            try:
                rt = ensure_runtime(v)
                print("%s ready (%.1fs) graph_def_version=%s"
                      % (rt.version, time.monotonic() - t0, rt.graph_def_version))
            except RuntimeUnavailable as e:
                failed += 1
                print("%s FAILED: %s" % (v, e), file=sys.stderr)
        return 1 if failed else 0
    if a.cmd == "lock":
        versions = ([v for v in RELEASES if _python_for(v).py3] if a.versions == ["all"]
                    else [normalize_version(v) for v in a.versions])
        failed = 0
        for v in versions:
            lg = _Log("lock-" + v)
            try:
                _check_host()
                with _locked():
                    print("%s -> %s" % (v, write_lock(v, lg)))
            except RuntimeUnavailable as e:
                failed += 1
                print("%s FAILED: %s" % (v, e), file=sys.stderr)
            finally:
                lg.close()
        return 1 if failed else 0
    if a.cmd == "status":
        for py in _PYTHONS:
            print("RUNTIMES_DIR=%s %s root=%s %s=%s"
                  % (RUNTIMES_DIR, py.root.suite, "ready" if _root_ready(py) else "missing",
                     py.exe, "ready" if _python_ready(py) else "missing"))
        for v in ready_releases():
            print(v, json.dumps(_runtime(v).info, sort_keys=True))
        return 0
    if a.cmd == "binds":
        print("\n".join(_bind_dirs()))
        return 0
    # run
    try:
        rt = ensure_runtime(a.version)
    except RuntimeUnavailable as e:
        print("TF %s unavailable: %s" % (a.version, e), file=sys.stderr)
        return 2
    args = []
    for x in a.args:
        # Absolute host paths (existing or not) are translated; relative paths
        # work unchanged because the command runs in the same directory.
        opt, eq, val = x.partition("=") if x.startswith("--") else ("", "", x)
        if os.path.isabs(val) and os.path.exists(os.path.dirname(val) or "/"):
            with contextlib.suppress(ValueError):
                val = rt.chroot_path(val)
        args.append(opt + eq + val)
    proc = rt.run_python(a.script, args, timeout=a.timeout)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(_main())
