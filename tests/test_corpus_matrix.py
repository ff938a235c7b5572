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

# Causes, with the error seen in the real release (bench/corpus_matrix_results.md
# has the full run).
_FORM_META_DIR = (
    "output form: a .meta input is written as a directory OUT.meta/ holding <name>.meta and "
    "its checkpoint, not the file OUT.meta")
_FORM_META = _FORM_META_DIR + " (the .meta inside loads and matches)"
_FORM_META_221 = (
    "output form: --to 2.21 writes a TF 2 SavedModel directory for a .meta input (as a "
    "SavedModel it loads and its signature matches)")
_FORM_PB_221 = (
    "output form: --to 2.21 turns a .pb into a TF 2 SavedModel directory OUT.pb/ (as a "
    "SavedModel it loads and its signature matches)")
_MISSING_VARIABLES = (
    "refused: 'missing variables (the graph has variables but no checkpoint; give "
    "--checkpoint PREFIX)' although the graph loads and runs as is, its variables initialized")
_PRODUCER_PARSE_EXAMPLE = (
    "GraphDef producer raised to the target's while a Placeholder shape {} (unknown rank "
    "before producer 21; this graph is producer 15/19) is kept and now means scalar: "
    "'Shape must be rank 1 but is rank 0 for ParseExample/ParseExample'")
_PRODUCER_FEED = (
    "GraphDef producer raised to the target's while Placeholder shape {} (unknown rank "
    "before producer 21; this graph is producer 10) is kept and now means scalar: the "
    "reference feed is refused, 'Cannot feed value of shape (1,) for Tensor "
    "u'Placeholder:0', which has shape '()''")
_FWDCOMPAT_TINPUTS = (
    "check vs convert disagree: convert refuses 'ParseExample x1' (the extra TInputs attr, "
    "declared with a default in stripped_op_list) while 'check IN' reports nothing and every "
    "release loads the model as is")
_TFJS_OBJECT_GRAPH = (
    "the converted saver still restores the object graph: 'Key _CHECKPOINTABLE_OBJECT_GRAPH "
    "not found in checkpoint'")
_TAGS_EMPTY = (
    "upgrade drops the empty tag set: 'MetaGraphDef associated with tags  could not be "
    "found in SavedModel, with available tags [{serve}]'")
_TAGS_TRAIN_SERVE = (
    "upgrade drops the train,serve tag set: 'MetaGraphDef associated with tags 'train', "
    "'serve' could not be found in SavedModel, with available tags [{serve}]'")
_NO_OUTPUTS = (
    "upgrade refuses 'found no outputs in the graph; name them with --outputs' although "
    "TF 2.21 imports the graph as is")
_TF14_COMPRESSED_CHECKPOINT = (
    "(cause not in the issue) TF 1.4 cannot read this TF 1.14 checkpoint: 'DataLossError: "
    "... variables.index ... corrupted compressed block contents'; convert copies "
    "variables/ unchanged and exits 0")
_INVALID_INPUT = (
    "(cause not in the issue) the input is invalid in every release ('Shape must be rank 1 "
    "but is rank 0 for ParseExample/ParseExample'); the downgrade exits 0 and writes it "
    "instead of reporting it (--to 2.21 does refuse it)")

