"""The rules pass: apply rules/*.yaml to a fixpoint over the graph and every function.

Which rules are active depends only on the target's opset ("the target lacks
op X"), so one rule serves every older release. A rule may emit an op the
target lacks when another active rule rewrites that op further, which is how
chains such as FusedBatchNormV3 -> V2 -> FusedBatchNorm reach old targets.
Each rewrite checks everything before it touches the graph: a rule that
cannot apply leaves the node as it was.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from transpiler.engine import RuleError
from transpiler.errors import TranspileError
from transpiler.io.protos import attr_value_pb2, op_def_pb2
from transpiler.ir.attrs import AttrError, make_attr, plain, plain_key
from transpiler.ir.graph import Graph, GraphDefIR, Node, Tensor, collections_paused
from transpiler.ir.values import const_value, known_shape, producer
from transpiler.knowledge import opdefs
from transpiler.knowledge.opdefs import attr_default as _default
from transpiler.knowledge.releases import Opset, version_key
from transpiler.engine.rule_files import Rule
# engine.templates (jinja2, its sandbox, YAML) is imported where a rule renders one: a graph on which no
# template rule fires, and `check`, which imports this module for Firing alone, do without it.
if TYPE_CHECKING:
    from transpiler.engine.templates import NodeSpec

#: Rounds over a graph before we call the rule set cyclic.
MAX_ROUNDS = 32
#: AttrValues kept for reuse (a few per rule in practice); the memo starts over when full.
MAX_ATTR_VALUES = 4096

#: A match of these keys alone holds for every node its rule is looked up for (by_op).
_OP_ONLY = frozenset({"op"})
#: Match keys that read the node alone (not its inputs, producers or readers).
_OWN_KEYS = frozenset({"op", "attrs", "default_attrs", "non_default_attrs"})
#: Template context entries that are the node's own (template_context) or the target's.
_OWN_READS = frozenset({"name", "op", "attrs", "dtypes", "device", "target", "has_op",
                        "range", "dict", "lipsum", "cycler", "joiner", "namespace"})  # jinja2's globals
#: Producers a Const may not take a control edge from (their control output is not a live signal).
_NO_ANCHOR_OPS = ("Switch", "RefSwitch")


@dataclasses.dataclass
class Firing:
    rule: str
    node: str
    op: str
    function: Optional[str]
    detail: str = ""


@dataclasses.dataclass
class _Shaped:
    """What every firing of one decomposition shape on one op shares."""

    #: The shape's recipes (templates.shaped_nodes), kept so that their id stays theirs; None: a one-off render.
    recipes: Optional[tuple]
    #: Whether every op it emits can end up in the target.
    available: bool
    #: Per node, its AttrValues when the shape fixes them (copied for each firing), else None (built per firing).
    attrs: List[Optional[Dict[str, attr_value_pb2.AttrValue]]]
    #: The firing's detail: the ops it emits.
    detail: str


@dataclasses.dataclass
class _Dispatch:
    """How the rules pass visits a node of one op."""

    #: (rule, its action, whether its match is the op alone), in the order they are tried.
    rules: List[Tuple[Rule, Callable, bool]]
    #: Whether a rule of the op decomposes (the only kind that records `emitted`).
    decomposes: bool
    #: Whether a rule's match or templates read more than the node itself (RulePass._looks_around): a change
    #: next to the node can change what the rule does to it.
    looks_around: bool
    #: Whether every rule is an op-only strip_default_attrs (none at all counts): then no rule applies to a node
    #: of the op that RulePass._nothing_to_strip passes, and the pass need not visit it.
    strips_only: bool


class RuleApplicationError(RuleError):
    """A rule that is broken for a node it matched (a bug in the rule, not the model)."""


class RulePass:
    """Callable pass: ``RulePass(rules, opset, options)(ir)``; keeps the log of what fired.

    `options` are the user's choices that rules may depend on (``when: {option: variables=ref}``).
    """

    def __init__(self, rules: List[Rule], opset: Opset, options: Optional[Dict[str, str]] = None,
                 producer_ops: Optional[Dict[str, op_def_pb2.OpDef]] = None):
        self.opset = opset
        #: The producer's OpDefs by op (stripped_op_list): their defaults count for the top graph.
        self.producer_ops = dict(producer_ops or {})
        self.options = dict(options or {})
        self.catalog = opset.catalog
        self.rules = [r for r in rules if self._active(r)]
        self.by_op: Dict[str, List[Rule]] = collections.defaultdict(list)
        for rule in self.rules:
            self.by_op[rule.op].append(rule)
        self.fired: List[Firing] = []
        #: (function, node) -> reason, for nodes a rule refused to rewrite.
        self.refused: Dict[Tuple[Optional[str], str], str] = {}
        #: (function, node) -> (op, reason) for refusals of kernel behaviour (`when: target_before`): the target
        #: has the op, so the validator finds nothing, yet it would compute other numbers; these block.
        self.behaviour_refused: Dict[Tuple[Optional[str], str], Tuple[str, str]] = {}
        #: (function, node) -> id of the rule whose decomposition emitted it; that rule leaves it alone,
        #: so a rule may wrap the op it matches (Reshape -> Softmax -> Reshape) without rewriting it again.
        self.emitted: Dict[Tuple[Optional[str], str], str] = {}
        #: Nodes the rewrite under way has added (what `_rewrite_node` revisits besides the neighbourhood).
        self._added: List[str] = []
        self._source_defs: Dict[str, Optional[op_def_pb2.OpDef]] = {}
        self._target_attr_names: Dict[str, Optional[frozenset]] = {}
        # Per-op answers every visit or firing asks again (the rules list, the OpDef emitted nodes are built
        # against, an attr's type): looked up once each, since a big graph asks them hundreds of thousands of times.
        self._dispatches: Dict[str, _Dispatch] = {}
        self._defs_for: Dict[str, Optional[op_def_pb2.OpDef]] = {}
        self._attr_types: Dict[Tuple[str, str], str] = {}
        #: (attr type, plain_key of a value) -> the AttrValue it makes: a rule emits the same few attrs on
        #: every node it fires on.
        self._attr_values: Dict[tuple, attr_value_pb2.AttrValue] = {}
        #: (attr type, id of a value) -> (the value, its AttrValue), for values a template's shape shares between
        #: firings (templates.render_nodes): found without plain_key's walk; the value kept keeps its id unique.
        self._shared_values: Dict[Tuple[str, int], Tuple[object, attr_value_pb2.AttrValue]] = {}
        self._available: Dict[Tuple[str, frozenset], bool] = {}
        #: (id of a template shape's recipes, op matched) -> what firings of that shape share (`_shaped`).
        self._shapes: Dict[Tuple[int, str], _Shaped] = {}
        self._strip_nothing: Dict[Tuple[str, tuple], bool] = {}
        #: (op, in a function?) -> its output ports, for ops whose OpDef fixes how many outputs they have.
        self._fixed_ports: Dict[Tuple[str, bool], list] = {}
        #: op -> (attr, plain default) of its source OpDef's attrs with a default (`_plain_defaults`).
        self._defaults: Dict[str, List[Tuple[str, object]]] = {}
        #: Whether a node of the graph `_fixpoint` works on looks around (None: not found yet; `_has_lookers`).
        self._lookers: Optional[bool] = None
        #: id of a rule -> (the rule, what its templates read): asked on every firing.
        self._reads: Dict[int, Tuple[Rule, Optional[frozenset]]] = {}

    # ---- which rules apply to this target --------------------------------
    def _active(self, rule: Rule) -> bool:
        when = rule.when or ({"target_lacks_op": rule.op} if rule.op != "*" else {})
        if "target_lacks_op" in when and self.opset.has_op(when["target_lacks_op"]):
            return False
        if "target_has_op" in when and not self.opset.has_op(when["target_has_op"]):
            return False
        if "target_lacks_attr" in when:
            op, _, attr = when["target_lacks_attr"].partition(".")
            if self.opset.attr(op, attr) is not None:
                return False
        if "option" in when:
            key, _, value = str(when["option"]).partition("=")
            if self.options.get(key) != value:
                return False
        if "target_before" in when:  # kernel behaviour the opsets cannot show, measured in the real releases
            if version_key(self.opset.release) >= version_key(self.catalog.resolve(str(when["target_before"]))):
                return False
        return True

    def available(self, op: str, seen: frozenset = frozenset()) -> bool:
        """Can `op` end up in the target: it has it, or an active rule rewrites it further (once per question:
        every firing asks it of each node it emits)."""
        key = (op, seen)
        found = self._available.get(key)
        if found is None:
            found = self._available[key] = self._available_now(op, seen)
        return found

    def _available_now(self, op: str, seen: frozenset) -> bool:
        if self.opset.has_op(op):
            return True
        return op not in seen and any(r.action in ("rename", "decompose") for r in self.by_op.get(op, ()))

    def source_def(self, op: str) -> Optional[op_def_pb2.OpDef]:
        """The newest known OpDef of `op`: what the input graph was written against (looked up once per op:
        every node of every visit asks)."""
        if op not in self._source_defs:
            self._source_defs[op] = opdefs.newest_op_def(op, self.catalog)
        return self._source_defs[op]

    def _target_attrs(self, op: str) -> Optional[frozenset]:
        """The attr names the target's `op` has (None when it lacks the op), once per op."""
        if op not in self._target_attr_names:
            target = self.opset.op(op)
            self._target_attr_names[op] = frozenset(a.name for a in target.attr) if target is not None else None
        return self._target_attr_names[op]

    # ---- driving ----------------------------------------------------------
    def __call__(self, ir: GraphDefIR, opset: Optional[Opset] = None) -> None:
        with collections_paused():  # a big graph's objects are not walked again and again
            for function, graph in ir.graphs():
                self._fixpoint(graph, function)

    def _fixpoint(self, graph: Graph, function: Optional[str]) -> None:
        """Rounds in node order, as if each visited every node; a round visits only the nodes near a
        rewrite of the round before (`_rewrite_node`), since any other node matches as it did at its last visit."""
        pending: Optional[set] = None  # the first round visits every node
        self._lookers = None
        for _ in range(MAX_ROUNDS):
            changed, revisit = False, set()
            for name in [n.name for n in graph.nodes] if pending is None else graph.names_among(pending):
                node = graph.get(name)
                if node is None or self._idle(node):
                    continue
                touched = self._rewrite_node(graph, node, function)
                if touched is not None:
                    changed = True
                    revisit |= touched
            if not changed:
                return
            pending = revisit
        raise TranspileError("rules do not converge on %s (a cycle between rules?)" % (function or "the graph"))

    def _rewrite_node(self, graph: Graph, node: Node, function: Optional[str]) -> Optional[set]:
        """Apply the first rule that fires on `node`; the names whose match may have changed, or None: the nodes
        it changed or added, and those near them (`_around`) whose rules look beyond the node itself."""
        dispatch = self._dispatch(node.op)
        emitted_by = self.emitted.get((function, node.name)) if dispatch.decomposes and self.emitted else None
        for rule, action, op_only in dispatch.rules:
            if emitted_by == rule.id or not (op_only or self._matches(rule, graph, node)):
                continue
            op, name = node.op, node.name
            looking = self._has_lookers(graph)
            before = self._around(graph, [name]) if looking and rule.action == "decompose" else set()  # the others keep its edges
            self._added = []
            try:
                detail = action(rule, graph, node, function)
            except (ValueError, LookupError) as exc:  # TemplateError, AttrError; a bad tensor name or port
                raise RuleApplicationError("rule '%s' (%s) on node %s: %s" % (rule.id, rule.source, name, exc)) from None
            if detail is not None:
                self.fired.append(Firing(rule.id, name, op, function, detail))
                nodes = [near for near in map(graph.get, [name] + self._added) if near is not None]
                changed = [near.name for near in nodes]
                if not looking:  # no node near them looks around; the changed ones are revisited anyway
                    self._lookers = any(map(self._looks_around_op, {near.op for near in nodes}))
                    return set(changed)
                return set(changed) | before | self._around(graph, changed)
        return None

    def _idle(self, node: Node) -> bool:
        """Whether no rule can apply to `node`, told without trying each (most nodes of a big graph have only
        strip rules and nothing to strip)."""
        dispatch = self._dispatches.get(node.op) or self._dispatch(node.op)
        return dispatch.strips_only and (not dispatch.rules or self._nothing_to_strip(node))

    def _looks_around_op(self, op: str) -> bool:
        return (self._dispatches.get(op) or self._dispatch(op)).looks_around

    def _has_lookers(self, graph: Graph) -> bool:
        """Whether a node of `graph` (the one `_fixpoint` works on) looks around (_Dispatch.looks_around): when
        none does, no rewrite has neighbours to revisit. Found once per graph, then kept up by `_rewrite_node`
        from the nodes each rewrite changes (no other node's op changes)."""
        if self._lookers is None:
            self._lookers = any(map(self._looks_around_op, {node.op for node in graph.nodes}))
        return self._lookers

    def _around(self, graph: Graph, names: List[str]) -> set:
        """The nodes among `names`, their neighbours, and neighbours of neighbours through Identity, whose rules
        look around (_Dispatch.looks_around): every node whose match can depend on them (input counts, ops and
        Consts behind Identity, used outputs, producer attrs). Control neighbours and producers behind Identity
        are taken too: revisiting a node that does not change is only work, and this walk is cheaper."""
        found, todo, seen, start = set(), list(names), set(names), set(names)
        while todo:
            name = todo.pop()
            node = graph.get(name)
            if node is None:
                continue
            if self._looks_around_op(node.op):
                found.add(name)
            if name in start or node.op == "Identity":
                for near in graph.neighbour_names(name):
                    if near not in seen:
                        seen.add(near)
                        todo.append(near)
        return found

    def _dispatch(self, op: str) -> "_Dispatch":
        """How a node of `op` is visited: its rules (by_op's and those for every op), once per op."""
        found = self._dispatches.get(op)
        if found is None:
            rules = self.by_op.get(op, []) + self.by_op.get("*", [])
            found = self._dispatches[op] = _Dispatch(
                [(rule, getattr(self, "_do_" + rule.action), rule.match.keys() <= _OP_ONLY) for rule in rules],
                any(rule.action == "decompose" for rule in rules),
                any(self._looks_around(rule) for rule in rules),
                all(rule.action == "strip_default_attrs" and rule.match.keys() <= _OP_ONLY for rule in rules))
        return found

    def _looks_around(self, rule: Rule) -> bool:
        """Whether what `rule` does to a node can depend on more than the node: its match reads its inputs,
        producers or readers, or its templates (which decide the ops a decomposition emits, and so whether it
        applies) read more of the context than the node's own name, op and attrs."""
        if not rule.match.keys() <= _OWN_KEYS:
            return True
        if rule.action not in ("decompose", "refuse"):
            return False
        used = self._template_reads(rule)
        if used is None or used <= _OWN_READS:
            return used is None
        # the input names (`inputs`) only written out, which templates the memo stands in for do, decide nothing
        from transpiler.engine.templates import writes_names_only

        return not (used - {"inputs"} <= _OWN_READS and writes_names_only([t for _, t in rule.templates()]))

    # ---- matching ---------------------------------------------------------
    def _matches(self, rule: Rule, graph: Graph, node: Node) -> bool:
        match = rule.match
        source = self.source_def(node.op)
        for attr, wanted in (match.get("attrs") or {}).items():
            value = self._attr_plain(node, source, attr)
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        for attr in match.get("default_attrs") or []:
            if attr in node.attrs and node.attrs[attr] != _default(source, attr):
                return False
        for attr in match.get("non_default_attrs") or []:
            if attr not in node.attrs or node.attrs[attr] == _default(source, attr):
                return False
        if "inputs" in match and len(graph.inputs(node.name)) != match["inputs"]:
            return False
        if "const_inputs" in match or "input_ops" in match or "const_input_bytes" in match or "not_const_inputs" in match:
            inputs = graph.inputs(node.name)
            if not _consts_match(match, lambda i: const_value(graph, inputs[i]) if i < len(inputs) else None):
                return False
            for index, wanted in (match.get("input_ops") or {}).items():
                source_node = producer(graph, inputs[int(index)]) if int(index) < len(inputs) else None
                if source_node is None or source_node.op not in (wanted if isinstance(wanted, list) else [wanted]):
                    return False
        for index, ranks in (match.get("not_input_ranks") or {}).items():
            inputs = graph.inputs(node.name)
            shape = known_shape(graph, inputs[int(index)]) if int(index) < len(inputs) else None
            if shape is not None and len(shape) in (ranks if isinstance(ranks, list) else [ranks]):
                return False
        unused = match.get("unused_outputs") or []
        return not (unused and self._used_flat_outputs(graph, node) & set(unused))

    def _attr_plain(self, node: Node, source, attr: str):
        value = node.attrs.get(attr)
        if value is None:
            value = _default(source, attr)
        return plain(value) if value is not None else None

    def _used_flat_outputs(self, graph: Graph, node: Node) -> set:
        ports = opdefs.output_ports(self.source_def(node.op), _attrs(node), graph.in_function)
        return {ports.index(p) if p in ports else p for p in graph.used_ports(node.name)}

    # ---- actions (each returns a detail string, or None when it did not apply) ----
    def _do_refuse(self, rule: Rule, graph: Graph, node: Node, function: Optional[str]) -> None:
        from transpiler.engine.templates import render_strings

        reason = render_strings([rule.spec], self.template_context(graph, node))[0]  # may name attrs: {{ attrs.x }}
        self.refused[(function, node.name)] = "refused by rule '%s': %s" % (rule.id, reason)
        if "target_before" in rule.when:
            self.behaviour_refused[(function, node.name)] = (node.op, self.refused[(function, node.name)])
        return None

    def _do_strip_default_attrs(self, rule: Rule, graph: Graph, node: Node, function: Optional[str]) -> Optional[str]:
        if self._nothing_to_strip(node):
            return None  # what rejected_attrs would find, without its per-node look-ups: nothing to strip
        producer = self.producer_ops.get(node.op) if function is None else None
        at_default, _ = opdefs.rejected_attrs(node.op, node.attrs, self.opset, producer)
        stripped = ["%s=%s" % (attr, _show(node.attrs.pop(attr))) for attr in at_default]
        return "stripped " + ", ".join(stripped) if stripped else None

    def _nothing_to_strip(self, node: Node) -> bool:
        """The target lacks the op, or has every attr of `node` but internal ones (once per op and attr names:
        nearly every node of a big graph has the attrs of many others)."""
        key = (node.op, tuple(node.attrs))
        found = self._strip_nothing.get(key)
        if found is None:
            known = self._target_attrs(node.op)
            found = known is None or all(attr in known or attr.startswith("_") for attr in node.attrs)
            if len(self._strip_nothing) >= MAX_ATTR_VALUES:
                self._strip_nothing.clear()
            self._strip_nothing[key] = found
        return found

    def _do_rename(self, rule: Rule, graph: Graph, node: Node, function: Optional[str]) -> Optional[str]:
        spec = rule.spec
        new_op = spec.get("op", node.op)
        if not self.available(new_op, frozenset([node.op])):
            return None
        source, target = self.source_def(node.op), self._def_for(new_op)
        attrs = dict(node.attrs)
        for attr in spec.get("drop_attrs") or []:
            if attr in attrs and attrs[attr] != _default(source, attr):
                self.refused[(function, node.name)] = "rule '%s' cannot drop %s=%s: not the default %s" % (
                    rule.id, attr, _show(attrs[attr]), _show(_default(source, attr)))
                return None
            attrs.pop(attr, None)
        for attr in spec.get("remove_attrs") or []:
            attrs.pop(attr, None)
        for old, new in (spec.get("rename_attrs") or {}).items():
            if old in attrs:
                attrs[new] = attrs.pop(old)
        for attr, value in (spec.get("set_attrs") or {}).items():
            attrs[attr] = make_attr(_attr_type(target, attr), value)
        if new_op == node.op and attrs == node.attrs:
            return None
        old_ports = opdefs.output_ports(source, _attrs(node), graph.in_function)
        before = node.attrs
        node.op, node.attrs = new_op, attrs
        if graph.in_function:
            _remap_ports(graph, node.name, old_ports, opdefs.output_ports(target, _attrs(node), True))
        removed = sorted(set(before) - set(attrs))
        change = ["%s -> %s" % (rule.op, new_op)] if new_op != rule.op else []
        return ", ".join(change + ["removed " + " ".join(removed)] if removed else change) or "attrs set"

    def _do_decompose(self, rule: Rule, graph: Graph, node: Node, function: Optional[str]) -> Optional[str]:
        from transpiler.engine.templates import TemplateError, render, render_strings, shaped_nodes

        inputs = graph.inputs(node.name)  # what the context shows and `_replace` rewires (nothing edits between)
        context = self.template_context(graph, node, self._template_reads(rule), inputs)
        specs, recipes = shaped_nodes(rule.spec, context)
        shaped = self._shaped(rule, node.op, specs, recipes)
        if not shaped.available:
            return None
        names = [s.name for s in specs]
        clash = [n for n in names if n != node.name and n in graph]
        if len(set(names)) < len(names):
            clash += [n for n in set(names) if names.count(n) > 1]
        if clash:
            raise TemplateError("node name %s is already taken" % clash[0])
        if isinstance(rule.outputs, str):
            outputs = render(rule.outputs, context)
            if not isinstance(outputs, list):
                raise TemplateError("outputs template must render a list of tensors")
            outputs = [str(o) for o in outputs]
        elif rule.outputs is not None:
            outputs = render_strings(rule.outputs, context)
        else:  # the last node takes the name; an op without outputs (a resource update) hands over control only
            has_outputs = self._output_ports(node, graph.in_function)
            outputs = [node.name] if has_outputs else []
        built = [(s, _copied(attrs) if attrs is not None else {k: self._attr(s.op, k, v) for k, v in s.attrs.items()})
                 for s, attrs in zip(specs, shaped.attrs)]
        self._replace(graph, node, built, outputs, inputs)
        self.emitted.update([((function, s.name), rule.id) for s in specs])
        return shaped.detail

    def _template_reads(self, rule: Rule) -> Optional[frozenset]:
        """templates.reads of the rule's templates (decompose or refuse, and outputs), once per rule."""
        found = self._reads.get(id(rule))
        if found is None or found[0] is not rule:
            from transpiler.engine.templates import reads

            found = self._reads[id(rule)] = (rule, reads([source for _, source in rule.templates()]))
        return found[1]

    def _shaped(self, rule: Rule, op: str, specs: List[NodeSpec], recipes: Optional[tuple]) -> "_Shaped":
        """What a decomposition's nodes give whatever their names, once per shape (`recipes`, from
        templates.shaped_nodes) and op matched: every node a rule fires on has one of a few shapes."""
        key = (id(recipes), op)
        found = self._shapes.get(key) if recipes is not None else None
        if found is not None and found.recipes is recipes:
            return found
        from transpiler.engine.templates import recipe_fixed

        available = all(self.available(s.op, frozenset([op])) for s in specs)
        fixed = [recipe_fixed(r) for r in recipes] if recipes is not None else [False] * len(specs)
        attrs = [{k: self._attr(s.op, k, v) for k, v in s.attrs.items()} if available and keep else None
                 for s, keep in zip(specs, fixed)]
        found = _Shaped(recipes, available, attrs, "%s -> %s" % (rule.op, " + ".join(s.op for s in specs)))
        if recipes is not None:
            if len(self._shapes) >= MAX_ATTR_VALUES:
                self._shapes.clear()
            self._shapes[key] = found
        return found

    # ---- decomposition plumbing ------------------------------------------
    def template_context(self, graph: Graph, node: Node, reads: Optional[frozenset] = None,
                         inputs: Optional[List[Tensor]] = None) -> dict:
        """What a template of a rule matching `node` sees; with `reads` (the names its templates read, as
        templates.reads finds them), only those of the costly entries (attrs, dtypes, shapes) are made. `inputs`:
        `graph.inputs(node.name)`, when the caller has it."""
        source = self.source_def(node.op)
        if inputs is None:
            inputs = graph.inputs(node.name)

        def const(index: int):
            """The value of the Const feeding input `index` (through Identity), or None."""
            return const_value(graph, inputs[index]) if 0 <= index < len(inputs) else None

        def producer_attrs(index: int) -> dict:
            """Plain attrs of the node producing input `index` ({} for function args)."""
            name = inputs[index].node if 0 <= index < len(inputs) else None
            return {k: plain(v) for k, v in graph[name].attrs.items()} if name in graph else {}

        context = {"name": node.name, "op": node.op, "inputs": [str(t) for t in inputs], "device": node.device,
                   "target": self.opset.release, "has_op": self.opset.has_op, "const": const,
                   "producer_attrs": producer_attrs}
        if reads is None or "attrs" in reads:
            context["attrs"] = self._plain_attrs(node)
        if reads is None or "dtypes" in reads:
            context["dtypes"] = opdefs.input_dtypes(source, node.attrs)
        if reads is None or "shapes" in reads:
            context["shapes"] = [known_shape(graph, t) for t in inputs]
        return context

    def _plain_attrs(self, node: Node) -> dict:
        """The node's attrs as plain data, with its source OpDef's defaults for those it does not set."""
        attrs = {k: plain(v) for k, v in node.attrs.items()}
        for attr, default in self._plain_defaults(node.op):
            if attr not in attrs:  # a list or dict copied: a template may edit what it is given
                attrs[attr] = copy.deepcopy(default) if type(default) in (list, dict) else default
        return attrs

    def _plain_defaults(self, op: str) -> List[Tuple[str, object]]:
        """(attr, plain default) of each attr of `op`'s source OpDef with a default, in its order, once per op
        (a shared value: callers copy what they keep)."""
        found = self._defaults.get(op)
        if found is None:
            source = self.source_def(op)
            found = self._defaults[op] = [(a.name, plain(a.default_value)) for a in (source.attr if source else ())
                                          if a.HasField("default_value")]
        return found

    def _replace(self, graph: Graph, node: Node, built: List[Tuple[NodeSpec, dict]], outputs: List[str],
                 original_inputs: List[Tensor]) -> None:
        old_ports = self._output_ports(node, graph.in_function)
        control = graph.control_inputs(node.name)
        own = {spec.name: (spec.op, attrs) for spec, attrs in built}
        anchor = self._anchor(graph, node.name, original_inputs)
        nodes = []
        tensor = (lambda text: self._template_tensor(own, text, True)) if graph.in_function else Tensor.parse
        for spec, attrs in built:
            inputs = [tensor(text) for text in spec.inputs]
            internal = any(t.node in own for t in inputs)
            roots = [] if internal else control + ([anchor] if anchor and not inputs else [])
            nodes.append((spec.name, spec.op, inputs, attrs, node.device if spec.device is None else spec.device,
                          spec.control_inputs + roots))
        new = {old_ports[i]: tensor(text) for i, text in enumerate(outputs)}
        graph.replace_by(node.name, nodes, new, control_output=built[-1][0].name)
        self._added.extend([spec.name for spec, _ in built])

    def _output_ports(self, node: Node, in_function: bool) -> list:
        """opdefs.output_ports of `node` against its source OpDef: once per op when no attr sets how many
        outputs it has (a fresh list each time: the caller may keep it)."""
        key = (node.op, in_function)
        found = self._fixed_ports.get(key)
        if found is None:
            source = self.source_def(node.op)
            found = opdefs.output_ports(source, node.attrs, in_function)
            if source is None or any(a.number_attr or a.type_list_attr for a in source.output_arg):
                return found
            self._fixed_ports[key] = found
        return list(found)

    def _anchor(self, graph: Graph, name: str, inputs: List[Tensor]) -> Optional[str]:
        """A node in the original's frame, for template nodes with no inputs (consts in while loops)."""
        if graph.in_function or not inputs or inputs[0].node not in graph or inputs[0].node == name:
            return None
        producer = inputs[0].node
        if graph[producer].op not in _NO_ANCHOR_OPS:
            return producer
        anchor = graph.unique_name(producer + "/_anchor")
        graph.add_node(anchor, "Identity", [inputs[0]], {"T": graph[producer].attrs["T"]}, graph[producer].device)
        self._added.append(anchor)
        return anchor

    def _template_tensor(self, own: Dict[str, Tuple[str, dict]], text: str, in_function: bool) -> Tensor:
        """Templates write `node` / `node:1`; in a function body, ports of emitted nodes (`own`: name -> (op,
        attrs), read off their OpDef and attrs, whether emitted before or after the reader) become `out_arg:i`
        (so an emitted node's tensor is read in graph form there: `node:1` has no out_arg yet)."""
        if not in_function or text.partition(":")[0] not in own:
            return Tensor.parse(text, in_function)
        tensor = Tensor.parse(text)
        op, attrs = own[tensor.node]
        return Tensor(tensor.node, opdefs.output_ports(self._def_for(op), attrs, True)[tensor.port])

    def _def_for(self, op: str) -> Optional[op_def_pb2.OpDef]:
        """The OpDef a node of `op` is built against: the target's, else the newest known (once per op)."""
        if op not in self._defs_for:
            self._defs_for[op] = self.opset.op(op) or self.source_def(op)
        return self._defs_for[op]

    def _attr(self, op: str, attr: str, value) -> attr_value_pb2.AttrValue:
        """make_attr(self._attr_type(op, attr), value), a fresh copy of the one made for an equal value."""
        attr_type = self._attr_type(op, attr)
        shared = self._shared_values.get((attr_type, id(value)))
        if shared is not None and shared[0] is value:
            made = shared[1]
        else:
            try:
                key = (attr_type, plain_key(value))
            except TypeError:  # not plain data: made as it is
                return make_attr(attr_type, value)
            made = self._attr_values.get(key)
            if made is None:
                if len(self._attr_values) >= MAX_ATTR_VALUES:
                    self._attr_values.clear()
                made = self._attr_values[key] = make_attr(attr_type, value)
            if len(self._shared_values) >= MAX_ATTR_VALUES:
                self._shared_values.clear()
            self._shared_values[(attr_type, id(value))] = (value, made)
        copy = attr_value_pb2.AttrValue()
        copy.CopyFrom(made)
        return copy

    def _attr_type(self, op: str, attr: str) -> str:
        """`_attr_type` of `_def_for(op)`, kept once found (a missing attr raises each time it is asked)."""
        key = (op, attr)
        found = self._attr_types.get(key)
        if found is None:
            found = self._attr_types[key] = _attr_type(self._def_for(op), attr)
        return found


