"""The README's two commands, as a new user runs them: `bash tools/setup.sh example` and
`bash tools/setup.sh test`, in a fresh copy of the project, with no virtual environment active and
a pip that refuses to install outside one (PIP_REQUIRE_VIRTUALENV=1, as a Debian 12 python3 with its
EXTERNALLY-MANAGED marker does). setup.sh must make its own venv and install there.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The interpreter a user would have: the base one, not the venv this suite may run in.
BASE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """The project's files as git tracks them (uncommitted edits included), nothing else: no .venv."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    root = tmp_path_factory.mktemp("fresh") / "tf-transpile"
    for name in filter(None, listed.decode().split("\0")):
        src = REPO / name
        if src.is_file() and not src.is_symlink():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    return root


def _setup(root: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    env.update(PYTHON=BASE_PYTHON, PIP_REQUIRE_VIRTUALENV="1", TF_TRANSPILE_VENV=str(root / ".venv"))
    return subprocess.run(["bash", "tools/setup.sh"] + list(args), cwd=str(root), env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_readme_example_command_makes_its_venv_and_ends_with_the_output(fresh_copy, tmp_path):
    out = tmp_path / "example"
    proc = _setup(fresh_copy, "example", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    venv = fresh_copy / ".venv"
    assert "setup: created the virtual environment %s" % venv in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "setup: the converted model is in %s; tf-transpile is %s" % (out, venv / "bin" / "tf-transpile")
    assert (out / "saved_model.pb").is_file()
    assert "wrote %s for TF 1.8" % out in proc.stdout
    if os.geteuid() == 0:   # it provisions real TF 1.8 (root) and shows the numbers match there
        assert "verify: PASS" in proc.stdout, proc.stdout[-2000:]


def test_readme_test_command_runs_pytest_in_that_venv(fresh_copy):
    proc = _setup(fresh_copy, "test", "tests/test_architecture.py", "-p", "no:cacheprovider")
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "setup: using %s" % (fresh_copy / ".venv" / "bin" / "python") in proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last, last
