"""Issue 10, "never worse than the input": every public corpus model (tests/data)
through every target release (1.4, 1.8, 1.12, 1.15, 2.21).

For each (model, release), tests/corpus_matrix.evaluate loads the model as is
in the real release, converts it with the real CLI, loads the output the same
way and compares (see that module). The test fails when

* never worse is violated: the model loads as is, but tf-transpile refuses it,
  or its output does not load / run what the input ran / gives other numbers;
* a false success: tf-transpile exits 0 but its output does not load, run or
  match (or is not in the input's form).

The whole matrix is marked ``corpus_matrix`` (deselected by default; run it
with ``pytest --corpus-matrix tests/test_corpus_matrix.py`` or ``-m
corpus_matrix``). SUBSET runs unmarked, so CI runs it. Known failures are
listed in KNOWN_FAILURES with their cause, as strict xfails: delete an entry
when its fix lands (the test then XPASSes and fails until you do).
tools/corpus_matrix.py runs the same code and prints the table.
"""
import pytest

import corpus_matrix as cm

# (model, release) -> cause. Strict xfails: a case that starts passing fails
# until its entry is deleted. None is open: tensorflow__parse_example_graph_def, invalid in every release,
# is refused by node and op (tests/test_real_world.py), which the matrix counts as not worse.
KNOWN_FAILURES = {}

#: (model, release) -> why the conversion is refused (exit 1, by node and op). Any other refusal fails
#: its case even where the input does not load as is either: the issue asks that every public model
#: converts, so a new refusal is a regression, not "not worse".
EXPECTED_REFUSALS = {
    **{("tensorflow__parse_example_graph_def", r): "invalid in every release: ParseExample's serialized "
       "input is a scalar, which every release's shape function refuses" for r in ("1.4", "1.8", "1.12", "1.15", "2.21")},
    ("tensorflow__jit_keras_imagenet_main", "1.4"): "top-level _Arg/_Retval nodes (an XLA cluster body "
    "dumped as a graph), which TF 1.4's Python importer does not know; it does not load as is either",
}

SUBSET = {
    ("serving__saved_model_half_plus_two_tf2_cpu", "1.8"),
    ("serving__saved_model_counter", "1.4"),
    ("tfx__keras_serving", "1.15"),
    ("tensorflow__sm_half_plus_two_v2_2018", "2.21"),
    ("rust__addition_tf217", "1.8"),
    ("rust__addition_tf217", "2.21"),
    ("tensorflow-onnx__regression_checkpoint", "1.8"),
    ("TensorFlow.NET__xor_meta", "1.4"),
    ("serving__saved_model_half_plus_two_cpu", "1.4"),       # snappy index, rewritten for TF 1.4
    ("tensorflow__xla_lstm_layer_inference", "1.8"),          # GPU-pinned, --clear-devices
    ("tensorflow__parse_example_graph_def", "1.8"),          # invalid as is: refused, nothing written
}


def _params():
    for model in cm.models():
        for release in cm.RELEASES:
            marks = [pytest.mark.real_runtime]
            if (model, release) not in SUBSET:
                marks.append(pytest.mark.corpus_matrix)
            if (model, release) in KNOWN_FAILURES:
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError,
                                               reason=KNOWN_FAILURES[(model, release)]))
            yield pytest.param(model, release, marks=marks, id="%s@%s" % (model, release))


@pytest.mark.parametrize("model,release", list(_params()))
def test_never_worse_and_no_false_success(model, release, tf_release):
    tf_release(cm._RUNTIME[release])    # provisioned, or skip (fail under CI) with the reason
    rec = cm.evaluate(model, release)
    problems = cm.problems(rec)
    refused = rec["status_converted"] == "refused"
    if refused != ((model, release) in EXPECTED_REFUSALS):
        problems.append("refused, not in EXPECTED_REFUSALS: " + rec["convert"]["last_line"] if refused else
                        "expected a refusal (%s), got %s" % (EXPECTED_REFUSALS[(model, release)],
                                                             rec["status_converted"]))
    assert not problems, "%s @ TF %s: %s\n%s" % (
        model, release, cm.cell(rec).replace("\\|", "|"), "\n".join(problems))


def test_known_failures_and_subset_are_matrix_cases():
    cases = {(m, r) for m in cm.models() for r in cm.RELEASES}
    assert len(cm.models()) == 30
    assert set(KNOWN_FAILURES) <= cases, sorted(set(KNOWN_FAILURES) - cases)
    assert SUBSET <= cases, sorted(SUBSET - cases)
    assert all(reason.strip() for reason in KNOWN_FAILURES.values())
    assert set(EXPECTED_REFUSALS) <= cases, sorted(set(EXPECTED_REFUSALS) - cases)
    kinds = {cm.ModelInput(m).kind for m, _ in SUBSET}
    assert kinds == {"saved_model", "graph_def", "meta_graph"}, kinds
    assert {"1.4", "1.8", "1.15", "2.21"} <= {r for _, r in SUBSET}
