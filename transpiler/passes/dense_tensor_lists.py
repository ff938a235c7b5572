"""Pass: TensorLists -> dense tensors, for targets that cannot take the list ops.

TF 2 loops carry TensorLists (DT_VARIANT): Keras RNNs read their input with
TensorListGetItem and write their outputs with TensorListSetItem. Releases
before TF 1.13 lack the list ops' current signatures (TensorListGetItem and
TensorListStack gained an element_shape input) and TF 1.4/1.5 lack them
altogether; TF 1.8's Python importer does not even know them unless
list_ops is imported. Once loops are lowered, a list is ordinary dataflow, so
each list tensor becomes a dense tensor of its elements, stacked on axis 0:

  TensorListReserve(shape, n)      -> Fill([n] + known dims (unknown ones 0), 0)
  TensorListFromTensor(t)          -> t
  TensorListSetItem(l, i, x)       -> l padded to x's shape on first write; l[:i] ++ [x] ++ l[i+1:]
  TensorListPushBack(l, x)         -> l padded ++ [x]
  TensorListGetItem(l, i)          -> GatherV2(l, i, 0);  TensorListGather(l, ix) -> GatherV2(l, ix, 0)
  TensorListStack(l)               -> l;  TensorListLength(l) -> Shape(l)[0]
  TensorListElementShape(l)        -> Shape(l)[1:];  TensorListPopBack(l) -> (l[:-1], l[-1])

Writes copy the list (O(n) each), so a loop writing all n elements is O(n^2)
in element copies; TensorArrayV3 would be O(n) but refuses a second write to
an index, which Keras does on every step for return_sequences=False.
Enter/Merge/Switch/Exit/NextIteration/Identity/IdentityN carrying a list get
the element dtype. Anything else reading a list refuses the whole rewrite.

"""

from __future__ import annotations

from typing import Dict, List, Optional

from transpiler.engine.rule_pass import Firing
from transpiler.io.protos import attr_value_pb2, types_pb2
from transpiler.ir.graph import GraphDefIR, Node, Tensor
from transpiler.passes.base import Context, Pass, PassLog
from transpiler.ir.attrs import int_attr, type_attr, types_attr
from transpiler.passes.builders import LoweringError
from transpiler.passes.functional import (LIST_MAKERS, LIST_OPS, LIST_PASS_THROUGH, LIST_UPDATERS,
                                          tensor_lists_need_lowering)


def _const_ints(ir: GraphDefIR, tensor: Tensor) -> Optional[List[int]]:
    """The values of a Const int32/int64 tensor (None when not a Const)."""
    if tensor.node not in ir or ir[tensor.node].op != "Const":
        return None
    import numpy as np

    proto = ir[tensor.node].attrs["value"].tensor
    dtype = {types_pb2.DT_INT32: np.int32, types_pb2.DT_INT64: np.int64}.get(proto.dtype)
    if dtype is None:
        return None
    shape = [d.size for d in proto.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype=dtype).tolist()
    else:
        values = list(proto.int_val if proto.dtype == types_pb2.DT_INT32 else proto.int64_val)
        values = (values + values[-1:] * count)[:count] if values else [0] * count
    return values if shape else values[:1]


def _const_attrs(dtype: int, values, shape) -> Dict[str, attr_value_pb2.AttrValue]:
    from transpiler.ir.attrs import dtype_name, make_tensor

    tensor = make_tensor({"dtype": dtype_name(dtype), "shape": shape, "values": values})
    return {"dtype": type_attr(dtype), "value": attr_value_pb2.AttrValue(tensor=tensor)}


def _known_rank(ir: GraphDefIR, tensor: Tensor) -> Optional[int]:
    """The rank its producer's `_output_shapes` records for `tensor` (TF 2 function bodies keep them)."""
    if tensor.node not in ir or not isinstance(tensor.port, int):
        return None
    shapes = ir[tensor.node].attrs.get("_output_shapes")
    if shapes is None or tensor.port >= len(shapes.list.shape):
        return None
    shape = shapes.list.shape[tensor.port]
    return None if shape.unknown_rank else len(shape.dim)


