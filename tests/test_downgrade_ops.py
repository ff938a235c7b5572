"""Ops real models use that old releases lack (issue 10, item 8), end to end: tiny tf.compat.v1
SavedModels built by the host TF that use tf.searchsorted (UpperBound/LowerBound), sparse segment
reductions with num_segments / int64 ids and their gradient (SparseSegmentSumGrad), and Keras optimizer
updates (ResourceApplyKerasMomentum, AdagradV2, AdamWithAmsgrad), tf.strings length/lower/upper/strip,
projective image transforms with constant fill, and cond_v2's Optionals, converted for TF 1.8 and 1.4
and verified in the real release against the host."""

import json

import pytest

from model_zoo import op_histogram
from transpiler.knowledge.releases import catalog
from transpiler.options import ConvertOptions
from transpiler.pipeline.convert import explain

SEARCH_SEGMENT_OPS = ("UpperBound", "LowerBound", "SparseSegmentSumWithNumSegments",
                      "SparseSegmentSqrtNWithNumSegments", "SparseSegmentSumGrad")
OPTIMIZER_OPS = ("ResourceApplyKerasMomentum", "ResourceApplyAdagradV2", "ResourceApplyAdamWithAmsgrad")


def _saved_model(path, build):
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        inputs, outputs = build(tf)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def(inputs, outputs)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    return path


def _search_and_segments(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [2, 6], name="x")
    q = v1.placeholder(tf.float32, [2, 4], name="q")
    data = v1.placeholder(tf.float32, [5, 3], name="data")
    rows = tf.sort(x, axis=1)  # searchsorted needs sorted rows; the generated inputs are not
    indices = tf.constant([0, 4, 2, 2, 1])
    ids64 = tf.constant([0, 0, 1, 1, 3], tf.int64)
    segment_sum = tf.sparse.segment_sum(data, indices, tf.constant([0, 0, 1, 1, 3]), num_segments=6)
    grad = tf.gradients(tf.reduce_sum(tf.sparse.segment_sum(data, indices, ids64) * 3.0), data)[0]
    return {"x": x, "q": q, "data": data}, {
        "upper": tf.searchsorted(rows, q, side="right", out_type=tf.int64),
        "lower": tf.searchsorted(rows, q, side="left"),
        "sum": segment_sum,
        "mean": tf.sparse.segment_mean(data, indices, ids64),
        "sqrt_n": tf.sparse.segment_sqrt_n(data, indices, ids64, num_segments=5),
        "grad": grad,
    }


def _optimizer_updates(tf):
    """One training step of three optimizers; the signature reads the variables after it."""
    v1 = tf.compat.v1
    grad = v1.placeholder(tf.float32, [3, 2], name="grad")

    def var(name, value):
        return v1.get_variable(name, initializer=tf.constant(value), use_resource=True)

    w, accum = var("w", [[1., 2.], [3., 4.], [5., 6.]]), var("w/momentum", [[.1, .2], [.3, .4], [.5, .6]])
    w2, accum2 = var("w2", [1.] * 4), var("w2/accum", [.1] * 4)
    m, v, vhat = var("w2/m", [.01] * 4), var("w2/v", [.001] * 4), var("w2/vhat", [.002] * 4)
    grad2 = tf.reduce_sum(grad) * tf.constant([1., -1., 2., .5])
    raw = tf.raw_ops
    with tf.control_dependencies([
            raw.ResourceApplyKerasMomentum(var=w.handle, accum=accum.handle, lr=tf.constant(0.1), grad=grad,
                                           momentum=tf.constant(0.9), use_nesterov=True),
            raw.ResourceApplyAdagradV2(var=w2.handle, accum=accum2.handle, lr=tf.constant(0.05),
                                       epsilon=tf.constant(1e-7), grad=grad2)]):
        first = tf.no_op(name="train")
    with tf.control_dependencies([first]):
        second = raw.ResourceApplyAdamWithAmsgrad(
            var=w2.handle, m=m.handle, v=v.handle, vhat=vhat.handle, beta1_power=tf.constant(0.9),
            beta2_power=tf.constant(0.999), lr=tf.constant(0.01), beta1=tf.constant(0.9), beta2=tf.constant(0.999),
            epsilon=tf.constant(1e-7), grad=grad2)
    with tf.control_dependencies([second]):
        reads = {k: tf.identity(x.read_value()) for k, x in
                 {"w": w, "accum": accum, "w2": w2, "accum2": accum2, "m": m, "v": v, "vhat": vhat}.items()}
    return {"grad": grad}, reads


