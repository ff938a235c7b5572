"""Every TF 2.x minor release as a target: the opset data has them (dumped from
the real runtimes), `check` names the release that really introduced an op,
and a `--to 2.9` output is what real TF 2.9 loads."""

import json
import shutil
from pathlib import Path

import pytest

from host_runner import build_with_host_tf
from transpiler.knowledge.releases import catalog, version_key
from transpiler.runtimes import provision


#: 2.2-2.4 ship wheels for Python <= 3.8 only; the buster root that has one
#: needs a Debian archive mirror (transpiler/runtimes/provision.py).  Until it
#: is reachable they are not in the data; the test below notices when they are.
NOT_DUMPED = {"2.2", "2.3", "2.4"}

#: Facts read from the real runtimes (tools/build_opsets.py's dumps).
FIRST_DISABLE_COPY_ON_READ = "2.10.1"
FIRST_VAR_HANDLE_DEBUG_NAME = "2.15.1"

_MODULE = r'''
import sys, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        super().__init__()
        self.v = tf.Variable([1.0, 2.0], name="v")
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
    def f(self, x):
        return {"y": x * self.v + 1.0}
m = M()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.f})
'''


@pytest.fixture(scope="module")
def host_saved_model(tmp_path_factory):
    """A tf.Module with a tf.Variable and a signature, saved by the host's TF (2.21)."""
    out = tmp_path_factory.mktemp("tf2x") / "module"
    build_with_host_tf(_MODULE, out)
    return out


def _minors(cat):
    return {".".join(r.split(".")[:2]) for r in cat.releases}


def test_catalog_lists_every_2x_minor():
    cat = catalog()
    have = _minors(cat)
    newest = max(version_key(r) for r in cat.releases)
    assert newest >= (2, 21)
    want = {"2.%d" % m for m in range(0, newest[1] + 1)} - NOT_DUMPED
    assert want <= have, sorted(want - have, key=version_key)
    assert {"1.%d" % m for m in range(4, 16)} <= have
    # when the buster root works and 2.2-2.4 are dumped, drop them from NOT_DUMPED
    assert not (NOT_DUMPED & have), NOT_DUMPED & have


def test_every_2x_release_is_the_provisioned_patch_release():
    cat = catalog()
    for release in cat.releases:
        if (2, 2) <= version_key(release) < (2, 21):
            assert release in provision.RELEASES, release
            assert cat.info[release]["graph_def_version"] > cat.info["2.1.0"]["graph_def_version"]


def test_each_release_has_its_root_python_and_pins():
    for release in provision.RELEASES:
        py = provision._python_for(release)
        minor = ".".join(release.split(".")[:2])
        if version_key(release)[:2] <= (2, 1):
            assert py.exe == "python2.7" and py.root.suite == "bullseye"
        elif minor in NOT_DUMPED:
            assert py.exe == "python3.7" and py.root.suite == "buster"
        else:
            assert py.exe == "python3.9" and py.root.suite == "bullseye"
            reqs = provision.requirements(release)          # the committed lock
            assert reqs[0] == "tensorflow-cpu==" + release
            assert len({r.split("==")[0] for r in reqs}) == len(reqs)
            numpy = next(r for r in reqs if r.startswith("numpy=="))
            if version_key(release) < (2, 18):
                assert version_key(numpy.split("==")[1])[0] < 2, (release, numpy)
        assert provision.Runtime(release, py.root.path).python == py.exe


def test_graph_def_versions_ascend():
    cat = catalog()
    gdv = [cat.info[r]["graph_def_version"] for r in cat.releases if version_key(r) >= (1, 15)]
    assert gdv[1:] and all(a < b for a, b in zip(gdv[1:], gdv[2:])), gdv   # 1.15's 134 > 2.0's 119


def test_first_releases_are_the_real_ones():
    cat = catalog()
    assert cat.first_release("DisableCopyOnRead") == FIRST_DISABLE_COPY_ON_READ
    assert cat.first_release("VarHandleOp", attr="debug_name") == FIRST_VAR_HANDLE_DEBUG_NAME
    assert not cat.opset("2.9").has_op("DisableCopyOnRead")
    assert cat.opset(FIRST_DISABLE_COPY_ON_READ).has_op("DisableCopyOnRead")


def test_short_names_resolve():
    cat = catalog()
    assert cat.resolve("2.9") == "2.9.3"
    assert cat.resolve("2.20") == "2.20.0"
    assert cat.resolve("2.21") == "2.21.0"


