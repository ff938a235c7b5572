"""Inlining StatefulPartitionedCall / PartitionedCall / direct function calls.

Graphs come from the host TF; the inlined graph runs in the host TF (v1
session) and must give the function's own numbers.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from test_lower_control_flow import X, assert_same, eager, ops_of, run_graph_def, traced  # noqa: E402
from transpiler.ir.attrs import make_attr  # noqa: E402
from transpiler.passes.base import context_for  # noqa: E402
from transpiler.passes.functional import CALL_OPS  # noqa: E402
from transpiler.passes.inline_calls import InlineCalls, saved_object_functions  # noqa: E402
from transpiler.passes.inliner import inline_call, prune_functions  # noqa: E402
from transpiler.passes.save_only_ops import SaveOnlyOps  # noqa: E402
from transpiler.ir.graph import ARG_OP, Function, Tensor, lift  # noqa: E402
from transpiler.io.protos import function_pb2, graph_pb2, meta_graph_pb2  # noqa: E402
from transpiler.knowledge.releases import catalog  # noqa: E402

OPSET_18 = catalog().opset("1.8")
OPSET_221 = catalog().opset("2.21")


#: Variables the traced functions capture must outlive the tracing helpers.
_ALIVE = []


def layered():
    w = tf.Variable(np.full((3, 3), 0.25, np.float32))
    _ALIVE.append(w)

    @tf.function
    def inner(h):
        return tf.nn.relu(tf.matmul(h, w) - 0.1), tf.reduce_sum(h)

    @tf.function
    def middle(h):
        a, s = inner(h)
        return inner(a * 2.0)[0] + s

    def outer(x):
        return middle(x) + 1.0, inner(x)[1]

    return outer


def test_nested_calls_inlined_and_run():
    cf, gd = traced(layered(), tf.TensorSpec([None, 3], tf.float32))
    assert {n.op for n in gd.node} & set(CALL_OPS)
    ir = lift(gd)
    inliner = InlineCalls()
    inliner.run(ir, context_for(OPSET_18))
    assert not set(ops_of(ir)) & set(CALL_OPS)
    assert not ir.functions, "functions nothing calls are pruned"
    assert len(inliner.inlined) >= 4
    assert_same(run_graph_def(ir.lower(), cf, X), eager(cf, X))


def test_call_names_stay_fetchable_and_body_names_are_prefixed():
    cf, gd = traced(layered(), tf.TensorSpec([None, 3], tf.float32))
    calls = [n.name for n in gd.node if n.op in CALL_OPS]
    ir = lift(gd)
    InlineCalls().run(ir, context_for(OPSET_18))
    for name in calls:
        assert ir[name].op == "IdentityN", name
        assert any(n.name.startswith(name + "/") for n in ir.nodes)
    # the same input gives the same names (deterministic)
    again = lift(gd)
    InlineCalls().run(again, context_for(OPSET_18))
    assert [n.name for n in again.nodes] == [n.name for n in ir.nodes]


def test_not_inlined_when_the_target_has_the_call_ops():
    _, gd = traced(layered(), tf.TensorSpec([None, 3], tf.float32))
    ir = lift(gd)
    before = ir.lower().SerializeToString()
    InlineCalls().run(ir, context_for(OPSET_221))
    assert ir.lower().SerializeToString() == before
    InlineCalls(force=True).run(ir, context_for(OPSET_221))
    assert not set(ops_of(ir)) & set(CALL_OPS)


def test_calls_inside_branch_functions_inlined_when_forced():
    @tf.function
    def helper(h):
        return h * 3.0

    def f(x):
        if tf.reduce_sum(x) > 0:
            y = helper(x)
        else:
            y = x
        return y

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir = lift(gd)
    InlineCalls(force=True).run(ir, context_for(OPSET_221))
    assert {n.op for n in ir.nodes} & {"If", "StatelessIf"}, "a 2.21 target keeps functional control flow"
    assert not set(ops_of(ir)) & set(CALL_OPS)
    assert all(name in ir.functions for n in ir.nodes if n.op.endswith("If")
               for name in (n.attrs["then_branch"].func.name, n.attrs["else_branch"].func.name))
    for x in (X, -np.abs(X)):
        assert_same(run_graph_def(ir.lower(), cf, x), eager(cf, x))


def test_side_effects_in_control_ret_run_when_the_output_is_fetched():
    v = tf.Variable(0.0)

    @tf.function
    def bump(x):
        v.assign_add(1.0)              # not on the data path: only a control output
        return x * 2.0

    def f(x):
        return bump(x)

    cf, gd = traced(f, tf.TensorSpec([None, 3], tf.float32))
    ir = lift(gd)
    InlineCalls().run(ir, context_for(OPSET_18))
    [call] = [n.name for n in gd.node if n.op in CALL_OPS]
    assert any(ir[c].op == "AssignAddVariableOp" for c in ir.control_inputs(call))
    gd2 = ir.lower()
    # fetch the assigned value after the call: the graph's own Identity waits on the call (auto control deps)
    assert_same(run_graph_def(gd2, cf, X), [X * 2.0])


# ---------------------------------------------------------------------------
# hand-built IR: control inputs, devices, colocation, direct calls


def _function(name, args, body, ret, control_ret=None):
    fdef = function_pb2.FunctionDef()
    fdef.signature.name = name
    for arg in args:
        a = fdef.signature.input_arg.add()
        a.name, a.type = arg, tf.float32.as_datatype_enum
    for out in ret:
        a = fdef.signature.output_arg.add()
        a.name, a.type = out, tf.float32.as_datatype_enum
    for node in body:
        fdef.node_def.add().CopyFrom(node)
    for out, tensor in ret.items():
        fdef.ret[out] = tensor
    for key, value in (control_ret or {}).items():
        fdef.control_ret[key] = value
    return fdef


def _node(name, op, inputs=(), device="", **attrs):
    from transpiler.io.protos import node_def_pb2

    nd = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs), device=device)
    for key, (kind, value) in attrs.items():
        nd.attr[key].CopyFrom(make_attr(kind, value))
    return nd


def _const(name, value, **kw):
    return _node(name, "Const", kw.pop("inputs", ()), dtype=("type", "DT_FLOAT"),
                 value=("tensor", {"dtype": "DT_FLOAT", "shape": [], "values": [value]}), **kw)


def hand_built():
    body = [
        _const("c", 2.0),
        _node("mul", "Mul", ["a", "c:output:0"], T=("type", "DT_FLOAT"), _class=("list(string)", ["loc:@c"])),
        _node("gpu", "Identity", ["mul:z:0"], device="/device:CPU:0", T=("type", "DT_FLOAT")),
        _node("nop", "NoOp", ["^gpu"]),
        _node("neg", "Neg", ["a"], T=("type", "DT_FLOAT")),
    ]
    fdef = _function("f", ["a"], body, {"out": "gpu:output:0"}, {"nop": "nop"})
    gd = graph_pb2.GraphDef()
    gd.node.add().CopyFrom(_node("x", "Placeholder", dtype=("type", "DT_FLOAT")))
    gd.node.add().CopyFrom(_node("before", "NoOp"))
    gd.node.add().CopyFrom(_node("call", "f", ["x", "^before"], device="/device:CPU:0"))
    gd.node.add().CopyFrom(_node("y", "Identity", ["call"], T=("type", "DT_FLOAT")))
    gd.node.add().CopyFrom(_node("after", "NoOp", ["^call"]))
    gd.library.function.add().CopyFrom(fdef)
    return gd


def test_direct_calls_kept_unless_forced():
    ir = lift(hand_built())
    InlineCalls().run(ir, context_for(OPSET_18))
    assert ir["call"].op == "f", "TF 1.x runs direct calls of library functions"


def test_direct_call_control_inputs_gate_the_body():
    ir = lift(hand_built())
    InlineCalls(force=True).run(ir, context_for(OPSET_18))
    gate = "call/input_control_node"
    assert ir[gate].op == "NoOp" and ir.control_inputs(gate) == ["before"]
    assert gate in ir.control_inputs("call/c")
    assert gate in ir.control_inputs("call/neg"), "a node reading only arguments waits for the call's control inputs"
    assert gate not in ir.control_inputs("call/mul"), "nodes fed by the body need no gate"
    assert ir.inputs("y") == [Tensor("call/gpu", 0)], "readers read the body result directly"
    assert ir["call"].op == "IdentityN" and "call/nop" in ir.control_inputs("call")
    assert ir.control_inputs("after") == ["call"]
    assert not ir.functions


def test_devices_and_colocation_follow_the_call():
    ir = lift(hand_built())
    InlineCalls(force=True).run(ir, context_for(OPSET_18))
    assert ir["call/c"].device == "/device:CPU:0" and ir["call/gpu"].device == "/device:CPU:0"
    assert list(ir["call/mul"].attrs["_class"].list.s) == [b"loc:@call/c"]


def test_constants_anchor_to_the_first_input_without_control_inputs():
    gd = hand_built()
    del gd.node[2].input[1]           # no ^before
    ir = lift(gd)
    inline_call(ir, ir, "call")
    gate = "call/input_control_node"
    assert ir[gate].op == "Identity" and ir.inputs(gate) == [Tensor("x", 0)]
    assert ir.control_inputs("call/c") == [gate], "a Const in a frame or branch stays there"
    assert gate not in ir.control_inputs("call/mul") and not ir.control_inputs("call/neg")


def test_inlined_hand_built_graph_runs():
    ir = lift(hand_built())
    InlineCalls(force=True).run(ir, context_for(OPSET_18))
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(ir.lower(), name="")
        with tf.compat.v1.Session(graph=g) as sess:
            y, call = sess.run(["y:0", "call:0"], {"x:0": 1.5})
    assert y == call == 3.0


def test_name_clashes_get_deterministic_suffixes():
    gd = hand_built()
    gd.node.add().CopyFrom(_node("call/c", "NoOp"))       # an existing node with a body node's name
    ir = lift(gd)
    InlineCalls(force=True).run(ir, context_for(OPSET_18))
    assert ir["call/c"].op == "NoOp" and ir["call/c_1"].op == "Const"


def test_prune_keeps_functions_named_by_attrs_and_gradients():
    gd = hand_built()
    gd.library.function.add().CopyFrom(_function("unused", ["a"], [], {"out": "a"}))
    gd.library.function.add().CopyFrom(_function("grad_of_f", ["a"], [], {"out": "a"}))
    gd.library.gradient.add(function_name="f", gradient_func="grad_of_f")
    ir = lift(gd)
    assert prune_functions(ir) == ["unused"]
    assert set(ir.functions) == {"f", "grad_of_f"}
    ir.remove_node("y")
    ir.remove_node("call")
    assert prune_functions(ir, keep=["f"]) == []


def test_saved_object_functions_only_for_tf2_targets():
    mg = meta_graph_pb2.MetaGraphDef()
    mg.object_graph_def.concrete_functions["__inference_f_12"].SetInParent()
    assert saved_object_functions(mg, OPSET_18) == []
    assert saved_object_functions(mg, OPSET_221) == ["__inference_f_12"]


def test_disable_copy_on_read_becomes_noop_for_old_targets():
    body = [_node("d", "DisableCopyOnRead", ["r"]), _node("read", "ReadVariableOp", ["r", "^d"],
                                                           dtype=("type", "DT_FLOAT"))]
    fdef = _function("save", ["r"], body, {}, {"d": "d"})
    fdef.signature.input_arg[0].type = tf.resource.as_datatype_enum
    gd = graph_pb2.GraphDef()
    gd.library.function.add().CopyFrom(fdef)
    ir = lift(gd)
    fn = ir.functions["save"]
    assert isinstance(fn, Function) and fn["d"].op == "DisableCopyOnRead"
    SaveOnlyOps().run(ir, context_for(OPSET_221))
    assert fn["d"].op == "DisableCopyOnRead"
    SaveOnlyOps().run(ir, context_for(OPSET_18))
    assert fn["d"].op == "NoOp" and fn.inputs("d") == [] and fn.control_inputs("read") == ["d"]
    assert fn.nx.nodes["r"]["node"].op == ARG_OP


# ---------------------------------------------------------------------------
# recursive function libraries are refused before anything is inlined (issue 13)


def _calling(name, target, how):
    """Function `name`(a) returning what `target` returns for a: through a call op's `f` attr, or directly."""
    if how == "direct":
        call = _node("call", target, ["a"])
    else:
        call = _node("call", how, ["a"], f=("func", target), Tin=("list(type)", ["DT_FLOAT"]),
                     Tout=("list(type)", ["DT_FLOAT"]))
    return _function(name, ["a"], [call], {"out": "call:output:0"})


