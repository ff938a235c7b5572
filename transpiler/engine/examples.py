"""Run a rule's own examples: the original op vs. its rewrite, in the host TF.

An example gives the matched node's inputs (dtype, shape, optional values or
range) and attrs. We build a one-node graph, run it, apply the rules for a
target where the rule is active, run the rewrite on the same inputs, and
compare every output the original had.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import List, Optional

import numpy as np

from transpiler.ir.attrs import dtype_enum, make_attr
from transpiler.ir.graph import lift
from transpiler.io.protos import graph_pb2, types_pb2
from transpiler.knowledge.releases import Catalog, catalog
from transpiler.engine.rule_pass import RulePass
from transpiler.knowledge.opdefs import output_ports
from transpiler.engine import RuleError
from transpiler.engine.rule_files import Rule, load_rules
from transpiler.io.tf_runtime import run_graph

NODE = "subject"

#: Runs an example's original op in the real release its `reference` names, for
#: ops the host TF cannot run (tf.contrib ops, ops deprecated at an older
#: GraphDef version): ``(release, graph_def, feeds, fetches) -> [arrays]``. The
#: test suite installs one backed by transpiler/runtimes/provision.py.
reference_runner = None


@dataclasses.dataclass
class ExampleResult:
    rule: str
    index: int
    target: str
    #: None: not run here (the original op needs a real old release; pytest provides one).
    ok: Optional[bool]
    message: str


def target_for(rule: Rule, cat: Catalog, rules: List[Rule], options: Optional[dict] = None) -> Optional[str]:
    """The newest known release for which `rule` is active (with the example's options)."""
    for release in reversed(cat.releases):
        if any(r.id == rule.id for r in RulePass(rules, cat.opset(release), options).rules):
            return release
    return None


def run_examples(rule: Rule, rules: Optional[List[Rule]] = None, seed: int = 0) -> List[ExampleResult]:
    rules = rules if rules is not None else load_rules()
    cat = catalog()
    results = []
    for index, example in enumerate(rule.examples):
        options = example.get("options")
        target = example.get("target") or target_for(rule, cat, rules, options)
        if target is None:
            results.append(ExampleResult(rule.id, index, "-", False, "rule is active for no known release"))
            continue
        target = cat.resolve(target)
        results.append(_run_one(rule, index, example, RulePass(rules, cat.opset(target), options), seed))
    return results


def _run_one(rule: Rule, index: int, example: dict, rules: RulePass, seed: int) -> ExampleResult:
    def result(ok: bool, message: str) -> ExampleResult:
        return ExampleResult(rule.id, index, rules.opset.release, ok, message)

    graph_def, feeds = build_example(rule, example, rules, np.random.default_rng(seed + index))
    ports = output_ports(rules.source_def(rule.op), lift(graph_def)[NODE].attrs, False)
    outputs = ["%s:%d" % (NODE, i) for i in ports] or _read_variables_after(graph_def, example)
    ir = lift(graph_def)
    outputs = [o for i, o in enumerate(outputs) if i not in (example.get("ignore_outputs") or [])]
    reference = example.get("reference")
    if reference and reference_runner is None:
        return ExampleResult(rule.id, index, rules.opset.release, None,
                             "not run here: the original op runs only in real TF %s (pytest runs it there)" % reference)
    expected = (reference_runner(reference, graph_def, feeds, outputs) if reference
                else run_graph(graph_def, feeds, outputs, init_targets(graph_def)))
    # Read each compared output through an Identity, as a consumer in a real graph would: a rewrite may
    # hand an output to another node than the one that keeps the name (e.g. NMS valid_outputs).
    fetches = []
    for i, (output, value) in enumerate(zip(outputs, expected)):
        fetches.append("%s/fetch_%d" % (NODE, i))
        ir.add_node(fetches[-1], "Identity", [output], {"T": make_attr("type", _dtype_of(value))})
    outputs = [f + ":0" for f in fetches]
    rules(ir)
    if not any(f.rule == rule.id for f in rules.fired):
        return result(False, "the rule did not fire on its example")
    leftover = sorted({n.op for n in ir.nodes if not rules.opset.has_op(n.op)})
    if leftover:
        return result(False, "rewrite still uses ops TF %s lacks: %s" % (rules.opset.release, ", ".join(leftover)))
    got = run_graph(ir.lower(), feeds, outputs, init_targets(graph_def))
    tolerance = example.get("tolerance", 1e-5)
    for name, want, have in zip(outputs, expected, got):
        problem = compare(want, have, tolerance)
        if problem:
            return result(False, "%s: %s" % (name, problem))
    return result(True, "%d output(s) match" % len(outputs))


def compare(want: np.ndarray, have: np.ndarray, tolerance: float) -> Optional[str]:
    want, have = np.asarray(want), np.asarray(have)
    if want.shape != have.shape:
        return "shape %s, expected %s" % (have.shape, want.shape)
    if want.dtype != have.dtype:
        return "dtype %s, expected %s" % (have.dtype, want.dtype)
    if want.dtype.kind in "fc":
        if not np.allclose(want, have, rtol=tolerance, atol=tolerance, equal_nan=True):
            return "max abs difference %g (tolerance %g)" % (np.max(np.abs(want - have)), tolerance)
    elif not np.array_equal(want, have):
        return "values differ"
    return None


def build_example(rule: Rule, example: dict, rules: RulePass, rng, sample: bool = True) -> tuple:
    """A GraphDef with one placeholder per input and the node under test named NODE (feeds only if `sample`)."""
    source = rules.source_def(rule.op)
    if source is None:  # a typo in match.op: no example can be built
        raise RuleError("field 'match.op': %s" % rules.catalog.unknown_op(rule.op))
    graph_def = graph_pb2.GraphDef()
    feeds, inputs = {}, []
    for i, spec in enumerate(example.get("inputs") or []):
        name = "input_%d" % i
        dtype = dtype_enum(spec.get("dtype", "DT_FLOAT"))
        if spec.get("variable"):  # a resource variable holding the sample, set by `<name>/init`
            _add_variable(graph_def, name, dtype, _sample(spec, dtype, rng) if sample else np.zeros(spec["shape"]))
            inputs.append(name)
            continue
        if spec.get("const"):  # a Const input, for rules that look at constant values (match.const_inputs, const(i))
            node = graph_def.node.add(name=name, op="Const")
            node.attr["dtype"].type = dtype
            node.attr["value"].tensor.ParseFromString(_const_tensor(_sample(spec, dtype, rng), dtype))
            inputs.append(name)
            continue
        node = graph_def.node.add(name=name, op="Placeholder")
        node.attr["dtype"].type = dtype
        if sample:
            feeds[name + ":0"] = _sample(spec, dtype, rng)
        inputs.append(name)
    node = graph_def.node.add(name=NODE, op=rule.op, input=inputs)
    attr_types = {a.name: a.type for a in source.attr}
    for attr, value in (example.get("attrs") or {}).items():
        if attr not in attr_types:
            close = difflib.get_close_matches(attr, sorted(attr_types), n=3)
            raise RuleError("field 'attrs': op %s has no attr '%s'%s"
                            % (rule.op, attr, "; did you mean %s?" % " or ".join(close) if close else ""))
        node.attr[attr].CopyFrom(make_attr(attr_types[attr], value))
    graph_def.versions.producer = rules.catalog.info[rules.catalog.releases[-1]]["graph_def_version"]
    return graph_def, feeds


def _add_variable(graph_def, name: str, dtype: int, value: np.ndarray) -> None:
    handle = graph_def.node.add(name=name, op="VarHandleOp")
    handle.attr["dtype"].type = dtype
    handle.attr["shape"].shape.CopyFrom(make_attr("shape", list(value.shape)).shape)
    handle.attr["shared_name"].s = name.encode()
    init = graph_def.node.add(name=name + "/value", op="Const")
    init.attr["dtype"].type = dtype
    init.attr["value"].tensor.ParseFromString(_const_tensor(value, dtype))
    assign = graph_def.node.add(name=name + "/init", op="AssignVariableOp", input=[name, name + "/value"])
    assign.attr["dtype"].type = dtype


def _read_variables_after(graph_def, example: dict) -> List[str]:
    """For an op without outputs (a resource update such as ResourceApply*): what it did is the values of its
    variable inputs, read after it ran (a ReadVariableOp with a control edge from the op, which a rewrite
    hands to the node that takes over its control output)."""
    reads = []
    for i, spec in enumerate(example.get("inputs") or []):
        if spec.get("variable"):
            read = graph_def.node.add(name="%s/read_%d" % (NODE, i), op="ReadVariableOp",
                                      input=["input_%d" % i, "^" + NODE])
            read.attr["dtype"].type = dtype_enum(spec.get("dtype", "DT_FLOAT"))
            reads.append(read.name + ":0")
    return reads


def init_targets(graph_def) -> List[str]:
    """The example's variable initializers, run before anything is fetched."""
    return [n.name for n in graph_def.node if n.name.startswith("input_") and n.name.endswith("/init")]


def _dtype_of(value) -> int:
    from transpiler.io.tf_runtime import tf

    value = np.asarray(value)
    return types_pb2.DT_STRING if value.dtype.kind in "OSU" else tf().as_dtype(value.dtype).as_datatype_enum


def _const_tensor(value: np.ndarray, dtype: int):
    from transpiler.io.tf_runtime import tf

    return tf().make_tensor_proto(value, dtype=tf().dtypes.as_dtype(dtype), shape=value.shape).SerializeToString()


def _sample(spec: dict, dtype: int, rng) -> np.ndarray:
    np_dtype = {types_pb2.DT_STRING: object}.get(dtype) or _np_dtype(dtype)
    shape = spec.get("shape", [])
    if "values" in spec:
        return np.array(spec["values"], dtype=np_dtype).reshape(shape)
    low, high = spec.get("range", [-3, 3])
    if np_dtype == np.bool_:
        return rng.random(shape) < 0.5
    values = rng.uniform(low, high, size=shape)
    return values.astype(np_dtype)


def _np_dtype(dtype: int):
    from transpiler.io.tf_runtime import tf

    return tf().dtypes.as_dtype(dtype).as_numpy_dtype