#: The resource sparse updates TF 1.4 already has (tf.compat.v1 optimizers on embeddings: Adagrad, Momentum,
#: FTRL, ProximalAdagrad, RMSProp, centered RMSProp), with a repeated index: they pass through unchanged.
SPARSE_UPDATES_OF_TF14 = ("ResourceSparseApplyAdagrad", "ResourceSparseApplyMomentum", "ResourceSparseApplyFtrlV2",
                          "ResourceSparseApplyProximalAdagrad", "ResourceSparseApplyRMSProp",
                          "ResourceSparseApplyCenteredRMSProp")


def _sparse_updates(tf):
    """One step of each SPARSE_UPDATES_OF_TF14 op, in sequence, on rows [2, 0, 2] of [4, 2] variables."""
    v1 = tf.compat.v1
    grad = v1.placeholder(tf.float32, [3, 2], name="grad")
    rows = tf.constant([2, 0, 2])
    variables = {k: v1.get_variable(k, initializer=tf.constant(value, shape=[4, 2]), use_resource=True)
                 for k, value in [("w", 1.), ("accum", .1), ("linear", .2), ("ms", .3), ("mom", .05), ("mg", .01)]}
    h = {k: x.handle for k, x in variables.items()}
    c, raw = tf.constant, tf.raw_ops
    updates = [
        lambda: raw.ResourceSparseApplyAdagrad(var=h["w"], accum=h["accum"], lr=c(.1), grad=grad, indices=rows),
        lambda: raw.ResourceSparseApplyMomentum(var=h["w"], accum=h["mom"], lr=c(.1), grad=grad, indices=rows,
                                                momentum=c(.9), use_nesterov=True),
        lambda: raw.ResourceSparseApplyFtrlV2(var=h["w"], accum=h["accum"], linear=h["linear"], grad=grad, indices=rows,
                                              lr=c(.1), l1=c(.01), l2=c(.02), l2_shrinkage=c(0.), lr_power=c(-.5)),
        lambda: raw.ResourceSparseApplyProximalAdagrad(var=h["w"], accum=h["accum"], lr=c(.1), l1=c(.01), l2=c(.02),
                                                       grad=grad, indices=rows),
        lambda: raw.ResourceSparseApplyRMSProp(var=h["w"], ms=h["ms"], mom=h["mom"], lr=c(.1), rho=c(.9),
                                               momentum=c(.5), epsilon=c(1e-7), grad=grad, indices=rows),
        lambda: raw.ResourceSparseApplyCenteredRMSProp(var=h["w"], mg=h["mg"], ms=h["ms"], mom=h["mom"], lr=c(.1),
                                                       rho=c(.9), momentum=c(.5), epsilon=c(1e-7), grad=grad,
                                                       indices=rows)]
    done = []
    for update in updates:
        with tf.control_dependencies(done):
            done = [update()]
    with tf.control_dependencies(done):
        return {"grad": grad}, {k: tf.identity(x.read_value()) for k, x in variables.items()}


def _strings(tf):
    s = tf.compat.v1.placeholder(tf.string, [None], name="s")
    return {"s": s}, {"bytes": tf.strings.length(s), "chars": tf.strings.length(s, unit="UTF8_CHAR"),
                      "lower": tf.strings.lower(s), "upper": tf.strings.upper(s), "strip": tf.strings.strip(s)}