def _recursive_graph(library, how):
    """A graph calling `library[0]`'s function; each function calls the next one, the last the first."""
    gd = graph_pb2.GraphDef()
    gd.node.add().CopyFrom(_node("x", "Placeholder", dtype=("type", "DT_FLOAT")))
    gd.node.add().CopyFrom(_node("y", "StatefulPartitionedCall", ["x"], f=("func", library[0]),
                                 Tin=("list(type)", ["DT_FLOAT"]), Tout=("list(type)", ["DT_FLOAT"])))
    for name, target in zip(library, library[1:] + library[:1]):
        gd.library.function.add().CopyFrom(_calling(name, target, how))
    return gd


@pytest.mark.parametrize("how", ["StatefulPartitionedCall", "PartitionedCall", "direct"])
@pytest.mark.parametrize("library", [["f"], ["f", "g"], ["f", "g", "h"]], ids=["f-f", "f-g-f", "f-g-h-f"])
def test_recursive_functions_are_refused_naming_them(library, how):
    import time

    from transpiler.passes.inliner import InliningError

    ir = lift(_recursive_graph(library, how))
    start = time.monotonic()
    with pytest.raises(InliningError) as err:
        InlineCalls(force=True).run(ir, context_for(OPSET_18))
    assert time.monotonic() - start < 1
    assert str(err.value) == "recursive functions cannot be inlined: " + " -> ".join(library + library[:1])
    assert ir["y"].op == "StatefulPartitionedCall", "refused before anything was inlined"


