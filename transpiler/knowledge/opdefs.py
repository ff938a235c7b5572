"""What an OpDef says about a node: its defaults, its arity, its outputs.

One place for the questions every pass asks of the op registry, so that the
validator, the rules and the lowering passes answer them the same way:

* ``newest_op_def(op)``: the OpDef a graph using `op` was written against
  (the newest core release that has it, else the newest tf.contrib one);
* ``attr_def`` / ``attr_default`` / ``is_default``;
* ``arg_count`` / ``expected_inputs`` / ``output_ports`` / ``input_dtypes``;
* ``rejected_attrs(node, opset)``: attrs the target does not know, split into
  those at their default (the importer or the strip rule can drop them) and
  the rest (only a rewrite helps).
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Mapping, Optional, Tuple

from transpiler.io.protos import attr_value_pb2, op_def_pb2
from transpiler.ir.attrs import value_field
from transpiler.knowledge.releases import Catalog, Opset, catalog

OpDef = op_def_pb2.OpDef
AttrDef = op_def_pb2.OpDef.AttrDef

#: Ports assumed for an op no release knows (a custom op): enough for any real node.
UNKNOWN_OP_PORTS = 64


def newest_op_def(op: str, cat: Optional[Catalog] = None) -> Optional[OpDef]:
    """The newest known OpDef of `op`: core releases first, then tf.contrib; None if unknown."""
    cat = cat or catalog()
    last = cat.last_release(op)
    return cat.op_def(op, last) if last else cat.contrib_op_def(op)


def attr_def(op_def: Optional[OpDef], attr: str) -> Optional[AttrDef]:
    if op_def is None:
        return None
    return next((a for a in op_def.attr if a.name == attr), None)


def attr_default(op_def: Optional[OpDef], attr: str) -> Optional[attr_value_pb2.AttrValue]:
    """The default the OpDef declares for `attr`, or None (no such attr, or no default)."""
    found = attr_def(op_def, attr)
    return found.default_value if found is not None and found.HasField("default_value") else None


def is_default(op_def: Optional[OpDef], attr: str, value) -> bool:
    """`value` equals the OpDef's declared default for `attr` (False when it has none)."""
    default = attr_default(op_def, attr)
    return default is not None and default == value


def attr_type(op_def: Optional[OpDef], attr: str) -> Optional[str]:
    """The OpDef's type string for `attr` ("int", "list(type)", ...), or None."""
    found = attr_def(op_def, attr)
    return found.type if found is not None else None


def _attr_value(op_def: OpDef, attrs: Mapping, name: str):
    return attrs.get(name) or attr_default(op_def, name)


def arg_count(arg, op_def: OpDef, attrs: Mapping) -> Optional[int]:
    """How many tensors an input/output arg stands for (None when its attrs do not say)."""
    if arg.number_attr:
        value = _attr_value(op_def, attrs, arg.number_attr)
        return value.i if value is not None and value.WhichOneof("value") == "i" else None
    if arg.type_list_attr:
        value = _attr_value(op_def, attrs, arg.type_list_attr)
        return len(value.list.type) if value is not None and value.WhichOneof("value") == "list" else None
    return 1


def arg_count_or_one(arg, op_def: OpDef, attrs: Mapping) -> int:
    """`arg_count`, taking an arg whose attrs do not say as one tensor."""
    count = arg_count(arg, op_def, attrs)
    return 1 if count is None else count


def expected_inputs(op_def: OpDef, attrs: Mapping) -> Optional[int]:
    """How many data inputs the OpDef wants, or None when attrs leave it open."""
    counts = [arg_count(arg, op_def, attrs) for arg in op_def.input_arg]
    return None if None in counts else sum(counts)


def input_arg_at(op_def: OpDef, attrs: Mapping, index: int):
    """The input arg that data input `index` belongs to (None past the end)."""
    position = 0
    for arg in op_def.input_arg:
        count = arg_count_or_one(arg, op_def, attrs)
        if position <= index < position + count:
            return arg
        position += count
    return None


def output_ports(op_def: Optional[OpDef], attrs: Mapping, in_function: bool) -> list:
    """A node's outputs by flat index: ints in a graph, `out_arg:i` names in a function body."""
    if op_def is None:
        return list(range(UNKNOWN_OP_PORTS))
    ports = []
    for arg in op_def.output_arg:
        ports.extend("%s:%d" % (arg.name, i) for i in range(arg_count_or_one(arg, op_def, attrs)))
    return ports if in_function else list(range(len(ports)))


def input_dtypes(op_def: Optional[OpDef], attrs: Mapping) -> List[Optional[str]]:
    """DataType names of a node's inputs, as far as the OpDef and attrs tell."""
    from transpiler.ir.attrs import make_attr, plain

    if op_def is None:
        return []
    dtypes: List[Optional[str]] = []
    for arg in op_def.input_arg:
        count = arg_count_or_one(arg, op_def, attrs)
        if arg.type_list_attr:
            value = attrs.get(arg.type_list_attr)
            dtypes.extend(plain(value) if value is not None else [None] * count)
            continue
        value = _attr_value(op_def, attrs, arg.type_attr) if arg.type_attr else None
        name = plain(value) if value is not None else (plain(make_attr("type", arg.type)) if arg.type else None)
        dtypes.extend([name] * count)
    return dtypes


