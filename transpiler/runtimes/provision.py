#!/usr/bin/env python3
"""Real TensorFlow releases (1.x, 2.0, 2.1) for tests and data tools.

Old TensorFlow only ships Python 2.7 wheels that run on an ordinary Linux
x86_64 machine, so this module keeps one shared Debian bullseye root (built
with debootstrap, Python 2.7 inside) and installs each release into its own
directory ``/tf/<version>`` of that root.  Commands run as::

    unshare --mount --net sh -c 'mount --bind ...; exec chroot ROOT env -i ... python2.7 ...'

so the bind mounts live only as long as the process (nothing to clean up)
and a TF run has no network at all.

Everything lives under ``RUNTIMES_DIR`` (``$TF_TRANSPILE_RUNTIMES``, default
``/var/cache/tf-transpile`` for root, else ``~/.cache/tf-transpile``), outside the clone::

    RUNTIMES_DIR/
      .lock                 fcntl lock held while provisioning
      wheels/ sdists/       downloaded distributions (re-provisioning is offline)
      logs/<version>.log    output of the last provisioning
      rootfs/               the Debian root (ready when .tf-transpile-ready exists)
      rootfs/tf/<version>/  one release (ready when .tf-transpile-ready exists)

A stamp file is written last, after a smoke import succeeded, so a killed
provisioning is simply redone by the next caller.  Provisioning needs root,
debootstrap, unshare and access to PyPI and deb.debian.org; running needs
root and unshare.

Library use::

    from transpiler.runtimes.provision import ensure_runtime
    rt = ensure_runtime("1.8")
    proc = rt.run_python(script, ["--saved-model", rt.chroot_path(d), ...])
    # or, for models: transpiler/runtimes/runner.py run_plan(rt, plan, arrays)

Command line::

    python -m transpiler.runtimes.provision provision 1.8.0 1.15.0
    python -m transpiler.runtimes.provision provision all
    python -m transpiler.runtimes.provision run 1.15.0 script.py args...   # host paths in args are translated
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
RELEASES: Tuple[str, ...] = (
    "1.4.0", "1.5.0", "1.6.0", "1.7.0", "1.8.0", "1.9.0", "1.10.0", "1.11.0",
    "1.12.0", "1.13.1", "1.14.0", "1.15.0", "2.0.0", "2.1.0",
)

# Bump when the recipe changes in a way that invalidates existing installs.
RECIPE = 1

DEBIAN_SUITE = "bullseye"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

PIP_BOOTSTRAP = ("pip==20.3.4", "setuptools==44.1.1", "wheel==0.37.1")

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


def requirements(version: str) -> List[str]:
    """The pinned distributions installed (with --no-deps) for one release."""
    major, minor = _vtuple(version)[:2]
    mm = (major, minor)
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
    """One provisioned release inside the shared root."""

    python = "python2.7"

    def __init__(self, version: str, root: pathlib.Path):
        self.version = version
        self.root = pathlib.Path(root)
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
        """Run ``python2.7 script args...`` with this release on PYTHONPATH.

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
        """Run Python source ``code`` (``python2.7 -c code args...``)."""
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


def _root() -> pathlib.Path:
    return RUNTIMES_DIR / "rootfs"


def _root_ready() -> bool:
    return (_root() / ".tf-transpile-ready").is_file()


def _release_stamp(version: str) -> pathlib.Path:
    return _root() / "tf" / version / ".tf-transpile-ready"


def _release_ready(version: str) -> bool:
    try:
        info = json.loads(_release_stamp(version).read_text())
    except (OSError, ValueError):
        return False
    return info.get("recipe") == RECIPE and info.get("tf_version") == version


def ready_releases() -> List[str]:
    """Releases provisioned and ready in RUNTIMES_DIR, ascending."""
    d = _root() / "tf"
    if not _root_ready() or not d.is_dir():
        return []
    vs = [p.name for p in d.iterdir() if re.match(r"^\d+\.\d+\.\d+$", p.name)
          and _release_ready(p.name)]
    return sorted(vs, key=_vtuple)


def _download(reqs: Sequence[str], lg: _Log) -> None:
    """Fetch the distributions for ``reqs`` into RUNTIMES_DIR (skips what is there)."""
    wheels, sdists = RUNTIMES_DIR / "wheels", RUNTIMES_DIR / "sdists"
    wheels.mkdir(parents=True, exist_ok=True)
    sdists.mkdir(parents=True, exist_ok=True)
    have_w, have_s = _dist_files(wheels), _dist_files(sdists)
    need_w, need_s = [], []
    for r in reqs:
        key = _split_req(r)
        if key[0] in _SDIST_ONLY:
            if key not in have_s:
                need_s.append(r)
        elif key not in have_w:
            need_w.append(r)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
           "--disable-pip-version-check"]
    # One call per requirement: several TF pins conflict, and a failure names its culprit.
    for r in need_w:
        lg.run(pip + ["-d", str(wheels)] + list(_WHEEL_PLATFORM_ARGS) + [r],
               "download wheel %s" % r)
    for r in need_s:
        lg.run(pip + ["-d", str(sdists), "--no-binary=:all:", r], "download sdist %s" % r)