def test_releases_command_lists_2x(cli):
    done = cli("releases")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    for short in ("1.4", "1.15", "2.0", "2.1", "2.5.3", "2.9.3", "2.20", "2.21"):
        assert short in names, (short, names)


def test_check_against_2_9_names_the_real_first_release(cli, host_saved_model):
    done = cli("check", host_saved_model, "--to", "2.9")
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(l for l in done.stdout.splitlines() if l.strip().startswith("DisableCopyOnRead x"))
    assert line.strip() == "DisableCopyOnRead x1: op not in TF 2.9.3 (first in TF %s)" % (
        FIRST_DISABLE_COPY_ON_READ), done.stdout
    line = next(l for l in done.stdout.splitlines() if l.strip().startswith("VarHandleOp x"))
    assert "(first in TF %s)" % FIRST_VAR_HANDLE_DEBUG_NAME in line, done.stdout


def test_check_names_a_gap_in_the_data(cli, host_saved_model):
    """Before 2.5 the data has 2.1 only: an op first known in 2.10.1 is then plainly "first
    in TF 2.10.1" (2.5-2.9 are known not to have it), but nothing may claim a first release
    that follows the unknown 2.2-2.4 without saying so."""
    done = cli("check", host_saved_model, "--to", "2.1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "(first in TF %s)" % FIRST_DISABLE_COPY_ON_READ in done.stdout, done.stdout
    cat = catalog()
    assert cat.missing_before("2.5.3") == ["2.2", "2.3", "2.4"]
    assert cat.missing_before(FIRST_DISABLE_COPY_ON_READ) == []
    assert cat.missing_before("2.0.0") == [] and cat.missing_before("1.4.0") == []


@pytest.mark.real_runtime("2.9")
def test_real_2_9_refuses_the_host_model_and_loads_the_conversion(tf_release, cli, host_saved_model,
                                                                   tmp_path):
    """Through the product's own verify (tf.saved_model.load in the real 2.9.3, the signature called)."""
    rt = tf_release("2.9")
    assert rt.python == "python3.9"
    direct = cli("verify", host_saved_model, host_saved_model, "--release", "2.9", "--format", "json")
    assert direct.returncode == 1, direct.stdout + direct.stderr
    (sig,) = json.loads(direct.stdout)["signatures"]
    assert "DisableCopyOnRead" in sig["error"], sig

    out = tmp_path / "out29"
    done = cli(host_saved_model, out, "--to", "2.9", "--verify", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)["verify"]
    assert report["ok"] and report["target_tf"] == "2.9.3", report["summary"]
    assert [o["key"] for o in report["signatures"][0]["outputs"]] == ["y"]


def test_validate_reports_the_unknown_minors_before_a_first_release():
    from transpiler.io.protos import graph_pb2
    from transpiler.ir.graph import GraphDefIR
    from transpiler.passes.validate import validate

    cat = catalog()
    # an op the data first has in 2.5.3 (after the unknown 2.2-2.4), on CPU everywhere since
    op = "BesselI0"
    assert cat.first_release(op) == "2.5.3" and cat.missing_before("2.5.3") == ["2.2", "2.3", "2.4"]
    gd = graph_pb2.GraphDef()
    gd.versions.producer = 27
    x = gd.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    y = gd.node.add(name="y", op=op, input=["x"])
    y.attr["T"].type = 1
    problems = [p for p in validate(GraphDefIR.lift(gd), cat.opset("2.1")) if p.node == "y"]
    assert [p.reason for p in problems] == [
        "op not in TF 2.1 (first in TF 2.5.3 of the known releases; TF 2.2-2.4, not in the opset data, "
        "may have it)"]


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "half_plus_two_tf214"


def _structured_kinds(saved_model_dir):
    from transpiler.io.protos import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((saved_model_dir / "saved_model.pb").read_bytes())
    return str(sm.meta_graphs[0].object_graph_def).count("tensor_value {")


def test_object_graph_values_are_kept_where_the_target_reads_them(cli, tmp_path):
    """TF 2.14's schema has StructuredValue.tensor_value: --to 2.14 leaves the function default alone."""
    assert _structured_kinds(EXAMPLE) == 1
    done = cli(EXAMPLE, tmp_path / "out", "--to", "2.14")
    assert done.returncode == 0, done.stderr
    assert "object-graph value" not in done.stdout
    assert _structured_kinds(tmp_path / "out") == 1


@pytest.mark.real_runtime("2.9")
def test_a_tensor_default_that_2_9_cannot_read_is_replaced_and_verified(tf_release, cli, tmp_path):
    """TF 2.9's tf.saved_model.load fails on the TF 2.14 example as converted without the pass
    (NotEncodableError on StructuredValue.tensor_value); with it, real 2.9.3 computes the same numbers."""
    tf_release("2.9")
    out = tmp_path / "out"
    done = cli(EXAMPLE, out, "--to", "2.9", "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "StructuredValue.tensor_value" in done.stdout
    assert _structured_kinds(out) == 0
    assert done.stdout.strip().splitlines()[-1].startswith("verify: PASS")


#: The TF 2.21-built test models (tests/producers/tf2_models.py) x 2.x targets, through --verify.
TF2_MODELS = ["compat_v1_linear_relu6", "compat_v1_cnn", "compat_v1_einsum", "module_saved", "module_control_flow",
              "keras_export", "module_two_signatures", "keras_lstm", "keras_gru", "keras_transformer",
              "module_nested_control_flow"]
TF2_TARGETS = ["2.5", "2.9", "2.12", "2.15", "2.20"]
#: In CI: every model once, on 2.9 or 2.12 (the rest: --full-matrix).
#: CI time: three cells (a Keras export, control flow, a compat.v1 graph); the rest under --full-matrix.
TF2_CI = {("keras_export", "2.9"), ("module_control_flow", "2.9"), ("compat_v1_cnn", "2.12")}


def _matrix(names, releases, in_ci, mark):
    """pytest params name x release, each needing its real runtime; those not `in_ci` marked `mark`."""
    for name in names:
        for release in releases:
            marks = [pytest.mark.real_runtime(release)]
            if (name, release) not in in_ci:
                marks.append(mark)
            yield pytest.param(name, release, marks=marks, id="%s@%s" % (name, release))


@pytest.mark.parametrize("name,release", list(_matrix(TF2_MODELS, TF2_TARGETS, TF2_CI, pytest.mark.full_matrix)))
def test_tf2_model_converts_and_verifies_in_real_2x(name, release, tf2_cases, tf_release, cli, tmp_path):
    tf_release(release)
    done = cli(tf2_cases[name].path, tmp_path / "out", "--to", release, "--verify", "--format", "json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)["verify"]
    assert report["ok"] and report["target_tf"].startswith(release + "."), report["summary"]


def test_keras_metadata_is_kept_with_the_object_graph(cli, tmp_path):
    """tf.keras.models.load_model revives a Keras SavedModel from keras_metadata.pb: a --to 2.x output
    (object graph kept) has it byte for byte; a --to 1.x output (no object graph) has nothing it describes."""
    src = tmp_path / "keras_like"
    shutil.copytree(EXAMPLE, src)
    (src / "keras_metadata.pb").write_bytes(b"\x0a\x04keep")
    done = cli(src, tmp_path / "out29", "--to", "2.9")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out29" / "keras_metadata.pb").read_bytes() == b"\x0a\x04keep"
    done = cli(src, tmp_path / "out18", "--to", "1.8")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "out18" / "keras_metadata.pb").exists()


# ---------------------------------------------------------------------------
# TF 2 targets: trainable variables, and Keras SavedModels loaded the Keras way

PRODUCERS = Path(__file__).resolve().parent / "producers"


@pytest.fixture(scope="module")
def keras2_model(tf_release, tmp_path_factory):
    """A tf.keras 2 SavedModel (keras_metadata.pb), written by model.save in real TF 2.15."""
    rt = tf_release("2.15")
    outdir = tmp_path_factory.mktemp("keras2")
    proc = rt.run_python(PRODUCERS / "tf_keras2_models.py", [rt.chroot_path(outdir)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (outdir / "keras2_mlp" / "keras_metadata.pb").is_file()
    return outdir / "keras2_mlp"


def _verified(cli, src, out, release, *extra):
    done = cli(src, out, "--to", release, "--verify", "--format", "json", *extra)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)["verify"]


@pytest.mark.real_runtime("2.9")
@pytest.mark.real_runtime("2.15")
def test_keras2_model_loads_with_load_model_in_real_2_9(keras2_model, cli, tmp_path):
    """TF 2.15's tf.keras model, --to 2.9: real 2.9's tf.keras.models.load_model revives it and the model
    call computes IN's numbers; its 6 trainable variables (not BatchNormalization's moving statistics)
    equal IN's."""
    code, report = _verified(cli, keras2_model, tmp_path / "out", "2.9")
    assert code == 0 and report["ok"], report["summary"]
    (keras,) = report["keras"]
    assert keras["ok"] and keras["via"] == "tf.keras.models.load_model, model call", keras
    assert [o["key"] for o in keras["outputs"]] == ["probs"]
    (variables,) = report["variables"]
    assert variables["ok"] and variables["count"] == variables["reference_count"] == 6, variables
    assert "1/1 run(s) the Keras way ok" in report["summary"]


@pytest.mark.real_runtime("2.9")
@pytest.mark.real_runtime("2.15")
def test_keras2_model_without_its_metadata_fails_the_keras_way_in_real_2_9(keras2_model, cli, tmp_path):
    """OUT without keras_metadata.pb (what the writer wrote before it kept it): tf.saved_model.load and
    the signature still work in 2.9, but tf.keras.models.load_model does not, and IN loads the Keras way
    in the reference: FAIL, naming the Keras load."""
    out = tmp_path / "out"
    assert _verified(cli, keras2_model, out, "2.9")[0] == 0
    (out / "keras_metadata.pb").unlink()
    done = cli("verify", keras2_model, out, "--release", "2.9", "--format", "json")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert all(s["ok"] for s in report["signatures"]) and report["variables"][0]["ok"]
    (keras,) = report["keras"]
    assert not keras["ok"] and keras["via"] == "tf.keras.models.load_model", keras
    assert "keras-load failed" in keras["error"] and "Keras metadata" in keras["error"], keras["error"]
    assert "failing: [serve] serving_default via tf.keras.models.load_model" in report["summary"]


@pytest.mark.full_matrix    # CI time: the other Keras-way tests cover the path in CI
@pytest.mark.real_runtime("2.20")
@pytest.mark.real_runtime("2.15")
def test_keras2_model_loads_as_a_tfsm_layer_in_real_2_20(keras2_model, cli, tmp_path):
    """Keras 3 (TF >= 2.16) loads a SavedModel with keras.layers.TFSMLayer(OUT, call_endpoint=KEY)."""
    code, report = _verified(cli, keras2_model, tmp_path / "out", "2.20")
    assert code == 0 and report["ok"], report["summary"]
    (keras,) = report["keras"]
    assert keras["ok"] and keras["via"] == "keras.layers.TFSMLayer", keras
    assert report["variables"][0]["count"] == 6


@pytest.mark.full_matrix    # CI time: the other Keras-way tests cover the path in CI
@pytest.mark.real_runtime("2.9")
def test_keras3_export_has_no_keras_way_in_2_9(tf2_cases, tf_release, cli, tmp_path):
    """A Keras 3 model.export() has no Keras metadata: with --keras, 2.9 (tf.keras 2) has no Keras way
    to load it, which a note says; no Keras check runs and verify passes on the signatures."""
    tf_release("2.9")
    code, report = _verified(cli, tf2_cases["keras_export"].path, tmp_path / "out", "2.9", "--keras")
    assert code == 0 and report["ok"], report["summary"]
    assert report["keras"] == []
    assert any("no Keras metadata" in n and "skipped" in n for n in report["notes"]), report["notes"]


@pytest.mark.real_runtime("2.20")
def test_keras3_export_with_keras_runs_a_tfsm_layer_in_real_2_20(tf2_cases, tf_release, cli, tmp_path):
    tf_release("2.20")
    code, report = _verified(cli, tf2_cases["keras_export"].path, tmp_path / "out", "2.20", "--keras")
    assert code == 0 and report["ok"], report["summary"]
    # "serve" is the export's tf.function endpoint (it returns a tensor), "serving_default" its signature
    assert [(k["key"], k["ok"], k["via"]) for k in report["keras"]] == [
        ("serve", True, "keras.layers.TFSMLayer"), ("serving_default", True, "keras.layers.TFSMLayer")], report
    assert report["variables"][0]["count"] == 4 and not report["notes"], report
    # without --keras (no Keras metadata) only the signatures and the variables are checked
    code, report = _verified(cli, tf2_cases["keras_export"].path, tmp_path / "out2", "2.20")
    assert code == 0 and report["keras"] == [] and report["variables"][0]["ok"], report


@pytest.mark.real_runtime("2.12")
def test_trainable_variables_match_then_a_changed_one_fails_in_real_2_12(tf2_cases, tf_release, cli, tmp_path):
    """module_saved --to 2.12 keeps its variables (by object path, dtype, shape and value); OUT with one
    variable's value scaled by 1.001 in its checkpoint fails with a line naming that variable."""
    tf_release("2.12")
    out = tmp_path / "out"
    code, report = _verified(cli, tf2_cases["module_saved"].path, out, "2.12")
    assert code == 0 and report["ok"], report["summary"]
    (variables,) = report["variables"]
    assert variables["ok"] and variables["count"] == variables["reference_count"] >= 2, variables
    import tensorflow as tf

    from test_verify import _scale_one_variable

    prefix = out / "variables" / "variables"
    key = next(n for n in sorted(tf.train.load_checkpoint(str(prefix)).get_variable_to_dtype_map())
               if n.endswith("VARIABLE_VALUE"))
    _scale_one_variable(prefix, 1.001, key)
    done = cli("verify", tf2_cases["module_saved"].path, out, "--release", "2.12")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    path = key.split("/.ATTRIBUTES")[0].replace("/", ".")
    line = next(l for l in done.stdout.splitlines() if l.strip().startswith("FAIL variable %s " % path))
    assert "values differ (max |diff|" in line, done.stdout
    assert "trainable variables differ: variable %s" % path in done.stdout.splitlines()[-1]


# ---------------------------------------------------------------------------
# the corpus's TF 2.x SavedModels, --to 2.9 and 2.12, verified in the real release

def _corpus_tf2_saved_models():
    """Corpus models the manifest lists as TF 2.x SavedModels: a meta graph with an object graph."""
    manifest = json.loads((Path(__file__).resolve().parent / "data" / "manifest.json").read_text())
    return sorted(m["path"] for m in manifest["models"]
                  if m["format"] == "saved_model" and any(mg["has_object_graph"] for mg in m["meta_graphs"]))


CORPUS_TF2 = _corpus_tf2_saved_models()
CORPUS_TF2_TARGETS = ["2.9", "2.12"]
#: In CI; the rest with --corpus-matrix.
CORPUS_TF2_CI = {("tfjs__module_with_multiple_signatures", "2.12")}


def test_the_corpus_has_tf2_saved_models():
    assert CORPUS_TF2 == ["serving__saved_model_half_plus_two_tf2_cpu", "tensorflow__sm_x_plus_y_v2_debuginfo",
                          "tfjs__module_with_multiple_signatures", "tfx__keras_serving"]


@pytest.mark.parametrize("name,release", list(_matrix(CORPUS_TF2, CORPUS_TF2_TARGETS, CORPUS_TF2_CI,
                                                     pytest.mark.corpus_matrix)))
def test_corpus_tf2_saved_model_converts_and_verifies(name, release, corpus_case, tf_release, cli, tmp_path):
    """Every signature's outputs match in the real release; where IN loads with tf.saved_model.load in the
    reference, OUT's trainable variables equal IN's."""
    tf_release(release)
    code, report = _verified(cli, corpus_case(name), tmp_path / "out", release)
    assert code == 0 and report["ok"], report["summary"]
    assert report["target_tf"].startswith(release + "."), report["target_tf"]
    assert all(o["ok"] for s in report["signatures"] for o in s["outputs"])
    tf1_loader = any("TF 1 loader" in n for n in report["notes"])
    assert tf1_loader or (report["variables"] and report["variables"][0]["ok"]), report


@pytest.mark.full_matrix    # CI time: the other Keras-way tests cover the path in CI
@pytest.mark.real_runtime("2.9")
def test_tfx_keras_model_loads_the_keras_way_with_a_2_9_reference(corpus_case, tf_release, cli, tmp_path):
    """TFX's TF 2.3 Keras SavedModel: the host's Keras 3 cannot tf.saved_model.load it (its Keras optimizer's
    slots), so with the host as reference both sides use the TF 1 loader (the corpus test above). With real
    2.9 as the reference, IN and OUT load with tf.saved_model.load and tf.keras.models.load_model; the
    serving signature parses tf.Examples, not the model's inputs, so Keras runs the model's signature."""
    tf_release("2.9")
    code, report = _verified(cli, corpus_case("tfx__keras_serving"), tmp_path / "out", "2.9",
                             "--reference-release", "2.9")
    assert code == 0 and report["ok"], report["summary"]
    assert not report["notes"], report["notes"]
    (keras,) = report["keras"]
    assert keras["ok"] and keras["via"] == "tf.keras.models.load_model, its signature serving_default", keras
    assert report["variables"][0]["ok"] and report["variables"][0]["count"] == 6, report["variables"]