# (model, release) -> cause. Strict xfails: a case that starts passing fails
# until its entry is deleted.
KNOWN_FAILURES = {
    # output form
    ("tensorflow-onnx__regression_checkpoint", "1.4"): _FORM_META,
    ("tensorflow-onnx__regression_checkpoint", "1.8"): _FORM_META,
    ("tensorflow-onnx__regression_checkpoint", "1.12"): _FORM_META,
    ("tensorflow-onnx__regression_checkpoint", "1.15"): _FORM_META,
    ("TensorFlow.NET__cond_test_meta", "1.4"): _FORM_META,
    ("TensorFlow.NET__cond_test_meta", "1.8"): _FORM_META,
    ("TensorFlow.NET__cond_test_meta", "1.12"): _FORM_META,
    ("TensorFlow.NET__cond_test_meta", "1.15"): _FORM_META,
    ("tensorflow__feature_column_embedding_ckpt", "1.4"): _FORM_META,
    ("tensorflow__feature_column_embedding_ckpt", "1.8"): _FORM_META,
    ("tensorflow__feature_column_embedding_ckpt", "1.12"): _FORM_META,
    ("tensorflow__feature_column_embedding_ckpt", "1.15"): _FORM_META,
    ("tensorflow__profiler_ckpt", "1.4"): _FORM_META,
    ("tensorflow__profiler_ckpt", "1.8"): _FORM_META,
    ("tensorflow__profiler_ckpt", "1.12"): _FORM_META,
    ("tensorflow__profiler_ckpt", "1.15"): _FORM_META,
    ("serving__half_plus_two_session_bundle_2016", "2.21"): _FORM_META_221,
    ("tensorflow-onnx__regression_checkpoint", "2.21"): _FORM_META_221,
    ("TensorFlow.NET__cond_test_meta", "2.21"): _FORM_META_221,
    ("tensorflow__profiler_ckpt", "2.21"): _FORM_META_221,
    ("tensorflow__session_bundle_half_plus_two_ckpt_v2", "2.21"): _FORM_META_221,
    ("rust__addition_tf217", "2.21"): _FORM_PB_221,
    ("tensorflow-onnx__lstm_frozen", "2.21"): _FORM_PB_221,
    # output form and producer raised
    ("serving__half_plus_two_session_bundle_2016", "1.4"): _FORM_META + "; " + _PRODUCER_FEED,
    ("serving__half_plus_two_session_bundle_2016", "1.8"): _FORM_META + "; " + _PRODUCER_FEED,
    ("serving__half_plus_two_session_bundle_2016", "1.12"): _FORM_META + "; " + _PRODUCER_FEED,
    ("serving__half_plus_two_session_bundle_2016", "1.15"): _FORM_META + "; " + _PRODUCER_FEED,
    ("tensorflow__session_bundle_half_plus_two_ckpt_v2", "1.4"):
        _FORM_META_DIR + "; " + _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__session_bundle_half_plus_two_ckpt_v2", "1.8"):
        _FORM_META_DIR + "; " + _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__session_bundle_half_plus_two_ckpt_v2", "1.12"):
        _FORM_META_DIR + "; " + _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__session_bundle_half_plus_two_ckpt_v2", "1.15"):
        _FORM_META_DIR + "; " + _PRODUCER_PARSE_EXAMPLE,
    # producer raised
    ("tensorflow__sm_half_plus_two_pbtxt_2016", "1.4"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_pbtxt_2016", "1.8"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_pbtxt_2016", "1.12"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_pbtxt_2016", "1.15"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_v1ckpt_2016", "1.4"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_v1ckpt_2016", "1.8"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_v1ckpt_2016", "1.12"): _PRODUCER_PARSE_EXAMPLE,
    ("tensorflow__sm_half_plus_two_v1ckpt_2016", "1.15"): _PRODUCER_PARSE_EXAMPLE,
    # variables but no checkpoint
    ("haskell__mnist", "1.4"): _MISSING_VARIABLES,
    ("haskell__mnist", "1.8"): _MISSING_VARIABLES,
    ("haskell__mnist", "1.12"): _MISSING_VARIABLES,
    ("haskell__mnist", "1.15"): _MISSING_VARIABLES,
    ("haskell__mnist", "2.21"): _MISSING_VARIABLES,
    ("TensorFlow.NET__xor_meta", "1.4"): _MISSING_VARIABLES,
    ("TensorFlow.NET__xor_meta", "1.8"): _MISSING_VARIABLES,
    ("TensorFlow.NET__xor_meta", "1.12"): _MISSING_VARIABLES,
    ("TensorFlow.NET__xor_meta", "1.15"): _MISSING_VARIABLES,
    ("TensorFlow.NET__xor_meta", "2.21"): _MISSING_VARIABLES,
    ("tensorflow__metrics_export_meta_graph", "1.4"): _MISSING_VARIABLES,
    ("tensorflow__metrics_export_meta_graph", "1.8"): _MISSING_VARIABLES,
    ("tensorflow__metrics_export_meta_graph", "1.12"): _MISSING_VARIABLES,
    ("tensorflow__metrics_export_meta_graph", "1.15"): _MISSING_VARIABLES,
    ("tensorflow__metrics_export_meta_graph", "2.21"): _MISSING_VARIABLES,
    # check vs convert
    ("tensorflow__sm_half_plus_two_fwdcompat_pbtxt", "1.4"): _FWDCOMPAT_TINPUTS,
    ("tensorflow__sm_half_plus_two_fwdcompat_pbtxt", "1.8"): _FWDCOMPAT_TINPUTS,
    ("tensorflow__sm_half_plus_two_fwdcompat_pbtxt", "1.12"): _FWDCOMPAT_TINPUTS,
    ("tensorflow__sm_half_plus_two_fwdcompat_pbtxt", "1.15"): _FWDCOMPAT_TINPUTS,
    ("tensorflow__sm_half_plus_two_fwdcompat_pbtxt", "2.21"): _FWDCOMPAT_TINPUTS,
    # object-based checkpoint
    ("tfjs__module_with_multiple_signatures", "1.4"): _TFJS_OBJECT_GRAPH,
    ("tfjs__module_with_multiple_signatures", "1.8"): _TFJS_OBJECT_GRAPH,
    ("tfjs__module_with_multiple_signatures", "1.12"): _TFJS_OBJECT_GRAPH,
    # upgrade: tag sets, outputs
    ("hub__hub_module_v1_mini", "2.21"): _TAGS_EMPTY,
    ("rust__regression_model_2017", "2.21"): _TAGS_TRAIN_SERVE,
    ("tensorflow__feature_column_embedding_ckpt", "2.21"): _NO_OUTPUTS,
    ("tensorflow__jit_keras_imagenet_main", "2.21"): _NO_OUTPUTS,
    # not in the list
    ("serving__saved_model_half_plus_two_cpu", "1.4"): _TF14_COMPRESSED_CHECKPOINT,
    ("tensorflow__parse_example_graph_def", "1.4"): _INVALID_INPUT,
    ("tensorflow__parse_example_graph_def", "1.8"): _INVALID_INPUT,
    ("tensorflow__parse_example_graph_def", "1.12"): _INVALID_INPUT,
    ("tensorflow__parse_example_graph_def", "1.15"): _INVALID_INPUT,
}

