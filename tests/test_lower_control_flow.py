"""Lowering functional control flow (If/Case/While) and TensorLists to TF 1.x dataflow.

Graphs come from the host TF (`tf.function(...).get_concrete_function().graph`),
are lowered, and run in the host TF in a v1 session: the numbers must equal
the function's own (bit for bit: lowering reorders no arithmetic).
"""

import collections

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import types  # noqa: E402

from transpiler.passes.base import context_for  # noqa: E402
from transpiler.passes.builders import LoweringError  # noqa: E402
from transpiler.passes.dense_tensor_lists import DenseTensorLists, TensorListRewriter  # noqa: E402
from transpiler.passes.functional import (CONTROL_FLOW_OPS, LIST_OPS, needs_lowering,  # noqa: E402
                                          tensor_lists_need_lowering)
from transpiler.passes.inline_calls import InlineCalls  # noqa: E402
from transpiler.ir.graph import Tensor, lift  # noqa: E402
from transpiler.passes.lower_control_flow import LowerControlFlow  # noqa: E402
from transpiler.io.protos import graph_pb2  # noqa: E402
from transpiler.knowledge.releases import catalog  # noqa: E402
from transpiler.passes.validate import validate  # noqa: E402

FUNCTIONAL = set(CONTROL_FLOW_OPS) | {"StatefulPartitionedCall", "PartitionedCall"}


# ---------------------------------------------------------------------------
# helpers shared with test_inline.py


def traced(fn, *specs):
    """(concrete function, GraphDef of its graph)."""
    cf = tf.function(fn).get_concrete_function(*specs)
    return cf, cf.graph.as_graph_def()


def run_graph_def(graph_def, cf, *args):
    """Run `graph_def` (the traced graph of `cf`, rewritten) in a v1 session of the host TF.

    Arguments are fed to cf's input placeholders; captured variables become
    VarHandleOps assigned their current value, other captures are fed.
    """
    graph_def = graph_pb2.GraphDef.FromString(graph_def.SerializeToString())
    variables = {id(v.handle): v for v in cf.graph.variables}
    feeds, resources = {}, {}
    for external, internal in cf.graph.captures:
        name = internal.op.name
        if external.dtype == tf.resource:
            resources[name] = variables[id(external)].numpy()
        else:
            feeds[internal.name] = external.numpy()
    for node in graph_def.node:
        if node.name in resources:
            value = resources[node.name]
            node.op = "VarHandleOp"
            for key in list(node.attr):
                del node.attr[key]
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
            node.attr["shared_name"].s = node.name.encode()
    flat_inputs = [t for t in cf.inputs if t.op.name not in resources and t.name not in feeds]
    feeds.update({t.name: a for t, a in zip(flat_inputs, args)})
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(graph_def, name="")
        inits = [tf.raw_ops.AssignVariableOp(resource=g.get_tensor_by_name(k + ":0"), value=tf.constant(v))
                 for k, v in resources.items()]
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(inits)
            return sess.run([t.name for t in cf.outputs], feeds)


def eager(cf, *args):
    return [np.asarray(t) for t in tf.nest.flatten(cf(*[tf.constant(a) for a in args]))]


def ops_of(ir):
    hist = collections.Counter(n.op for n in ir.nodes)
    for fn in ir.functions.values():
        hist.update(n.op for n in fn.nodes)
    return hist


def lower_for(graph_def, release="1.8", force=True):
    ir = lift(graph_def)
    opset = catalog().opset(release)
    return ir, lower_all(ir, opset, force)


def lower_all(ir, opset, force=False):
    """Inline, lower, make lists dense: the functional part of the downgrade pipeline."""
    ctx = context_for(opset)
    InlineCalls(force=force).run(ir, ctx)
    lowering = LowerControlFlow(force=force)
    log = lowering.run(ir, ctx)
    dense = DenseTensorLists(force=force).run(ir, ctx)
    log.extend(dense)
    return types.SimpleNamespace(lowered=lowering.lowered, refused=log.refusals,
                                 dense_lists=len([f for f in dense.firings if f.rule == "tensor-list-to-dense"]))


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


X = np.random.RandomState(7).randn(4, 3).astype(np.float32)