def _splits(tf):
    """tf.strings.split (StringSplitV2, TF 1.10) on whitespace and on a one-byte sep, as SparseTensors."""
    s = tf.compat.v1.placeholder(tf.string, [None], name="s")
    outputs = {}
    for key, sep in (("words", None), ("fields", ",")):
        split = tf.compat.v1.strings.split(s, sep=sep)
        outputs.update({key + "_indices": split.indices, key + "_values": split.values, key + "_shape": split.dense_shape})
    return {"s": s}, outputs


#: Mixed case, UTF-8 (non-ASCII letters stay as they are), a NUL byte, whitespace, empty strings (one last).
STRINGS = ["Hello World", "", " HÉLLO Straße\t", "日本語 abc", "\0Az@[`{", " \r\n ", ""]

def _projective_transforms(tf):
    """tf.raw_ops image transforms with constant fill (Keras preprocessing layers with fill_mode='constant')."""
    images = tf.compat.v1.placeholder(tf.float32, [2, 8, 9, 3], name="images")
    t = tf.constant([[1.1, 0.2, -1.5, -0.1, 0.9, 0.7, 0.01, -0.02], [0.8, -0.6, 2.0, 0.6, 0.8, -1.0, 0.0, 0.0]])
    raw = tf.raw_ops
    return {"images": images}, {
        "bilinear": raw.ImageProjectiveTransformV3(images=images, transforms=t, output_shape=[6, 10], fill_value=0.25,
                                                   interpolation="BILINEAR", fill_mode="CONSTANT"),
        "nearest": raw.ImageProjectiveTransformV2(images=images, transforms=t[1:], output_shape=[8, 9],
                                                  interpolation="NEAREST", fill_mode="CONSTANT"),
    }


MODELS = {"search_segments": (_search_and_segments, SEARCH_SEGMENT_OPS),
          "optimizers": (_optimizer_updates, OPTIMIZER_OPS),
          "projective": (_projective_transforms, ("ImageProjectiveTransformV2", "ImageProjectiveTransformV3")),
          "strings": (_strings, ("StringLength", "StringLower", "StringUpper", "StringStrip")),
          "splits": (_splits, ("StringSplitV2",)),
          "sparse_updates": (_sparse_updates, SPARSE_UPDATES_OF_TF14)}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_new_ops_are_rewritten_for_old_releases(model, tmp_path):
    build, new_ops = MODELS[model]
    path = _saved_model(tmp_path / model, build)
    ops = op_histogram(path)
    assert all(ops[op] for op in new_ops), ops
    for release in ("1.4", "1.8", "1.12"):
        report = explain(path, ConvertOptions(to=release))
        assert not report.problems, (release, report.problems)


@pytest.mark.real_runtime("1.8", "1.4")
@pytest.mark.parametrize("release", ["1.8", pytest.param("1.4", marks=pytest.mark.full_matrix)])
@pytest.mark.parametrize("model", ["optimizers", "search_segments",
                                   pytest.param("projective", marks=pytest.mark.full_matrix)])
def test_converted_model_computes_the_same_in_the_real_release(model, release, tf_release, cli, tmp_path):
    tf_release(release)
    build, _ = MODELS[model]
    path = _saved_model(tmp_path / model, build)
    out = tmp_path / ("%s_tf%s" % (model, release))
    _convert_and_verify(cli, path, out, release, {"search_segments": 6, "optimizers": 7, "projective": 2}[model])


@pytest.mark.real_runtime("1.4", "1.8")
@pytest.mark.parametrize("release", ["1.4", pytest.param("1.8", marks=pytest.mark.full_matrix)])
def test_string_ops_compute_the_same_bytes_in_the_real_release(release, tf_release, cli, tmp_path):
    tf_release(release)
    _verify_fed(cli, tmp_path, "strings", _strings, release, 5, {"s": STRINGS})