def rejected_attrs(op: str, attrs: Mapping, opset: Opset,
                   producer_def: Optional[OpDef] = None) -> Tuple[List[str], List[str]]:
    """Attrs of an `op` node the target does not know: (at their default, not at their default).

    "Default" is the one the release that added the attr declares, or the one
    the producer's own OpDef (a MetaGraphDef's stripped_op_list) declares:
    TF 1.x's importer drops such attrs itself. Internal `_` attrs are never
    rejected.
    """
    target = opset.op(op)
    known = {a.name for a in target.attr} if target is not None else set()
    at_default, other = [], []
    for name in sorted(attrs):
        if name.startswith("_") or name in known:
            continue
        newer = opset.catalog.first_release(op, name, after=opset.release)
        newer_def = opset.catalog.op_def(op, newer) if newer else None
        default = is_default(newer_def, name, attrs[name]) or is_default(producer_def, name, attrs[name])
        (at_default if default else other).append(name)
    return at_default, other


def target_rejects(op: str, attrs: Mapping, opset: Opset) -> bool:
    """The target lacks `op`, or knows it without an attr set here to a value other than its default."""
    return opset.op(op) is None or bool(rejected_attrs(op, attrs, opset)[1])


def _attr_def_problem(op_def: OpDef, attrs: Mapping[str, attr_value_pb2.AttrValue],
                      inputs: Optional[int]) -> Optional[str]:
    """What `op_def` refuses in a node of `attrs` and `inputs` data inputs (a required attr missing, a value
    of another type, another number of inputs), or None."""
    for attr in op_def.attr:
        if attr.name not in attrs:
            if not attr.HasField("default_value"):
                return "lacks its required attr '%s'" % attr.name
            continue
        held = attrs[attr.name].WhichOneof("value")
        wanted = value_field(attr.type)
        if held not in (wanted, "placeholder") and wanted is not None:
            return "has attr '%s' holding %s, not a %s" % (attr.name, held or "no value", attr.type)
    expected = expected_inputs(op_def, attrs) if inputs is not None else None
    if expected is not None and expected != inputs:
        return "has %d data input(s), its op takes %d" % (inputs, expected)
    return None


def malformed_node(op: str, attrs: Mapping[str, attr_value_pb2.AttrValue], inputs: Optional[int] = None,
                   cat: Optional[Catalog] = None) -> Optional[str]:
    """Why no known release could load a node of `op` with `attrs` and `inputs` data inputs (TF checks
    every NodeDef against its OpDef on import: "NodeDef missing attr 'body'"), or None: an attr the op
    requires is missing, an attr holds another kind of value than its type, or the number of inputs is not
    the one the OpDef and attrs give, in the OpDef of every release that has `op`.
    Unknown ops (custom ops, calls of library functions) are never malformed."""
    cat = cat or catalog()
    if _fits_newest(op, attrs, inputs, cat):
        return None
    newest = newest_op_def(op, cat)
    problem = _attr_def_problem(newest, attrs, inputs) if newest is not None else None
    if problem is None:
        return None
    others = [cat.op_def(op, release) for release in cat.releases]
    if any(op_def is not None and _attr_def_problem(op_def, attrs, inputs) is None for op_def in others):
        return None
    return problem


#: Per catalog, per op: what `_fits_newest` checks of its newest OpDef (None: the op is unknown).
_NEWEST_CHECKS: "weakref.WeakKeyDictionary[Catalog, Dict[str, Optional[tuple]]]" = weakref.WeakKeyDictionary()


def _newest_checks(op: str, cat: Catalog) -> Optional[tuple]:
    """(newest OpDef, attrs it requires, (attr, value field) of its typed attrs, its number of inputs or
    None when an attr decides it) of `op`, worked out once per op: refusing malformed models asks it of
    every node of the model, and reading the OpDef's attrs each time was most of that."""
    by_op = _NEWEST_CHECKS.setdefault(cat, {})
    if op not in by_op:
        op_def = newest_op_def(op, cat)
        by_op[op] = None if op_def is None else (
            op_def,
            tuple(a.name for a in op_def.attr if not a.HasField("default_value")),
            tuple((a.name, value_field(a.type)) for a in op_def.attr if value_field(a.type) is not None),
            None if any(a.number_attr or a.type_list_attr for a in op_def.input_arg) else len(op_def.input_arg))
    return by_op[op]


def _fits_newest(op: str, attrs: Mapping[str, attr_value_pb2.AttrValue], inputs: Optional[int],
                 cat: Catalog) -> bool:
    """`op` is unknown, or `_attr_def_problem` of its newest OpDef is None: the answer for nearly every node,
    found without reading the OpDef again. False means: ask `_attr_def_problem` (it says why)."""
    checks = _newest_checks(op, cat)
    if checks is None:
        return True
    op_def, required, typed, fixed_inputs = checks
    if any(name not in attrs for name in required):
        return False
    for name, wanted in typed:
        if name in attrs and attrs[name].WhichOneof("value") not in (wanted, "placeholder"):
            return False
    if inputs is None:
        return True
    expected = fixed_inputs if fixed_inputs is not None else expected_inputs(op_def, attrs)
    return expected is None or expected == inputs
