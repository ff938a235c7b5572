"""Where a decomposition template's node names go: whether it only ever writes them out.

template_memo renders a template once per kind of node, for placeholders in place of the node's own name
and its input names (`name`, `inputs`), when nothing the template decides depends on those names. This
module tells that from the syntax tree. A name may

* be written out: ``{{ name }}``, ``{{ inputs[i] }}`` for an index `i` that does not depend on the names;
* be joined by ``~`` with other strings into a value that goes only where a name may go;
* be kept in a variable, ``{% set p = name ~ "/" %}``, whose every use is one of these;
* be chosen by a condition that does not depend on the names, ``a if stage == last else p ~ stage``;
* be handed to a macro (defined in the template, or imported from the shared macros), whose parameter is
  then followed in its body the same way; what such a call writes is followed as a name too.

Anything else that sees a name (a filter, a test, a comparison, ``in``, a loop over it, a method or
attribute, a list, a namespace, another function) may decide on its characters, and the memo does not
stand in. Variables are followed by name, wherever they are set (a name set from a node name anywhere
counts as one everywhere): coarser than jinja2's scopes, so it may refuse a template it could take, never
the other way round. A placeholder keeps the length of the name it stands for, so even a decision on a
length would come out the same; the analysis does not rely on that.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from jinja2 import nodes

#: The context names the memo stands in for.
NAMES = frozenset({"name", "inputs"})
#: Tags whose body reaches code this analysis does not follow.
_REFUSED = (nodes.CallBlock, nodes.FilterBlock, nodes.Include, nodes.Extends, nodes.AssignBlock)

#: A loader of an imported template's syntax tree by its name (None: it cannot be had).
ModuleLoader = Callable[[str], Optional[nodes.Template]]


class _Refused(Exception):
    """A name reaches something that may decide on it."""


def writes_names_only(tree: nodes.Template, load: ModuleLoader) -> bool:
    """Whether template `tree` uses `name` and `inputs` only as the module docstring allows; `load` gives the
    trees of the templates it imports macros from."""
    try:
        _Scope(tree.body, _macros(tree), _imports(tree, load, {}), set(NAMES), main=True).follow()
    except _Refused:
        return False
    return True


class _Module:
    """An imported template: its macros, followed from the calls that hand them names."""

    def __init__(self, tree: nodes.Template):
        self.macros = _macros(tree)
        self.imports: Dict[str, Tuple["_Module", Optional[str]]] = {}
        self.tainted: Dict[str, Set[str]] = {}  # macro name -> its parameters that are handed a name
        self._followed: Dict[str, frozenset] = {}  # what each macro was followed with (kept: imports may cycle)

    def hand(self, macro: str, params: List[str]) -> bool:
        """Record that `macro`'s `params` are handed names; whether that is news."""
        if not params:
            return False
        known = self.tainted.setdefault(macro, set())
        new = set(params) - known
        known |= new
        return bool(new)

    def follow(self) -> None:
        """Follow every macro handed a name (and, through them, the macros they hand names to)."""
        while True:
            todo = [(m, frozenset(p)) for m, p in self.tainted.items() if self._followed.get(m) != frozenset(p)]
            if not todo:
                return
            for macro, params in todo:
                self._followed[macro] = params
                body = self.macros[macro]
                _Scope(body.body + body.defaults, self.macros, self.imports, set(params), main=False,
                       module=self).follow()