@pytest.mark.real_runtime("1.4", "1.8")
@pytest.mark.parametrize("release", ["1.4", pytest.param("1.8", marks=pytest.mark.full_matrix)])
def test_sparse_updates_of_old_releases_pass_through_and_compute_the_same(release, tf_release, cli, tmp_path):
    """A repeated row compounds in these kernels (one index after another); the release's own kernel does it."""
    tf_release(release)
    out = _verify_fed(cli, tmp_path, "sparse_updates", _sparse_updates, release, 6, {"grad": GRAD})
    ops = op_histogram(out)
    assert all(ops[op] == 1 for op in SPARSE_UPDATES_OF_TF14), ops


def _ftrl_v2(shrinkage):
    """One dense and one sparse FtrlV2 step (tf.compat.v1.train.FtrlOptimizer with l2_shrinkage_regularization_strength)."""
    def build(tf):
        v1, c, raw = tf.compat.v1, tf.constant, tf.raw_ops
        grad = v1.placeholder(tf.float32, [3, 2], name="grad")
        variables = {k: v1.get_variable(k, initializer=tf.constant(value, shape=[4, 2]), use_resource=True)
                     for k, value in [("w", 1.), ("accum", .1), ("linear", .2)]}
        h = {k: x.handle for k, x in variables.items()}
        common = dict(var=h["w"], accum=h["accum"], linear=h["linear"], lr=c(.1), l1=c(.01), l2=c(.02),
                      l2_shrinkage=c(shrinkage), lr_power=c(-.5))
        dense = raw.ResourceApplyFtrlV2(grad=tf.concat([grad, grad[:1]], 0), **common)
        with tf.control_dependencies([dense]):
            sparse = raw.ResourceSparseApplyFtrlV2(grad=grad, indices=c([2, 0, 3]), **common)
        with tf.control_dependencies([sparse]):
            return {"grad": grad}, {k: tf.identity(x.read_value()) for k, x in variables.items()}
    return build


@pytest.mark.parametrize("release, shrinkage, refused", [("1.8", .03, 2), ("1.4", .03, 2), ("1.10", .03, 2),
                                                         ("1.11", .03, 0), ("1.4", 0., 0)])
def test_ftrl_v2_with_l2_shrinkage_is_refused_before_1_11(release, shrinkage, refused, tmp_path):
    path = _saved_model(tmp_path / "ftrl", _ftrl_v2(shrinkage))
    report = explain(path, ConvertOptions(to=release))
    problems = report.problems
    assert sorted(p.op for p in problems if p.kind == "kernel-behaviour") == (
        ["ResourceApplyFtrlV2", "ResourceSparseApplyFtrlV2"] if refused else []), problems
    assert len(problems) == refused, problems
    if refused:  # TF loads these ops: the summary says they compute differently, not that they block loading
        assert report.summary() == ("2 op(s) would compute other numbers in TF %s: ResourceApplyFtrlV2 x1, "
                                    "ResourceSparseApplyFtrlV2 x1" % release), report.summary()


#: The built-in refusals replaced by rules that never match: what the release computes without them.
NO_FTRL_REFUSAL = "family: test\nrules:\n" + "".join(
    "  - {id: %s-l2-shrinkage-refused, why: \"disabled\", match: {op: %s, attrs: {T: DT_STRING}}, refuse: \"disabled\"}\n" % (rid, op)
    for rid, op in [("resource-apply-ftrl-v2", "ResourceApplyFtrlV2"),
                    ("resource-sparse-apply-ftrl-v2", "ResourceSparseApplyFtrlV2")])


@pytest.mark.real_runtime("1.8", "1.11")
@pytest.mark.parametrize("release, same", [("1.8", False), pytest.param("1.11", True, marks=pytest.mark.full_matrix)])
def test_ftrl_v2_l2_shrinkage_computes_differently_before_1_11(release, same, tf_release, cli, tmp_path):
    """Why the refusal: passed through, TF 1.8's FtrlV2 kernels leave other variables than the host's."""
    tf_release(release)
    path = _saved_model(tmp_path / "ftrl", _ftrl_v2(.03))
    rules = tmp_path / "no_refusal.yaml"
    rules.write_text(NO_FTRL_REFUSAL)
    done = cli(path, tmp_path / "out", "--to", release, "--rules", rules, "--verify", "--format", "json",
               "--inputs-file", _inputs_file(tmp_path, {"grad": GRAD}))
    report = json.loads(done.stdout)["verify"]
    outputs = {o["key"]: o["ok"] for o in report["signatures"][0]["outputs"]}
    assert outputs == {"w": same, "accum": same, "linear": same}, report["summary"]