# ---------------------------------------------------------------------------
# If / Case


def test_if_lowered_to_switch_merge_and_runs():
    def f(x):
        if tf.reduce_sum(x) > 0.0:
            y = x * 2.0 + 1.0
        else:
            y = tf.tanh(x) - 3.0
        return y

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir, lowering = lower_for(gd)
    ops = ops_of(ir)
    assert not FUNCTIONAL & set(ops), ops
    assert ops["Switch"] >= 2 and ops["Merge"] >= 2 and not ir.functions
    for x in (X, -np.abs(X)):
        assert_same(run_graph_def(ir.lower(), cf, x), eager(cf, x))
    # the If keeps its name, as an IdentityN after branch_executed
    [name] = [n for names in lowering.lowered.values() for n in names]
    assert ir[name].op == "IdentityN" and any("branch_executed" in c for c in ir.control_inputs(name))


def test_if_with_resource_inputs_and_side_effect_only_branch():
    v = tf.Variable(np.ones((3,), np.float32))
    counter = tf.Variable(0.0)

    def f(x):
        if tf.reduce_sum(x) > 0.0:
            counter.assign_add(1.0)          # no data output: a control output of the branch
            y = x * v
        else:
            y = x - v
        return y + counter.read_value()

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir, _ = lower_for(gd)
    assert not FUNCTIONAL & set(ops_of(ir))
    want = [np.asarray(cf(tf.constant(X)))]
    counter.assign(0.0)
    assert_same(run_graph_def(ir.lower(), cf, X), want)
    assert any(ir[n].op == "Switch" and ir[n].attrs["T"].type == tf.resource.as_datatype_enum for n in
               [n.name for n in ir.nodes])


@pytest.mark.parametrize("index", [0, 1, 2, 7, -1])
def test_case_lowered_including_out_of_range_index(index):
    def f(x, i):
        return tf.switch_case(i, [lambda: x + 1.0, lambda: x * 3.0, lambda: tf.sin(x)])

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.int32))
    assert {"Case", "StatelessCase"} & {n.op for n in gd.node}
    ir, _ = lower_for(gd)
    assert not FUNCTIONAL & set(ops_of(ir))
    got = run_graph_def(ir.lower(), cf, X, np.int32(index))
    want = {0: X + 1.0, 1: X * 3.0}.get(index, np.sin(X))  # out of range runs the last branch
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


# ---------------------------------------------------------------------------
# While


def nested_loops(x, n):
    h = x
    i = tf.constant(0)
    while i < n:
        if tf.reduce_mean(h) > 0.1:
            j = tf.constant(0)
            while j < 2:                # a loop in a branch in a loop
                h = h * 0.9
                j += 1
        else:
            h = h + 0.3
        k = tf.constant(0)
        while k < i:                    # a loop in a loop, trip count from the outer one
            h = tf.tanh(h) + 0.01
            k += 1
        i += 1
    return h, i


def test_nested_while_and_cond_lowered_and_run():
    cf, gd = traced(nested_loops, tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.int32))
    ir, lowering = lower_for(gd)
    ops = ops_of(ir)
    assert not FUNCTIONAL & set(ops), ops
    assert sum(len(v) for k, v in lowering.lowered.items() if "While" in k) == 3
    enters = [n for n in ir.nodes if n.op == "Enter"]
    frames = {n.attrs["frame_name"].s for n in enters}
    assert len(frames) == 3
    for n in (0, 1, 4):
        assert_same(run_graph_def(ir.lower(), cf, X, np.int32(n)), eager(cf, X, np.int32(n)))


def test_while_frame_attrs_and_loop_invariant_resources():
    w = tf.Variable(np.eye(3, dtype=np.float32) * 0.5)

    def f(x):
        return tf.while_loop(lambda i, h: i < 5, lambda i, h: (i + 1, tf.matmul(h, w) + 1.0),
                             (tf.constant(0), x), parallel_iterations=7)[1]

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir, _ = lower_for(gd)
    enters = [n for n in ir.nodes if n.op == "Enter"]
    assert {n.attrs["parallel_iterations"].i for n in enters} == {7}
    resource = [n for n in enters if n.attrs["T"].type == tf.resource.as_datatype_enum]
    assert resource and all(n.attrs["is_constant"].b for n in resource)
    # an invariant has no Merge/Switch/NextIteration/Exit of its own
    assert not any(ir[c].op == "Merge" for n in resource for c, _ in ir.consumers(Tensor(n.name, 0)))
    assert_same(run_graph_def(ir.lower(), cf, X), eager(cf, X))