def test_recursion_through_a_branch_function_is_refused():
    """f's If takes g as its then-branch and g calls f: lowering would inline that forever too."""
    from transpiler.passes.inliner import InliningError, check_no_recursion

    gd = _recursive_graph(["f", "g"], "PartitionedCall")
    f = gd.library.function[0]
    f.node_def[0].CopyFrom(_node("call", "If", ["a", "a"], then_branch=("func", "g"), else_branch=("func", "g"),
                                 Tcond=("type", "DT_FLOAT"), Tin=("list(type)", ["DT_FLOAT"]),
                                 Tout=("list(type)", ["DT_FLOAT"])))
    with pytest.raises(InliningError, match="f -> g -> f"):
        check_no_recursion(lift(gd))


def test_unreachable_recursion_and_plain_libraries_pass():
    from transpiler.passes.inliner import check_no_recursion

    gd = hand_built()
    gd.library.function.add().CopyFrom(_calling("lonely", "lonely", "direct"))  # nothing calls it
    check_no_recursion(lift(gd))
    InlineCalls(force=True).run(lift(gd), context_for(OPSET_18))


def test_recursive_model_on_the_cli_is_one_line(cli, tmp_path):
    from transpiler.io.protos import text_format

    path = tmp_path / "recursive.pbtxt"
    path.write_text(text_format.MessageToString(_recursive_graph(["f", "g"], "PartitionedCall")))
    result = cli(path, tmp_path / "out.pbtxt", "--to", "1.8")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["tf-transpile: error: recursive functions cannot be inlined: f -> g -> f"]
    assert not (tmp_path / "out.pbtxt").exists()


