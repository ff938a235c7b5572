"""Shared fixtures: real TF runtimes, test models, the CLI runner."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import model_zoo

from model_zoo import *  # noqa: F401,F403  (fixtures)
from runtime_fixtures import *  # noqa: F401,F403  (fixtures)
from upgrade_zoo import *  # noqa: F401,F403  (fixtures; installs rule_examples.reference_runner)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(*args, cwd=None):
    """Run the installed `tf-transpile` as a user would; returns CompletedProcess (text)."""
    cmd = [sys.executable, "-m", "transpiler"] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(name="corpus_case")
def corpus_case_fixture():
    """corpus_case("name[/file]") -> Path of a third-party model copied into tests/data."""
    return lambda name: Path(model_zoo.corpus_case(name))


@pytest.fixture
def run_case(run_in_release, run_graph_def_in_release):
    """run_case(release or "host", model_path, case) -> {output key: array}, fed the case's inputs."""
    from host_runner import run_on_host

    def run(release, path, case):
        if release == "host":
            return run_on_host(str(path), case, case.inputs)
        if case.kind == "graph_def":
            feeds = {case.input_names[k]: v for k, v in case.inputs.items()}
            fetched = run_graph_def_in_release(release, str(path), feeds, list(case.output_names.values()))
            return {k: fetched[name] for k, name in case.output_names.items()}
        return run_in_release(release, str(path), case.inputs, case.signature, tuple(case.tags))

    return run


def assert_outputs_match(got, case, exact=False, rtol=1e-5, atol=1e-5):
    assert sorted(got) == sorted(case.outputs), (sorted(got), sorted(case.outputs))
    for key, want in case.outputs.items():
        have = np.asarray(got[key])
        assert have.shape == want.shape, key
        if exact or want.dtype.kind not in "fc":
            np.testing.assert_array_equal(have, want, err_msg=key)
        else:
            np.testing.assert_allclose(have, want, rtol=rtol, atol=atol, err_msg=key)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden/ from the current output instead of comparing")
    parser.addoption("--corpus-matrix", "--full-matrix", action="store_true", dest="full_matrix",
                     help="also run the full matrices whose representative subset CI runs (tests marked "
                          "corpus_matrix or full_matrix: every corpus model x release, every rule example; "
                          "about an hour more); a -m expression selects them too")


def pytest_collection_modifyitems(config, items):
    # The full matrices are long: without --full-matrix or a -m expression their
    # tests are deselected (pytest reports them as "deselected", never skipped).
    if config.getoption("full_matrix") or config.getoption("markexpr"):
        return
    keep, drop = [], []
    for item in items:
        full = item.get_closest_marker("corpus_matrix") or item.get_closest_marker("full_matrix")
        (drop if full else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