def test_while_control_inputs_and_control_consumers_are_kept():
    v = tf.Variable(1.0)

    def f(x):
        with tf.control_dependencies([v.assign(2.0)]):
            out = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, h * v), (tf.constant(0), x))[1]
        return out

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir, _ = lower_for(gd)
    want = [np.asarray(cf(tf.constant(X)))]
    v.assign(1.0)
    assert_same(run_graph_def(ir.lower(), cf, X), want)


def test_not_lowered_when_the_target_runs_it():
    cf, gd = traced(nested_loops, tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.int32))
    ir = lift(gd)
    for release, expected in (("2.21", False), ("1.15", False), ("1.8", True), ("1.4", True)):
        opset = catalog().opset(release)
        assert any(needs_lowering(n, opset) for n in ir.nodes) is expected, release
    before = ir.lower().SerializeToString()
    lower_all(ir, catalog().opset("2.21"))
    assert ir.lower().SerializeToString() == before
    # TF 1.x runtimes lower functional ops only partly (TF 1.14 refuses a Case marked for lowering):
    # those in the top graph are lowered for any TF 1.x target
    lower_all(ir, catalog().opset("1.15"))
    assert not FUNCTIONAL & set(ops_of(ir))


def test_lowered_graph_validates_for_old_targets():
    cf, gd = traced(nested_loops, tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.int32))
    ir, _ = lower_for(gd, "1.8", force=False)
    problems = [p for p in validate(ir, catalog().opset("1.8")) if p.kind != "unknown-attr"]
    assert not [p for p in problems if p.op in FUNCTIONAL or p.op in ("Enter", "Merge", "Switch")], problems


# ---------------------------------------------------------------------------
# TensorLists


def rnn_like(x):
    """What Keras RNNs trace: read x[t] from a list, write outputs (all, and the last at index 0)."""
    steps = tf.shape(x)[0]
    inputs = tf.TensorArray(tf.float32, size=steps).unstack(x)
    every = tf.TensorArray(tf.float32, size=steps, element_shape=tf.TensorShape([None, 3]))
    last = tf.TensorArray(tf.float32, size=1)          # unknown element rank, rewritten each step
    h = tf.zeros_like(x[0])

    def body(t, h, every, last):
        h = tf.tanh(inputs.read(t) + h * 0.5)
        return t + 1, h, every.write(t, h), last.write(0, h)

    _, h, every, last = tf.while_loop(lambda t, *_: t < steps, body, (0, h, every, last))
    return every.stack(), last.stack(), h, every.size()


def test_tensor_lists_become_dense_tensors():
    x = np.random.RandomState(3).randn(5, 2, 3).astype(np.float32)
    cf, gd = traced(rnn_like, tf.TensorSpec([None, None, 3], tf.float32))
    assert any(n.op.startswith("TensorList") for f in gd.library.function for n in f.node_def)
    ir, lowering = lower_for(gd)
    assert lowering.dense_lists and not lowering.refused
    ops = ops_of(ir)
    assert not [op for op in ops if op.startswith("TensorList")], ops
    assert not any(n.attrs.get("T") is not None and n.attrs["T"].type == tf.variant.as_datatype_enum
                   for n in ir.nodes)
    assert_same(run_graph_def(ir.lower(), cf, x), eager(cf, x))


def test_tensor_lists_kept_where_the_target_has_them():
    cf, gd = traced(rnn_like, tf.TensorSpec([None, None, 3], tf.float32))
    ir = lift(gd)
    InlineCalls(force=True).run(ir, context_for(catalog().opset("1.15")))
    assert not tensor_lists_need_lowering(ir, catalog().opset("1.15"))
    assert tensor_lists_need_lowering(ir, catalog().opset("1.8"))