class TensorListRewriter:
    """Rewrite TensorList ops of the top graph into dense tensors (see above); all or nothing."""

    def __init__(self, ir: GraphDefIR):
        self.ir = ir
        #: list tensor -> element dtype
        self.lists: Dict[Tensor, int] = {}
        self.pass_through: Dict[str, Dict[int, int]] = {}
        #: (node, op) of every TensorList node rewritten (or dropped, when unused).
        self.rewritten: List[tuple] = []

    # ---- analysis ----------------------------------------------------------
    def analyze(self) -> None:
        ir = self.ir
        self.unused = [n.name for n in ir.nodes if n.op in LIST_OPS and not ir.nx.out_degree(n.name)]
        family: Dict[str, str] = {}  # list op -> its family (the maker it descends from), union-find

        def find(name: str) -> str:
            while family[name] != name:
                name = family[name]
            return name

        todo = []
        for node in ir.nodes:
            if node.name in self.unused:
                continue
            if node.op in LIST_MAKERS:
                family[node.name] = node.name
                todo.append((Tensor(node.name, 0), node.attrs["element_dtype"].type, node.name))
            elif (node.op.startswith("TensorList") or node.op == "EmptyTensorList") and node.op not in LIST_OPS:
                raise LoweringError("%s (%s): no dense form of this TensorList op" % (node.name, node.op))
        origin: Dict[Tensor, str] = {}
        while todo:
            tensor, dtype, fam = todo.pop()
            if tensor in self.lists:
                if self.lists[tensor] != dtype:
                    raise LoweringError("%s carries lists of two element types" % tensor)
                family[find(fam)] = find(origin[tensor])
                continue
            self.lists[tensor] = dtype
            origin[tensor] = fam
            for consumer, index in ir.consumers(tensor):
                node = ir[consumer]
                if node.op in LIST_OPS and index == 0 and node.op not in LIST_MAKERS:
                    if "element_dtype" in node.attrs and node.attrs["element_dtype"].type != dtype:
                        raise LoweringError("%s reads a list of another element type" % consumer)
                    family.setdefault(consumer, fam)
                    if node.op in LIST_UPDATERS:
                        todo.append((Tensor(consumer, 0), dtype, fam))
                    continue
                if node.op not in LIST_PASS_THROUGH or (node.op == "Switch" and index != 0):
                    raise LoweringError("%s (%s) reads TensorList %s" % (consumer, node.op, tensor))
                ports = {"Switch": [0, 1], "IdentityN": [index]}.get(node.op, [0])
                self.pass_through.setdefault(consumer, {})
                for port in ports:
                    self.pass_through[consumer][port] = dtype
                    todo.append((Tensor(consumer, port), dtype, fam))
        for name in self.pass_through:
            node = ir[name]
            for i, t in enumerate(ir.inputs(name)):
                if self._input_is_variant(node, i) and t not in self.lists:
                    raise LoweringError("%s (%s) mixes a TensorList with another variant %s" % (name, node.op, t))
        ranks: Dict[str, set] = {}
        for node in ir.nodes:
            if node.op not in LIST_OPS or node.name in self.unused:
                continue
            if node.name not in family:
                raise LoweringError("%s (%s) reads a TensorList made outside the graph" % (node.name, node.op))
            if node.op == "TensorListSetItem" and "resize_if_index_out_of_bounds" in node.attrs and \
                    node.attrs["resize_if_index_out_of_bounds"].b:
                raise LoweringError("%s: resize_if_index_out_of_bounds has no dense form" % node.name)
            rank = self._element_rank(node)
            if rank is not None:
                ranks.setdefault(find(node.name), set()).add(rank)
        makers: Dict[str, List[str]] = {}
        for node in ir.nodes:
            if node.op in LIST_MAKERS and node.name not in self.unused:
                makers.setdefault(find(node.name), []).append(node.name)
        for node in ir.nodes:
            # the declared element shape, which Shape(list)[1:] only equals when it is fully known
            if node.op == "TensorListElementShape" and node.name not in self.unused:
                for maker in makers.get(find(node.name), []):
                    shape = ir.inputs(maker)[1 if ir[maker].op == "TensorListFromTensor" else 0]
                    dims = _const_ints(ir, shape)
                    if dims is None or not ir[shape.node].attrs["value"].tensor.tensor_shape.dim or \
                            any(d < 0 for d in dims):
                        raise LoweringError("%s: the element shape of %s is not fully known" % (node.name, maker))
        self.ranks: Dict[str, int] = {}
        for node in ir.nodes:
            if node.op in ("TensorListReserve", "EmptyTensorList") and node.name not in self.unused:
                found = ranks.get(find(node.name), set())
                if len(found) != 1:
                    raise LoweringError("%s: element rank %s" % (
                        node.name, "unknown (no 1-D Const element shape, no written shapes)" if not found
                        else "differs between writes: %s" % sorted(found)))
                self.ranks[node.name] = found.pop()

    def _element_rank(self, node: Node) -> Optional[int]:
        """What `node` tells about the rank of its list's elements (const element shapes, `_output_shapes`)."""
        ir = self.ir
        inputs = ir.inputs(node.name)
        shape_input = {"TensorListReserve": 0, "EmptyTensorList": 0, "TensorListFromTensor": 1,
                       "TensorListGetItem": 2, "TensorListStack": 1, "TensorListGather": 2}.get(node.op)
        if shape_input is not None and shape_input < len(inputs):
            const = inputs[shape_input]
            dims = _const_ints(ir, const)
            if dims is not None and ir[const.node].attrs["value"].tensor.tensor_shape.dim:
                return len(dims)
        item = {"TensorListSetItem": 2, "TensorListPushBack": 1, "TensorListFromTensor": 0}.get(node.op)
        shape = _known_rank(ir, inputs[item]) if item is not None else None
        if shape is not None:
            return shape - (1 if node.op == "TensorListFromTensor" else 0)
        if node.op == "TensorListGetItem":
            return _known_rank(ir, Tensor(node.name, 0))
        if node.op == "TensorListStack":
            rank = _known_rank(ir, Tensor(node.name, 0))
            return rank - 1 if rank else None
        return None

    def _input_is_variant(self, node: Node, index: int) -> bool:
        if node.op == "IdentityN":
            return node.attrs["T"].list.type[index] == types_pb2.DT_VARIANT
        if node.op == "Switch" and index == 1:
            return False
        if node.op in ("Merge",) or index == 0:
            return node.attrs.get("T") is not None and node.attrs["T"].type == types_pb2.DT_VARIANT
        return False

    # ---- rewriting ---------------------------------------------------------
    def run(self) -> int:
        self.analyze()
        ir = self.ir
        for name, ports in self.pass_through.items():
            node = ir[name]
            if node.op == "IdentityN":
                types = list(node.attrs["T"].list.type)
                for port, dtype in ports.items():
                    types[port] = dtype
                node.attrs["T"] = types_attr(types)
            else:
                node.attrs["T"] = type_attr(next(iter(ports.values())))
            node.attrs.pop("_output_shapes", None)
        for name in self.unused:  # nothing reads them: no dense form needed
            self.rewritten.append((name, ir[name].op))
            ir.remove_node(name)
        dtypes = {}
        for node in [n for n in ir.nodes if n.op in LIST_OPS]:  # element types, before any input moves
            dtypes[node.name] = node.attrs["element_dtype"].type if node.op in LIST_MAKERS \
                else self.lists[ir.inputs(node.name)[0]]
        for node in [n for n in ir.nodes if n.op in LIST_OPS]:
            self.rewritten.append((node.name, node.op))
            getattr(self, "_" + node.op)(_ListRewrite(ir, node.name, dtypes[node.name]))
        return len(self.rewritten)

    def _TensorListReserve(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[1], types_pb2.DT_INT32)
        rw.finish([rw.fill_list(Tensor(anchor), self._dims(rw), anchor)])

    def _EmptyTensorList(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[1], types_pb2.DT_INT32)
        zero = rw.const("zero_elements", types_pb2.DT_INT32, [0], [], anchor)
        rw.finish([rw.fill_list(Tensor(zero), self._dims(rw), anchor)])

    def _dims(self, rw: "_ListRewrite") -> List[int]:
        """Element dims of a new list: the known ones, 0 for the rest (grown by the first write)."""
        const = rw.inputs[0]
        dims = _const_ints(rw.ir, const)
        if dims is not None and rw.ir[const.node].attrs["value"].tensor.tensor_shape.dim:
            return [max(int(d), 0) for d in dims]
        return [0] * self.ranks[rw.name]

    def _TensorListFromTensor(self, rw: "_ListRewrite") -> None:
        rw.finish([Tensor(rw.add(None, "Identity", [rw.inputs[0]], {"T": type_attr(rw.dtype)}, rw.control))])

    def _TensorListSetItem(self, rw: "_ListRewrite") -> None:
        lst, index, item = rw.inputs[:3]
        anchor = rw.anchor(lst, rw.dtype)
        padded = rw.pad_to_item(Tensor(anchor), item, anchor)
        item_shape = rw.shape(item)
        minus_one = rw.const("minus_one", types_pb2.DT_INT32, [-1], [], anchor)
        one = rw.const("one", types_pb2.DT_INT32, [1], [], anchor)
        index_1d = rw.as_vector(index, anchor)
        rest = rw.add("rest_dims", "Fill", [Tensor(rw.shape(Tensor(item_shape), types_pb2.DT_INT32)),
                                            Tensor(minus_one)],
                      {"T": type_attr(types_pb2.DT_INT32)})
        head_size = rw.concat("head_size", [index_1d, Tensor(rest)], types_pb2.DT_INT32, anchor)
        zeros = rw.add("origin", "ZerosLike", [Tensor(rw.shape(padded))], {"T": type_attr(types_pb2.DT_INT32)})
        head = rw.add("head", "Slice", [padded, Tensor(zeros), Tensor(head_size)],
                      {"T": type_attr(rw.dtype), "Index": type_attr(types_pb2.DT_INT32)})
        next_index = rw.add("next_index", "Add", [index_1d, Tensor(one)], {"T": type_attr(types_pb2.DT_INT32)})
        tail_begin = rw.concat("tail_begin", [Tensor(next_index), Tensor(rw.add(
            "item_origin", "ZerosLike", [Tensor(item_shape)], {"T": type_attr(types_pb2.DT_INT32)}))],
            types_pb2.DT_INT32, anchor)
        all_dims = rw.add("all_dims", "Fill", [Tensor(rw.shape(Tensor(rw.shape(padded)), types_pb2.DT_INT32)),
                                               Tensor(minus_one)],
                          {"T": type_attr(types_pb2.DT_INT32)})
        tail = rw.add("tail", "Slice", [padded, Tensor(tail_begin), Tensor(all_dims)],
                      {"T": type_attr(rw.dtype), "Index": type_attr(types_pb2.DT_INT32)})
        row = rw.expand(item, anchor)
        rw.finish([rw.concat(None, [Tensor(head), row, Tensor(tail)], rw.dtype, anchor)])

    def _TensorListPushBack(self, rw: "_ListRewrite") -> None:
        lst, item = rw.inputs[:2]
        anchor = rw.anchor(lst, rw.dtype)
        padded = rw.pad_to_item(Tensor(anchor), item, anchor)
        rw.finish([rw.concat(None, [padded, rw.expand(item, anchor)], rw.dtype, anchor)])

    def _TensorListPopBack(self, rw: "_ListRewrite") -> None:
        lst = rw.inputs[0]
        anchor = rw.anchor(lst, rw.dtype)
        length = rw.length(Tensor(anchor), anchor)
        one = rw.const("one", types_pb2.DT_INT32, [1], [], anchor)
        last = rw.add("last_index", "Sub", [Tensor(length), Tensor(one)], {"T": type_attr(types_pb2.DT_INT32)})
        item = rw.gather(Tensor(anchor), Tensor(last), anchor, "item")
        minus_one = rw.const("minus_one", types_pb2.DT_INT32, [-1], [], anchor)
        rank = rw.shape(Tensor(rw.shape(Tensor(anchor))), types_pb2.DT_INT32)
        rest_rank = rw.add("rest_rank", "Sub", [Tensor(rank), Tensor(one)], {"T": type_attr(types_pb2.DT_INT32)})
        rest = rw.add("rest_dims", "Fill", [Tensor(rest_rank), Tensor(minus_one)], {"T": type_attr(types_pb2.DT_INT32)})
        size = rw.concat("size", [rw.as_vector(Tensor(last), anchor), Tensor(rest)], types_pb2.DT_INT32, anchor)
        zeros = rw.add("origin", "ZerosLike", [Tensor(rw.shape(Tensor(anchor)))], {"T": type_attr(types_pb2.DT_INT32)})
        kept = rw.add(None, "Slice", [Tensor(anchor), Tensor(zeros), Tensor(size)],
                      {"T": type_attr(rw.dtype), "Index": type_attr(types_pb2.DT_INT32)})
        rw.finish([Tensor(kept), Tensor(item)])

    def _TensorListGetItem(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        rw.finish([Tensor(rw.gather(Tensor(anchor), rw.inputs[1], anchor, None))])

    _TensorListGather = _TensorListGetItem

    def _TensorListStack(self, rw: "_ListRewrite") -> None:
        rw.finish([Tensor(rw.add(None, "Identity", [rw.inputs[0]], {"T": type_attr(rw.dtype)}, rw.control))])

    def _TensorListLength(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        rw.finish([Tensor(rw.length(Tensor(anchor), anchor, final=True))])

    def _TensorListElementShape(self, rw: "_ListRewrite") -> None:
        anchor = rw.anchor(rw.inputs[0], rw.dtype)
        out = rw.node.attrs["shape_type"].type
        shape = rw.add("list_shape", "Shape", [Tensor(anchor)], {"T": type_attr(rw.dtype), "out_type": type_attr(out)})
        begin = rw.const("begin", types_pb2.DT_INT32, [1], [1], anchor)
        end = rw.const("end", types_pb2.DT_INT32, [0], [1], anchor)
        rw.finish([Tensor(rw.add(None, "StridedSlice", [Tensor(shape), Tensor(begin), Tensor(end), Tensor(begin)],
                                 {"T": type_attr(out), "Index": type_attr(types_pb2.DT_INT32), "end_mask": int_attr(1)}))])


class _ListRewrite:
    """Builds the dense replacement of one TensorList node; the last node added takes its name."""

    def __init__(self, ir: GraphDefIR, name: str, dtype: int):
        self.ir = ir
        self.name = name
        self.node = ir[name]
        self.inputs = ir.inputs(name)
        self.control = ir.control_inputs(name)
        self.device = self.node.device
        self.dtype = dtype
        self.hidden = ir.hide(name, "tensor_list")

    def add(self, suffix: Optional[str], op: str, inputs, attrs, control=()) -> str:
        name = self.name if suffix is None else self.ir.unique_name("%s/%s" % (self.name, suffix))
        self.ir.add_node(name, op, list(inputs), attrs, self.device, control_inputs=list(control))
        return name

    def anchor(self, tensor: Tensor, dtype: int) -> str:
        """An Identity of an input: the frame/branch context for this rewrite's constants."""
        return self.add("list_input", "Identity", [tensor], {"T": type_attr(dtype)}, self.control)

    def const(self, suffix: str, dtype: int, values, shape, anchor: str) -> str:
        return self.add(suffix, "Const", (), _const_attrs(dtype, values, shape), [anchor])

    def shape(self, tensor: Tensor, dtype: Optional[int] = None) -> str:
        """Shape (int32) of `tensor`, which holds list elements unless `dtype` says otherwise."""
        dtype = self.dtype if dtype is None else dtype
        return self.add("shape", "Shape", [tensor], {"T": type_attr(dtype), "out_type": type_attr(types_pb2.DT_INT32)})

    def concat(self, suffix: Optional[str], values: List[Tensor], dtype: int, anchor: str) -> str:
        axis = self.const("axis", types_pb2.DT_INT32, [0], [], anchor)
        return self.add(suffix, "ConcatV2", list(values) + [Tensor(axis)],
                        {"T": type_attr(dtype), "N": int_attr(len(values)), "Tidx": type_attr(types_pb2.DT_INT32)})

    def as_vector(self, scalar: Tensor, anchor: str) -> Tensor:
        shape = self.const("vector_shape", types_pb2.DT_INT32, [1], [1], anchor)
        return Tensor(self.add("as_vector", "Reshape", [scalar, Tensor(shape)],
                               {"T": type_attr(types_pb2.DT_INT32), "Tshape": type_attr(types_pb2.DT_INT32)}))

    def expand(self, item: Tensor, anchor: str) -> Tensor:
        axis = self.const("row_axis", types_pb2.DT_INT32, [0], [], anchor)
        return Tensor(self.add("row", "ExpandDims", [item, Tensor(axis)],
                               {"T": type_attr(self.dtype), "Tdim": type_attr(types_pb2.DT_INT32)}))

    def gather(self, lst: Tensor, index: Tensor, anchor: str, suffix: Optional[str]) -> str:
        axis = self.const("gather_axis", types_pb2.DT_INT32, [0], [], anchor)
        return self.add(suffix, "GatherV2", [lst, index, Tensor(axis)],
                        {"Tparams": type_attr(self.dtype), "Tindices": type_attr(types_pb2.DT_INT32),
                         "Taxis": type_attr(types_pb2.DT_INT32)})

    def length(self, lst: Tensor, anchor: str, final: bool = False) -> str:
        shape = self.add("list_shape", "Shape", [lst], {"T": type_attr(self.dtype), "out_type": type_attr(types_pb2.DT_INT32)})
        begin = self.const("begin", types_pb2.DT_INT32, [0], [1], anchor)
        end = self.const("end", types_pb2.DT_INT32, [1], [1], anchor)
        return self.add(None if final else "length", "StridedSlice", [Tensor(shape), Tensor(begin), Tensor(end),
                                                                      Tensor(end)],
                        {"T": type_attr(types_pb2.DT_INT32), "Index": type_attr(types_pb2.DT_INT32),
                         "shrink_axis_mask": int_attr(1)})

    def fill_list(self, count: Tensor, dims: List[int], anchor: str) -> Tensor:
        from transpiler.ir.attrs import dtype_name

        count_1d = self.as_vector(count, anchor)
        known = self.const("element_dims", types_pb2.DT_INT32, dims, [len(dims)], anchor)
        shape = self.concat("list_dims", [count_1d, Tensor(known)], types_pb2.DT_INT32, anchor)
        zero_value = False if dtype_name(self.dtype) == "DT_BOOL" else ("" if dtype_name(self.dtype) == "DT_STRING"
                                                                        else 0)
        zero = self.const("zero", self.dtype, [zero_value], [], anchor)
        return Tensor(self.add(None, "Fill", [Tensor(shape), Tensor(zero)], {"T": type_attr(self.dtype)}))

    def pad_to_item(self, lst: Tensor, item: Tensor, anchor: str) -> Tensor:
        """`lst` with its element dims grown to `item`'s (a list not yet written has 0 for unknown dims)."""
        list_shape = self.shape(lst)
        begin = self.const("dims_begin", types_pb2.DT_INT32, [1], [1], anchor)
        end = self.const("dims_end", types_pb2.DT_INT32, [0], [1], anchor)
        element_dims = self.add("element_dims", "StridedSlice", [Tensor(list_shape), Tensor(begin), Tensor(end),
                                                                 Tensor(begin)],
                                {"T": type_attr(types_pb2.DT_INT32), "Index": type_attr(types_pb2.DT_INT32),
                                 "end_mask": int_attr(1)})
        grow = self.add("grow", "Sub", [Tensor(self.shape(item)), Tensor(element_dims)],
                        {"T": type_attr(types_pb2.DT_INT32)})
        no_growth = self.const("no_growth", types_pb2.DT_INT32, [0], [1], anchor)
        after = self.concat("pad_after", [Tensor(no_growth), Tensor(grow)], types_pb2.DT_INT32, anchor)
        before = self.add("pad_before", "ZerosLike", [Tensor(after)], {"T": type_attr(types_pb2.DT_INT32)})
        paddings = self.add("paddings", "Pack", [Tensor(before), Tensor(after)],
                            {"T": type_attr(types_pb2.DT_INT32), "N": int_attr(2), "axis": int_attr(1)})
        return Tensor(self.add("padded", "Pad", [lst, Tensor(paddings)],
                               {"T": type_attr(self.dtype), "Tpaddings": type_attr(types_pb2.DT_INT32)}))

    def finish(self, outputs: List[Tensor]) -> None:
        keeper = self.name if self.name in self.ir else outputs[0].node
        self.ir.replace_node(self.hidden, dict(enumerate(outputs)), control_output=keeper)


class DenseTensorLists(Pass):
    """Rewrite the top graph's TensorLists into dense tensors when the target lacks the list ops
    (or knows them with other inputs); all or nothing, after control flow is lowered.

    `force` rewrites them even when the target has them (tests of the dense forms).
    """

    name = "dense-tensor-lists"

    def __init__(self, force: bool = False):
        self.force = force

    def run(self, ir: GraphDefIR, ctx: Context) -> PassLog:
        log = PassLog()
        if not (tensor_lists_need_lowering(ir, ctx.opset) or (self.force and any(n.op in LIST_OPS for n in ir.nodes))):
            return log
        rewriter = TensorListRewriter(ir)
        try:
            rewriter.run()
        except LoweringError as exc:
            for node in ir.nodes:
                if node.op in LIST_OPS or node.op.startswith("TensorList"):
                    log.refusals[(None, node.name)] = "TensorLists kept: %s" % exc
            return log
        log.firings.extend(Firing("tensor-list-to-dense", name, op, None, "%s -> dense tensor ops" % op)
                           for name, op in rewriter.rewritten)
        return log
