"""Golden files: the canonical text of transpiled models, diffed on every run.

`pytest --update-golden` rewrites golden/; a normal run fails with a short
unified diff naming the case. Inputs are models the tests build from code, so
a diff always means our output changed.
"""

import difflib
import shutil
from pathlib import Path

import pytest

from golden import golden_text
from transpiler.options import ConvertOptions
from transpiler.pipeline.convert import plan
from transpiler.io.readers import read_model
from transpiler.knowledge.releases import catalog

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
DIFF_LINES = 40

TF2_CASES = [("compat_v1_linear_relu6", "1.8"), ("compat_v1_cnn", "1.8"), ("compat_v1_cnn", "1.4"),
             ("module_saved", "1.8"), ("module_control_flow", "1.8"), ("keras_lstm", "1.15")]
UPGRADE_CASES = [("1.15.0", "cnn_layers"), ("1.4.0", "contrib_resampler"), ("1.15.0", "cnn_layers_frozen")]
TF115_CASES = [("cnn_keras", "1.8"), ("cnn_keras_frozen", "1.4"), ("while_cond", "1.8"), ("linear_relu6", "1.4")]


def render(case, target, rule_files=()):
    model = read_model(case.path)
    opset = catalog().opset(target)
    result = plan(model, ConvertOptions(to=target, rule_files=tuple(rule_files)))
    report = result.report
    for mg, ir in zip(model.meta_graphs, result.irs):
        mg.graph_def.CopyFrom(ir.lower())
    header = ["case: %s --to %s" % (case.name, opset.short),
              "producer: TF %s (tests/producers, built by the tests)" % case.producer]
    return golden_text(model, report, header)


def golden_diff(name, text):
    """None when `text` equals golden/NAME.txt, else a short unified diff."""
    path = GOLDEN / (name + ".txt")
    old = path.read_text() if path.exists() else ""
    if old == text:
        return None
    diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), "golden/" + path.name, "current output",
                                     lineterm="", n=2))
    more = "\n... %d more diff lines" % (len(diff) - DIFF_LINES) if len(diff) > DIFF_LINES else ""
    return "golden case %s changed (pytest --update-golden to accept):\n%s%s" % (
        name, "\n".join(diff[:DIFF_LINES]), more)


def check_golden(request, name, text):
    if request.config.getoption("--update-golden"):
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / (name + ".txt")).write_text(text)
        return
    problem = golden_diff(name, text)
    assert problem is None, problem


@pytest.mark.parametrize("name,target", TF2_CASES)
def test_golden_tf2(request, tf2_cases, name, target):
    text = render(tf2_cases[name], target)
    assert render(tf2_cases[name], target) == text, "output is not deterministic"
    check_golden(request, "downgrade-tf2-%s-to-%s" % (name, target), text)


@pytest.mark.real_runtime
@pytest.mark.parametrize("name,target", TF115_CASES)
def test_golden_tf115(request, tf1_cases, name, target):
    text = render(tf1_cases("1.15.0")[name], target)
    check_golden(request, "downgrade-tf115-%s-to-%s" % (name, target), text)


def render_upgrade(cli, case, out):
    """Upgrades are written by TensorFlow itself (tf.saved_model.save): golden holds their summary."""
    import json

    from transpiler.pipeline.report import Report

    result = cli(case.path, out, "--to", "2.21", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    report = Report("-", data["target"], [], data["rules_fired"], data.get("notes", []))
    header = ["case: %s --to 2.21" % case.name, "producer: TF %s (tests/producers, built by the tests)" % case.producer]
    return golden_text(read_model(out), report, header, whole=False)


@pytest.mark.real_runtime
@pytest.mark.parametrize("release,name", UPGRADE_CASES)
def test_golden_upgrade(request, tf1_upgrade_cases, cli, tmp_path, release, name):
    case = tf1_upgrade_cases(release)[name]
    text = render_upgrade(cli, case, tmp_path / "first")
    assert render_upgrade(cli, case, tmp_path / "second") == text, "output is not deterministic"
    check_golden(request, "upgrade-tf%s-%s-to-2.21" % (release.replace(".0", "").replace(".", ""), name), text)


def test_changed_rule_shows_as_golden_diff(tf2_cases, tmp_path):
    """A deliberately changed rule (a throwaway copy, overriding the built-in by id) fails with a readable diff."""
    original = Path(__file__).resolve().parent.parent / "rules" / "activations.yaml"
    changed = tmp_path / "activations.yaml"
    changed.write_text(original.read_text().replace('op: Sub, inputs: ["{{ name }}/pos", "{{ name }}/scaled"]',
                                                    'op: Sub, inputs: ["{{ name }}/pos", "{{ name }}/scaled"], '
                                                    'device: "/cpu:0"'))
    assert changed.read_text() != original.read_text()
    text = render(tf2_cases["compat_v1_cnn"], "1.8", [changed])
    problem = golden_diff("downgrade-tf2-compat_v1_cnn-to-1.8", text)
    assert problem is not None and "golden case downgrade-tf2-compat_v1_cnn-to-1.8 changed" in problem
    assert '+  device: "/cpu:0"' in problem or "/cpu:0" in problem


def test_same_input_gives_byte_identical_output(tf2_cases, cli, tmp_path):
    case = tf2_cases["compat_v1_cnn"]
    for name in ("a", "b"):
        assert cli(case.path, tmp_path / name, "--to", "1.8").returncode == 0
    for rel in ("saved_model.pb", "variables/variables.index"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
