"""Fixtures for the upgrade tests (conftest.py does ``from upgrade_zoo import *``).

- ``tf1_upgrade_cases`` (session): a factory, ``tf1_upgrade_cases("1.4.0") ->
  {name: Case}``: the models of producers/tf1_upgrade_models.py built inside
  that real release (once per run and release). A case of kind "meta_graph"
  has its checkpoint prefix in ``upgrade_checkpoint(case)``.
- ``tf1_graph_runner`` (session): ``run(release, graph_def, feeds, fetches)``
  runs a GraphDef in a real TF 1.x release with tf.contrib imported.

Importing this module also gives ``transpiler.engine.examples`` its
``reference_runner``, so rule examples whose original op only runs in an old
release (``reference: "1.4"``: tf.contrib and deprecated ops) run there.
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import model_zoo

__all__ = ["TF1_UPGRADE_VERSIONS", "UPGRADE_PRODUCER", "tf1_upgrade_cases", "tf1_graph_runner",
           "upgrade_checkpoint", "run_graph_in_release"]

UPGRADE_PRODUCER = os.path.join(model_zoo.PRODUCERS_DIR, "tf1_upgrade_models.py")

# The releases tf1_upgrade_models.py is written for.
TF1_UPGRADE_VERSIONS = ("1.4.0", "1.15.0")


def upgrade_checkpoint(case):
    """Checkpoint prefix of a "meta_graph" case: tf.train.Saver writes X.meta beside checkpoint X."""
    return case.path[:-len(".meta")] if case.kind == "meta_graph" else None


@pytest.fixture(scope="session")
def tf1_upgrade_cases(tmp_path_factory):
    """Factory: tf1_upgrade_cases(version) -> {name: Case} built in that real release."""
    built, failed = {}, {}

    def get(version):
        if version in built:
            return built[version]
        if version in failed:
            pytest.fail(failed[version], pytrace=False)
        rt = _runtime(version)
        outdir = tmp_path_factory.mktemp("tf1_upgrade_models_" + version)
        try:
            proc = rt.run_python(UPGRADE_PRODUCER, args=[rt.chroot_path(str(outdir))], timeout=900)
        except subprocess.TimeoutExpired as e:
            failed[version] = "tf1_upgrade_models.py timed out in TF %s: %s" % (version, e)
            pytest.fail(failed[version], pytrace=False)
        if proc.returncode != 0:
            failed[version] = ("tf1_upgrade_models.py failed in TF %s (exit %s)\n--- stdout\n%s\n--- stderr\n%s"
                               % (version, proc.returncode, model_zoo._tail(proc.stdout),
                                  model_zoo._tail(proc.stderr)))
            pytest.fail(failed[version], pytrace=False)
        cases = model_zoo.load_cases(outdir)
        if not cases:
            failed[version] = "tf1_upgrade_models.py in TF %s wrote no cases" % version
            pytest.fail(failed[version], pytrace=False)
        built[version] = cases
        return cases

    return get


def _runtime(version):
    """The provisioned release, or skip (fail under CI=true) as the other fixtures do."""
    from runtime_fixtures import _get_release

    return _get_release(version)


# ---------------------------------------------------------------------------
# running a GraphDef in a real release, contrib ops included

_RUN_GRAPH = r"""
import sys
import numpy as np
import tensorflow as tf
try:
    import tensorflow.contrib as contrib
    for name in dir(contrib):  # lazily loaded submodules register their ops when touched
        try:
            getattr(contrib, name)
        except Exception:
            pass
except ImportError:
    pass
graph_path, in_path, out_path = sys.argv[1:4]
feeds, fetches = sys.argv[4].split(","), sys.argv[5].split(",")
graph_def = tf.GraphDef()
with open(graph_path, "rb") as f:
    graph_def.ParseFromString(f.read())
graph_def.versions.producer = tf.GRAPH_DEF_VERSION
arrays = np.load(in_path)
with tf.Graph().as_default() as g:
    tf.import_graph_def(graph_def, name="")
    with tf.Session(graph=g) as sess:
        feed_dict = dict((name, arrays["feed_%d" % i]) for i, name in enumerate(feeds) if name)
        values = sess.run(fetches, feed_dict)
values = [v.astype("S") if getattr(v, "dtype", None) == object else v for v in values]  # no pickles
np.savez(out_path, **dict(("fetch_%d" % i, v) for i, v in enumerate(values)))
"""


def run_graph_in_release(release, graph_def, feeds, fetches):
    """Run `graph_def` (a GraphDef proto) in real TF `release`, producer set to the
    release's own GraphDef version; returns the fetched arrays in order."""
    rt = _runtime(release)
    work = tempfile.mkdtemp(prefix="tf-release-graph-", dir="/tmp")
    try:
        graph_path, in_path, out_path = (os.path.join(work, n) for n in ("graph.pb", "in.npz", "out.npz"))
        with open(graph_path, "wb") as f:
            f.write(graph_def.SerializeToString())
        names = list(feeds)
        from runtime_fixtures import as_feedable  # strings as numpy 'S' arrays: no pickle in old numpy

        np.savez(in_path, **{"feed_%d" % i: as_feedable(feeds[n]) for i, n in enumerate(names)})
        proc = rt.run_code(_RUN_GRAPH, [rt.chroot_path(graph_path), rt.chroot_path(in_path),
                                        rt.chroot_path(out_path), ",".join(names), ",".join(fetches)])
        if proc.returncode != 0:
            raise RuntimeError("graph failed in TF %s:\n%s" % (release, model_zoo._tail(proc.stderr, 20)))
        with np.load(out_path) as out:  # strings come back as TF returns them: object arrays of bytes
            return [out[k].astype(object) if out[k].dtype.kind == "S" else out[k]
                    for k in ("fetch_%d" % i for i in range(len(fetches)))]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def tf1_graph_runner():
    return run_graph_in_release


def _install_reference_runner():
    from transpiler.engine import examples as rule_examples

    rule_examples.reference_runner = run_graph_in_release


_install_reference_runner()