# A representative subset that runs without the marker, so CI runs it:
# SavedModel (TF 2.14, TF 1.5 stateful, TF 2.3 Keras, TF 1.12), .pb and .meta
# inputs; TF 1.4, 1.8, 1.15 and 2.21 targets; five pass, three are known failures.
SUBSET = {
    ("serving__saved_model_half_plus_two_tf2_cpu", "1.8"),
    ("serving__saved_model_counter", "1.4"),
    ("tfx__keras_serving", "1.15"),
    ("tensorflow__sm_half_plus_two_v2_2018", "2.21"),
    ("rust__addition_tf217", "1.8"),
    ("rust__addition_tf217", "2.21"),
    ("tensorflow-onnx__regression_checkpoint", "1.8"),
    ("TensorFlow.NET__xor_meta", "1.4"),
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
    assert not problems, "%s @ TF %s: %s\n%s" % (
        model, release, cm.cell(rec).replace("\\|", "|"), "\n".join(problems))


def test_known_failures_and_subset_are_matrix_cases():
    cases = {(m, r) for m in cm.models() for r in cm.RELEASES}
    assert len(cm.models()) == 30
    assert set(KNOWN_FAILURES) <= cases, sorted(set(KNOWN_FAILURES) - cases)
    assert SUBSET <= cases, sorted(SUBSET - cases)
    assert all(reason.strip() for reason in KNOWN_FAILURES.values())
    kinds = {cm.ModelInput(m).kind for m, _ in SUBSET}
    assert kinds == {"saved_model", "graph_def", "meta_graph"}, kinds
    assert {"1.4", "1.8", "1.15", "2.21"} <= {r for _, r in SUBSET}