def _provision_root(lg: _Log) -> None:
    if _root_ready():
        return
    if not shutil.which("debootstrap"):
        raise RuntimeUnavailable("debootstrap not found (apt-get install -y debootstrap)")
    partial = RUNTIMES_DIR / "rootfs.partial"
    for d in (partial, _root()):
        if d.exists():
            lg.step("removing unfinished %s" % d)
            _rmtree(d)
    _download(PIP_BOOTSTRAP, lg)
    lg.run(["debootstrap", "--variant=minbase", "--include=python2.7,ca-certificates",
            DEBIAN_SUITE, str(partial), DEBIAN_MIRROR], "debootstrap", timeout=1800)
    (partial / "tf").mkdir(exist_ok=True)
    # pip/setuptools/wheel for Python 2.7 in /opt/piptools (kept off the TF runs' path):
    # pip cannot build sdists when it runs from its zipped wheel.
    pipwhl = _dist_files(RUNTIMES_DIR / "wheels")[("pip", "20.3.4")]
    root_rt = Runtime("bootstrap", partial)
    c = root_rt.chroot_path
    argv = ["python2.7", c(pipwhl) + "/pip", "install", "-q", "--no-index",
            "--find-links", c(RUNTIMES_DIR / "wheels"), "--no-deps", "--no-compile",
            "--target", "/opt/piptools"] + list(PIP_BOOTSTRAP)
    lg.run(_chroot_command(partial, argv, env={"PATH": "/usr/bin:/bin", "HOME": "/root"}),
           "bootstrap pip in root")
    (partial / ".tf-transpile-ready").write_text(json.dumps(
        {"suite": DEBIAN_SUITE, "recipe": RECIPE, "created": time.time()}) + "\n")
    os.rename(str(partial), str(_root()))


def _rmtree(path: pathlib.Path) -> None:
    # Never follow into bind mounts: they only exist inside private namespaces.
    shutil.rmtree(str(path), ignore_errors=False)


def _provision_release(version: str, lg: _Log) -> None:
    reqs = requirements(version)
    _download(reqs, lg)
    root = _root()
    target = root / "tf" / version
    if target.exists():
        lg.step("removing unfinished %s" % target)
        _rmtree(target)
    rt = Runtime(version, root)
    c = rt.chroot_path
    argv = ["python2.7", "-m", "pip", "install", "-q", "--no-index", "--no-deps",
            "--disable-pip-version-check", "--no-warn-script-location",
            "--find-links", c(RUNTIMES_DIR / "wheels"), "--find-links", c(RUNTIMES_DIR / "sdists"),
            "--target", rt.site_dir] + reqs
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "PYTHONPATH": "/opt/piptools",
           "TMPDIR": "/tmp"}
    lg.run(_chroot_command(root, argv, env=env), "pip install TF %s in root" % version,
           timeout=1800)
    # --target skips protobuf's namespace .pth; make google a plain package.
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


def ensure_runtime(version: str) -> Runtime:
    """The Runtime for ``version`` ("1.8" or "1.8.0"), provisioning it if needed.

    Raises RuntimeUnavailable with the reason when it cannot be provided.
    """
    v = normalize_version(version)
    _check_host()
    if _root_ready() and _release_ready(v):          # fast path, no lock
        return Runtime(v, _root())
    with _locked():
        if not (_root_ready() and _release_ready(v)):
            t0 = time.monotonic()
            lg = _Log(v)
            try:
                lg.step("provisioning TF %s in %s" % (v, RUNTIMES_DIR))
                _provision_root(lg)
                _provision_release(v, lg)
                lg.step("done in %.1fs" % (time.monotonic() - t0))
            except RuntimeUnavailable:
                raise
            except Exception as e:  # pragma: no cover - unexpected host trouble
                raise RuntimeUnavailable("provisioning TF %s failed: %s: %s (log: %s)"
                                         % (v, type(e).__name__, e, lg.path)) from e
            finally:
                lg.close()
    return Runtime(v, _root())


def remove_runtime(version: str) -> bool:
    """Delete one provisioned release (the shared root and the download cache stay); False if absent."""
    v = normalize_version(version)
    target = _root() / "tf" / v
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
    if a.cmd == "status":
        print("RUNTIMES_DIR=%s root=%s" % (RUNTIMES_DIR, "ready" if _root_ready() else "missing"))
        for v in ready_releases():
            print(v, json.dumps(Runtime(v, _root()).info, sort_keys=True))
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