def test_tensor_list_rewrite_is_all_or_nothing():
    def f(x):
        handle = tf.raw_ops.TensorListFromTensor(tensor=x, element_shape=tf.constant([3]))
        item = tf.raw_ops.TensorListGetItem(input_handle=handle, index=1, element_shape=tf.constant([3]),
                                            element_dtype=tf.float32)
        return item, tf.raw_ops.ZerosLike(x=handle)     # a list read by an op without a dense form

    _, gd = traced(f, tf.TensorSpec([4, 3], tf.float32))
    ir = lift(gd)
    before = ir.lower().SerializeToString()
    with pytest.raises(LoweringError, match="reads TensorList"):
        TensorListRewriter(ir).run()
    assert ir.lower().SerializeToString() == before
    lowering = lower_all(ir, catalog().opset("1.8"))
    assert any("TensorLists kept" in why for why in lowering.refused.values())
    assert ir.lower().SerializeToString() == before


def test_list_ops_cover_keras_rnn_ops():
    for op in ("TensorListReserve", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem",
               "TensorListStack"):
        assert op in LIST_OPS


def every_list_op(x, declared):
    """Each TensorList op with a dense form, on lists made three ways."""
    lst = tf.raw_ops.TensorListFromTensor(tensor=x, element_shape=declared)
    longer = tf.raw_ops.TensorListPushBack(input_handle=lst, tensor=x[0] * 2.0)
    shorter, last = tf.raw_ops.TensorListPopBack(input_handle=longer, element_shape=declared,
                                                 element_dtype=tf.float32)
    empty = tf.raw_ops.EmptyTensorList(element_shape=tf.constant([3]), max_num_elements=-1,
                                       element_dtype=tf.float32)
    grown = tf.raw_ops.TensorListPushBack(input_handle=tf.raw_ops.TensorListPushBack(input_handle=empty, tensor=x[1]),
                                          tensor=x[2])
    reserved = tf.raw_ops.TensorListReserve(element_shape=tf.constant([-1], tf.int32), num_elements=3,
                                            element_dtype=tf.float32)
    written = tf.raw_ops.TensorListSetItem(input_handle=reserved, index=2, item=x[3])
    written = tf.raw_ops.TensorListSetItem(input_handle=written, index=0, item=x[0])
    written = tf.raw_ops.TensorListSetItem(input_handle=written, index=0, item=x[1])   # overwrite: allowed
    return (tf.raw_ops.TensorListLength(input_handle=lst),
            tf.raw_ops.TensorListElementShape(input_handle=lst, shape_type=tf.int32),
            last,
            tf.raw_ops.TensorListGather(input_handle=shorter, indices=[2, 0], element_shape=declared,
                                        element_dtype=tf.float32),
            tf.raw_ops.TensorListStack(input_handle=grown, element_shape=tf.constant([3]), element_dtype=tf.float32),
            tf.raw_ops.TensorListLength(input_handle=shorter),
            tf.raw_ops.TensorListGetItem(input_handle=written, index=2, element_shape=declared,
                                         element_dtype=tf.float32),
            tf.raw_ops.TensorListStack(input_handle=written, element_shape=declared, element_dtype=tf.float32,
                                       num_elements=3))


def test_every_list_op_has_an_exact_dense_form():
    x = np.random.RandomState(1).randn(4, 3).astype(np.float32)
    cf, gd = traced(lambda x: every_list_op(x, tf.constant([3])), tf.TensorSpec([4, 3], tf.float32))
    ir, lowering = lower_for(gd)
    assert not lowering.refused and not [op for op in ops_of(ir) if "TensorList" in op]
    assert_same(run_graph_def(ir.lower(), cf, x), eager(cf, x))


def test_element_shape_of_a_partly_known_list_is_refused():
    """TensorListElementShape answers the declared shape ([-1]), which the dense form no longer knows."""
    cf, gd = traced(lambda x: every_list_op(x, tf.constant([-1])), tf.TensorSpec([4, 3], tf.float32))
    ir, lowering = lower_for(gd)
    assert any("not fully known" in why for why in lowering.refused.values())
    assert "TensorListElementShape" in ops_of(ir)
