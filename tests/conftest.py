"""Shared fixtures: real TF runtimes, test models, the CLI runner."""

import os
import subprocess
import sys

import pytest

from model_zoo import *  # noqa: F401,F403  (fixtures)
from runtime_fixtures import *  # noqa: F401,F403  (fixtures)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(*args, cwd=None):
    """Run the installed `tf-transpile` as a user would; returns CompletedProcess (text)."""
    cmd = [sys.executable, "-m", "transpiler"] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def cli():
    return run_cli