#: Separators side by side, empty fields, empty strings, runs of every isspace byte, UTF-8, a NUL byte.
SPLIT_STRINGS = ["a,b,,c", "", "hello  world", ",", " x , y ", "\t\n\x0b\x0c\r z\r", "日本,語 abc", "\0,\0", ",,", ""]


@pytest.mark.real_runtime("1.4", "1.8")
@pytest.mark.parametrize("release", ["1.4", pytest.param("1.8", marks=pytest.mark.full_matrix)])
def test_string_splits_give_the_same_tokens_in_the_real_release(release, tf_release, cli, tmp_path):
    tf_release(release)
    _verify_fed(cli, tmp_path, "splits", _splits, release, 6, {"s": SPLIT_STRINGS})


def _split_by(sep, maxsplit):
    def build(tf):
        s = tf.compat.v1.placeholder(tf.string, [None], name="s")
        split = tf.raw_ops.StringSplitV2(input=s, sep=sep, maxsplit=maxsplit, name="split")
        return {"s": s}, {"values": split.values}
    return build


@pytest.mark.parametrize("sep, maxsplit, says", [("<>", -1, 'sep is "<>"'), (",", 2, "here 2"),
                                                 ("é", -1, 'sep is "\\u00e9"')])
def test_a_split_that_string_split_cannot_do_is_refused_by_node_and_op(sep, maxsplit, says, tmp_path):
    path = _saved_model(tmp_path / "split", _split_by(sep, maxsplit))
    problems = explain(path, ConvertOptions(to="1.8")).problems
    assert [(p.node, p.op) for p in problems] == [("split", "StringSplitV2")], problems
    assert "each byte of its delimiter" in problems[0].detail and says in problems[0].detail, problems[0].detail


def _projective_fill(version, fill_mode):
    def build(tf):
        images = tf.compat.v1.placeholder(tf.float32, [1, 4, 4, 1], name="images")
        t = tf.constant([[1., 0., 0.5, 0., 1., 0.5, 0., 0.]])
        extra = {"fill_value": 0.} if version == "V3" else {}
        op = getattr(tf.raw_ops, "ImageProjectiveTransform" + version)
        return {"images": images}, {"out": op(images=images, transforms=t, output_shape=[4, 4], interpolation="BILINEAR",
                                               fill_mode=fill_mode, name="warp", **extra)}
    return build


@pytest.mark.parametrize("version, fill_mode", [("V3", "REFLECT"), ("V2", "WRAP"), ("V3", "NEAREST")])
def test_projective_fill_modes_other_than_constant_are_refused_in_one_line(version, fill_mode, cli, tmp_path):
    """REFLECT/WRAP/NEAREST remap coordinates that fall outside the image; no rule writes that out (yet), so the
    converter refuses, and the one problem line names the node, the op and the fill_mode."""
    path = _saved_model(tmp_path / "warp", _projective_fill(version, fill_mode))
    done = cli(path, tmp_path / "out", "--to", "1.8")
    assert done.returncode == 1 and not (tmp_path / "out").exists(), done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "refused by rule" in line]
    assert len(lines) == 1, done.stdout + done.stderr
    op = "ImageProjectiveTransform" + version
    assert "node warp (%s, fill_mode %s," % (op, fill_mode) in lines[0], lines[0]