class _Scope:
    """The statements of one template (main: the rendered one, its macros included, where `name` and
    `inputs` are the node's names) or of one imported macro's body (its parameters handed names)."""

    def __init__(self, body: List[nodes.Node], macros: Dict[str, nodes.Macro],
                 imports: Dict[str, Tuple["_Module", Optional[str]]], tainted: Set[str], main: bool,
                 module: Optional["_Module"] = None):
        self.body, self.macros, self.imports, self.main, self.module = body, macros, imports, main, module
        self.tainted = tainted

    def follow(self) -> None:
        """Spread the names to the variables and parameters they reach until nothing changes, then check
        every use; _Refused when one may decide on a name."""
        while self._spread():
            pass
        for statement in self.body:
            self._check(statement, False)
        for module in {id(m): m for m, _ in self.imports.values()}.values():
            module.follow()

    # ---- spreading ----------------------------------------------------------
    def _spread(self) -> bool:
        changed = False
        for statement in self.body:
            for node in _walk(statement):
                if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                    changed |= self._taint(node.target.name, self._carries(node.node))
                elif isinstance(node, nodes.With):
                    for target, value in zip(node.targets, node.values):
                        if isinstance(target, nodes.Name):
                            changed |= self._taint(target.name, self._carries(value))
                elif isinstance(node, nodes.Call):
                    changed |= self._hand(node)
        return changed

    def _taint(self, variable: str, carries: bool) -> bool:
        if not carries or variable in self.tainted:
            return False
        self.tainted.add(variable)
        return True

    def _hand(self, call: nodes.Call) -> bool:
        """Taint the parameters of a known macro that `call` hands names to."""
        found = self._callee(call)
        if found is None:
            return False
        macro, module = found
        params = _handed(macro, call, self._carries)
        if module is not None:
            return module[0].hand(module[1], params)
        return any([self._taint(p, True) for p in params])

    def _callee(self, call: nodes.Call):
        """(Macro node, None) for a macro of this scope, (Macro node, (module, name)) for an imported one, or
        None: not a macro call (or one whose arguments are not plain)."""
        if call.dyn_args is not None or call.dyn_kwargs is not None:
            return None
        target = call.node
        if isinstance(target, nodes.Name) and target.name in self.macros:  # in a module: a macro beside this one
            macro = self.macros[target.name]
            return macro, None if self.module is None else (self.module, target.name)
        if isinstance(target, nodes.Name) and target.name in self.imports and self.imports[target.name][1]:
            module, name = self.imports[target.name]
            return module.macros.get(name), (module, name)
        if isinstance(target, nodes.Getattr) and isinstance(target.node, nodes.Name) and \
                target.node.name in self.imports and self.imports[target.node.name][1] is None:
            module = self.imports[target.node.name][0]
            return module.macros.get(target.attr), (module, target.attr)
        return None

    def _carries(self, expr: nodes.Node) -> bool:
        """Whether the value of `expr` may hold a node name (when it is a kind the rules let carry one)."""
        if isinstance(expr, nodes.Name):
            return expr.name in self.tainted
        if isinstance(expr, nodes.Getitem):
            return self._is_inputs(expr.node)
        if isinstance(expr, nodes.Concat):
            return any(self._carries(part) for part in expr.nodes)
        if isinstance(expr, nodes.CondExpr):
            return self._carries(expr.expr1) or (expr.expr2 is not None and self._carries(expr.expr2))
        if isinstance(expr, nodes.Call):
            found = self._callee(expr)
            if found is None:
                return False
            if found[1] is None and self.main:  # a macro of the template itself may read `name` as it likes
                return True
            return any(self._carries(arg) for arg in list(expr.args) + [k.value for k in expr.kwargs])
        return False

    def _is_inputs(self, expr: nodes.Node) -> bool:
        return self.main and isinstance(expr, nodes.Name) and expr.name == "inputs"

    # ---- checking -----------------------------------------------------------
    def _check(self, node: nodes.Node, free: bool) -> None:
        """Raise _Refused when a name may reach a decision in `node`; `free`: the node's value goes only where
        a name may (written out, set to a variable, handed to a macro)."""
        if isinstance(node, _REFUSED):
            raise _Refused(type(node).__name__)
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and (node.name in self.tainted and not free or self._is_inputs(node)):
                raise _Refused(node.name)
        elif isinstance(node, nodes.Getitem) and self._is_inputs(node.node):
            if not free:
                raise _Refused("inputs[...]")
            self._check(node.arg, False)
        elif isinstance(node, nodes.Concat):
            for part in node.nodes:
                self._check(part, free)
        elif isinstance(node, nodes.CondExpr):
            self._check(node.test, False)
            self._checks([node.expr1, node.expr2], free)
        elif isinstance(node, nodes.Call) and self._callee(node) is not None:
            if not free and self._carries(node):
                raise _Refused("a macro's output")
            self._checks(list(node.args) + [k.value for k in node.kwargs], True)
        elif isinstance(node, nodes.Output):
            self._checks(node.nodes, True)
        elif isinstance(node, nodes.Assign):
            self._check(node.node, isinstance(node.target, nodes.Name))
        elif isinstance(node, nodes.With):
            self._checks(node.values, True)
            self._checks(node.body, False)
        else:
            self._checks(node.iter_child_nodes(), False)

    def _checks(self, children: Iterable[Optional[nodes.Node]], free: bool) -> None:
        for child in children:
            if child is not None:
                self._check(child, free)


def _walk(node: nodes.Node) -> Iterable[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def _handed(macro: nodes.Macro, call: nodes.Call, carries: Callable[[nodes.Node], bool]) -> List[str]:
    """The parameters of `macro` that `call` hands a value that may hold a name; _Refused when such a value
    goes where the macro has no parameter (varargs, kwargs) or the callee is unknown."""
    if macro is None:
        raise _Refused("an unknown macro")
    params = [arg.name for arg in macro.args]
    handed = []
    for i, arg in enumerate(call.args):
        if carries(arg):
            if i >= len(params):
                raise _Refused("a name in varargs")
            handed.append(params[i])
    for keyword in call.kwargs:
        if carries(keyword.value):
            if keyword.key not in params:
                raise _Refused("a name in kwargs")
            handed.append(keyword.key)
    return handed


def _macros(tree: nodes.Template) -> Dict[str, nodes.Macro]:
    """The macros `tree` defines, by name, when nothing else takes that name (a variable or parameter
    of the same name would make a call ambiguous: such macros are left out, their calls not followed)."""
    defined = {m.name: m for m in tree.find_all(nodes.Macro)}
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    counts: Dict[str, int] = {}
    for m in tree.find_all(nodes.Macro):
        counts[m.name] = counts.get(m.name, 0) + 1
    return {name: m for name, m in defined.items() if name not in stored and counts[name] == 1}


def _imports(tree: nodes.Template, load: ModuleLoader,
             modules: Dict[str, _Module]) -> Dict[str, Tuple[_Module, Optional[str]]]:
    """What `tree` imports without context, by the name it is known by: (module, macro name) for
    `from "f" import m`, (module, None) for `import "f" as m`. An import of a template that cannot be
    loaded is _Refused (so is one with context, which hands the template's names over). `modules`: those
    loaded so far, by template name (one object per template, however often or circularly imported)."""
    found: Dict[str, Tuple[_Module, Optional[str]]] = {}
    for tag in tree.find_all((nodes.Import, nodes.FromImport)):
        if tag.with_context or not isinstance(tag.template, nodes.Const) or not isinstance(tag.template.value, str):
            raise _Refused("an import")
        name = tag.template.value
        if name not in modules:
            module_tree = load(name)
            if module_tree is None:
                raise _Refused("import of %s" % name)
            modules[name] = module = _Module(module_tree)  # known before its own imports are read
            module.imports = _imports(module_tree, load, modules)
        if isinstance(tag, nodes.Import):
            found[tag.target] = (modules[name], None)
        else:
            for item in tag.names:
                macro, alias = item if isinstance(item, tuple) else (item, item)
                found[alias] = (modules[name], macro)
    return found