# ---------------------------------------------------------------------------
# a callee's body is read once per pass (inliner.Bodies), and again once it changes


def _twice_called():
    """x -> y1 = g(x), y2 = g(y1), where g(a) = f(a) through a call op, f as in hand_built."""
    gd = hand_built()
    gd.library.function.add().CopyFrom(_calling("g", "f", "StatefulPartitionedCall"))
    for name, source in (("y1", "x"), ("y2", "y1")):
        gd.node.add().CopyFrom(_node(name, "StatefulPartitionedCall", [source], f=("func", "g"),
                                     Tin=("list(type)", ["DT_FLOAT"]), Tout=("list(type)", ["DT_FLOAT"])))
    return gd


def test_a_function_called_twice_is_inlined_whole_at_both_calls():
    ir = lift(_twice_called())
    InlineCalls(force=True).run(ir, context_for(OPSET_18))
    for call in ("y1", "y2"):
        assert ir[call + "/call/mul"].op == "Mul" and ir[call + "/call/c"].op == "Const"
    assert ir.inputs("y1/call/mul")[0] == Tensor("x", 0)
    assert ir.inputs("y2/call/mul")[0] == Tensor("y1/call/gpu", 0), "the second copy reads its own call's input"
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(ir.lower(), name="")
        with tf.compat.v1.Session(graph=g) as sess:
            assert sess.run("y2:0", {"x:0": 1.5}) == 6.0


def test_a_cached_body_is_read_again_after_it_changes():
    from transpiler.passes.inliner import Bodies

    ir = lift(_twice_called())
    bodies = Bodies()
    g = ir.functions["g"]
    first, _ = bodies.read(ir, g, 1)
    assert [n.op for n in first.nodes] == ["StatefulPartitionedCall"]
    assert bodies.read(ir, g, 1)[0] is first, "unchanged: not read again"
    inline_call(ir, g, "call", bodies)   # f into g: g's body changes
    bodies.forget("g")
    again, _ = bodies.read(ir, g, 1)
    assert "Mul" in [n.op for n in again.nodes]
    from transpiler.passes.inliner import InliningError

    with pytest.raises(InliningError, match="2 inputs for 1 arguments"):
        bodies.read(ir, g, 2)