def _sparse_segment_gradients(tf):
    """Gradients of sparse segment reductions with sparse_gradient=True (TF 2.14): SparseSegment*GradV2's rows."""
    v1 = tf.compat.v1
    data = v1.placeholder(tf.float32, [6, 3], name="data")
    indices, ids = tf.constant([5, 0, 5, 2, 2, 3]), tf.constant([0, 0, 1, 2, 2, 3])
    outputs = {}
    for key, reduce in (("sum", tf.sparse.segment_sum), ("mean", tf.sparse.segment_mean),
                        ("sqrt_n", tf.sparse.segment_sqrt_n)):
        weights = tf.reshape(tf.range(12, dtype=tf.float32), [4, 3])
        forward = reduce(data, indices, ids, sparse_gradient=True)
        grad = tf.gradients(tf.reduce_sum(forward * weights), data)[0]
        outputs.update({key: forward, key + "_rows": grad.values, key + "_indices": grad.indices})
    return {"data": data}, outputs


@pytest.mark.real_runtime("1.4", "1.8")
@pytest.mark.parametrize("release", ["1.4", pytest.param("1.8", marks=pytest.mark.full_matrix)])
def test_sparse_segment_gradients_v2_compute_the_same_in_the_real_release(release, tf_release, cli, tmp_path):
    tf_release(release)
    out = _verify_fed(cli, tmp_path, "segment_grads", _sparse_segment_gradients, release, 9,
                      {"data": [[float(i * 3 + j) for j in range(3)] for i in range(6)]})
    assert not [op for op in op_histogram(out) if op.endswith("GradV2")]


#: The gradient fed to the optimizer models: three rows of two.
GRAD = [[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]]


def _inputs_file(tmp_path, feeds):
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(feeds))
    return inputs


def _verify_fed(cli, tmp_path, name, build, release, outputs, feeds):
    """Build model `name`, convert it for `release` and verify it there fed `feeds`; the output's path."""
    path = _saved_model(tmp_path / name, build)
    out = tmp_path / ("%s_tf%s" % (name, release))
    _convert_and_verify(cli, path, out, release, outputs, "--inputs-file", _inputs_file(tmp_path, feeds))
    return out


def _convert_and_verify(cli, path, out, release, outputs, *options):
    done = cli(path, out, "--to", release, "--verify", "--format", "json", *options)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)["verify"]
    assert report["ok"], report["summary"]
    assert len(report["signatures"][0]["outputs"]) == outputs, report
    opset = catalog().opset(release)
    assert not [op for op in op_histogram(out) if not opset.has_op(op)]


def _cond_gradient(tf):
    """tf.cond with control flow v2 and its gradient: cond_v2 hands the branch intermediates the gradient
    needs out of the If as Optionals (OptionalFromValue, unwrapped by OptionalGetValue in the gradient's If)."""
    v1 = tf.compat.v1
    v1.enable_control_flow_v2()
    try:
        x = v1.placeholder(tf.float32, [3], name="x")
        p = v1.placeholder(tf.bool, [], name="p")
        y = tf.cond(p, lambda: tf.sin(x) * x, lambda: tf.exp(x) + 1.0)
        return {"x": x, "p": p}, {"y": y, "g": tf.gradients(y, x)[0]}
    finally:
        v1.disable_control_flow_v2()


def test_cond_v2_optionals_become_the_tensors_they_wrap(tmp_path):
    path = _saved_model(tmp_path / "cond", _cond_gradient)
    ops = op_histogram(path)
    assert ops["OptionalFromValue"] and ops["OptionalGetValue"], ops
    report = explain(path, ConvertOptions(to="1.8"))
    assert not report.problems, report.problems
    assert sum(f["rule"] == "optional-to-value" for f in report.fired) == 4, report.fired


@pytest.mark.real_runtime("1.8")
@pytest.mark.full_matrix
@pytest.mark.parametrize("taken", [True, False])
def test_cond_v2_gradient_computes_the_same_in_real_1_8(taken, tf_release, cli, tmp_path):
    tf_release("1.8")
    path = _saved_model(tmp_path / "cond", _cond_gradient)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"x": [0.5, -1.0, 2.0], "p": taken}))
    _convert_and_verify(cli, path, tmp_path / "cond_tf18", "1.8", 2, "--inputs-file", inputs)
