"""The static check's input-rank verdicts (passes/validate.py with opsets.json `refused_ranks`, which
tools/dump_ranks.py reads off each real release's shape functions)."""

import pytest

from transpiler.io.protos import graph_pb2, text_format
from transpiler.ir.graph import lift
from transpiler.knowledge.releases import catalog
from transpiler.passes.validate import validate

MATMUL = """
node { name: "a" op: "%(a_op)s" attr { key: "dtype" value { type: DT_FLOAT } } %(a_attr)s }
node { name: "a_id" op: "Identity" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "b" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: -1 } dim { size: 2 } } } } }
node { name: "mm" op: "MatMul" input: "a_id" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
versions { producer: %(producer)d }
"""
SCALAR_CONST = 'attr { key: "value" value { tensor { dtype: DT_FLOAT float_val: 1.0 } } }'
EMPTY_SHAPE = 'attr { key: "shape" value { shape { } } }'


def rank_problems(a_op, a_attr, producer=26, release="1.8"):
    gd = text_format.Parse(MATMUL % dict(a_op=a_op, a_attr=a_attr, producer=producer), graph_pb2.GraphDef())
    return [p for p in validate(lift(gd), catalog().opset(release)) if p.kind == "input-rank"]


@pytest.mark.parametrize("release", ["1.4", "1.8", "1.15", "2.21"])
def test_every_release_refuses_known_ranks_its_shape_functions_refuse(release):
    refused = catalog().opset(release).refused_ranks
    assert 0 in refused("ParseExample")["serialized"] and 1 not in refused("ParseExample")["serialized"]
    assert 2 not in refused("MatMul")["a"] and {0, 1, 3} <= set(refused("MatMul")["a"])
    assert refused("Identity") == {}


def test_a_scalar_const_into_matmul_is_refused_by_node_and_input():
    [problem] = rank_problems("Const", SCALAR_CONST)
    assert problem.node == "mm" and problem.op == "MatMul"
    assert "input 'a' (a_id) has rank 0" in problem.detail and "TF 1.8" in problem.detail


def test_a_placeholder_with_an_empty_shape_is_a_scalar_only_from_graph_version_22():
    """TF reads `shape {}` as "any shape" in graphs older than version 22 (2016 exports rely on it)."""
    assert rank_problems("Placeholder", EMPTY_SHAPE, producer=21) == []
    assert len(rank_problems("Placeholder", EMPTY_SHAPE, producer=22)) == 1


def test_unknown_ranks_and_accepted_ranks_pass():
    assert rank_problems("Placeholder", 'attr { key: "shape" value { shape { unknown_rank: true } } }') == []
    assert rank_problems("Placeholder", "") == []
    two_d = 'attr { key: "shape" value { shape { dim { size: 1 } dim { size: 2 } } } }'
    assert rank_problems("Placeholder", two_d) == []


ARG_NODE = """
node { name: "x" op: "_Arg" attr { key: "T" value { type: DT_FLOAT } } attr { key: "index" value { i: 0 } } }
versions { producer: 24 }
"""


def test_an_op_only_cpp_registers_is_refused_where_the_importer_reads_the_python_registry():
    """TF 1.4's Python importer refuses `_Arg` by name (tools/dump_importer.py); 1.8 imports through C."""
    ir = lift(text_format.Parse(ARG_NODE, graph_pb2.GraphDef()))
    [problem] = validate(ir, catalog().opset("1.4"))
    assert problem.kind == "unknown-op" and problem.node == "x" and "registered in C++ only" in problem.detail
    assert catalog().opset("1.4").importer_refuses("_Arg") and not catalog().opset("1.8").importer_refuses("_Arg")
    assert not [p for p in validate(ir, catalog().opset("1.8")) if p.kind == "unknown-op"]


def test_an_integer_const_may_carry_a_value_the_shape_function_reads():
    """TensorListReserve's element_shape refuses a rank-0 Placeholder (the probe's input) but takes the
    scalar Const -1 ("unknown shape"): an integer Const's rank is not held against it."""
    gd = text_format.Parse("""
node { name: "shape" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 int_val: -1 } } } }
node { name: "n" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 int_val: 3 } } } }
node { name: "list" op: "TensorListReserve" input: "shape" input: "n"
       attr { key: "element_dtype" value { type: DT_FLOAT } } attr { key: "shape_type" value { type: DT_INT32 } } }
versions { producer: 2474 }""", graph_pb2.GraphDef())
    assert 0 in catalog().opset("2.21").refused_ranks("TensorListReserve")["element_shape"]
    assert not [p for p in validate(lift(gd), catalog().opset("2.21")) if p.kind == "input-rank"]