def _copied(attrs: Dict[str, attr_value_pb2.AttrValue]) -> Dict[str, attr_value_pb2.AttrValue]:
    """Fresh copies of AttrValues a shape shares, for one node (a later pass may edit its attrs in place)."""
    copies = {}
    for key, value in attrs.items():
        copies[key] = copy = attr_value_pb2.AttrValue()
        copy.CopyFrom(value)
    return copies


def _show(value) -> str:
    return "%r" % (plain(value),) if value is not None else "unset"


#: Internal attrs a decomposition may set besides its OpDef's (TF checks no `_` attr against the OpDef),
#: by type: `_output_shapes` records what a node's outputs are (e.g. the rank match.not_input_ranks reads).
INTERNAL_ATTRS = {"_output_shapes": "list(shape)"}


def _attr_type(op_def, attr: str) -> str:
    found = INTERNAL_ATTRS.get(attr) or opdefs.attr_type(op_def, attr)
    if found is None:
        raise AttrError("op %s has no attr '%s'" % (op_def.name if op_def else "?", attr))
    return found


def _remap_ports(graph: Graph, name: str, old: list, new: list) -> None:
    for i, (before, after) in enumerate(zip(old, new)):
        if before != after:
            graph.replace_uses(Tensor(name, before), Tensor(name, after))


def _attrs(node: Optional[Node]) -> dict:
    return node.attrs if node is not None else {}


def _as_bytes(value) -> bytes:
    """A string Const's value as TF holds it (values.py decodes UTF-8 strings to str)."""
    return value.encode() if isinstance(value, str) else value


def _consts_match(match: dict, const: Callable[[int], object]) -> bool:
    """match.const_inputs, not_const_inputs and const_input_bytes against `const(index)` (a Const's value or None)."""
    for index, wanted in (match.get("const_inputs") or {}).items():
        value = const(int(index))
        if value is None or value not in _listed(wanted):
            return False
    for index, unwanted in (match.get("not_const_inputs") or {}).items():
        value = const(int(index))
        if value is not None and value in _listed(unwanted):
            return False
    for index, size in (match.get("const_input_bytes") or {}).items():
        value = const(int(index))
        if not isinstance(value, (str, bytes)) or len(_as_bytes(value)) != size:
            return False
    return True


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]
