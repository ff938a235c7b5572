"""A jinja2 sandbox with resource limits, for rule templates (untrusted input).

jinja2's sandbox keeps a template away from Python's internals, but not from
asking for unbounded work: ``{% for i in range(10**9) %}``, ``{{ 'a' * 10**10 }}``,
``{{ 2 ** 10**10 }}``, a macro that calls itself. `LimitedSandbox.render`
runs a template under a fresh `Budget` and stops it, with LimitExceeded, when it

* runs longer than MAX_SECONDS (checked at every call, attribute, item,
  operator, loop step and output),
* takes more than MAX_ITERATIONS loop steps in all (every ``{% for %}``
  iterates through the budget; `range` holds at most MAX_RANGE numbers),
* makes more than MAX_ALLOCATED units of data (about a character each; an
  element of a list counts one). Operators (``*``, ``**``, ``+``), ``~``,
  ``str.replace`` and the ``join`` and ``replace`` filters are sized before
  they run; calls, filters, slices and ``{{ }}`` output are charged after,
  and their arguments must fit the budget that is left,
* renders more than MAX_OUTPUT characters (a macro's result included),
* nests calls (macros) deeper than MAX_CALL_DEPTH, or computes an integer
  wider than MAX_INT_BITS.

Built-in lists and dicts are immutable (jinja2's ImmutableSandboxedEnvironment),
methods of other objects (protobuf messages from the model) are not callable,
and what a format spec sizes is not available: ``%`` on strings, ``str.format``,
``str.join`` (the ``join`` filter is), ``expandtabs``, ``translate``,
``int.to_bytes`` and the ``format``, ``indent`` and ``wordwrap`` filters.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import functools
import gc
import itertools
import math
import time
import types
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from google.protobuf.message import Message
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.filters import do_sum, make_attrgetter
from jinja2.environment import TemplateModule
from jinja2.runtime import LoopContext, Macro, TemplateReference
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Cycler, Namespace, generate_lorem_ipsum, pass_environment

#: Wall time of one render, in seconds (built-in templates take milliseconds).
MAX_SECONDS = 2.0
#: Renders between two young collections while cyclic collection is paused (see LimitedSandbox.render): a
#: render leaves about a hundred objects in cycles, so this bounds the uncollected ones to some 25 000.
RENDERS_PER_COLLECTION = 256
#: Loop steps of one render, all loops together.
MAX_ITERATIONS = 10_000
#: Numbers one `range()` may hold.
MAX_RANGE = 10_000
#: Characters one render (or one macro call) may output; YAML parsing of the result stays well under a second.
MAX_OUTPUT = 128 * 1024
#: Units of data (~characters) one render may make (built-in templates make under 100 000).
MAX_ALLOCATED = 1 << 21
#: Nested calls (macros calling macros).
MAX_CALL_DEPTH = 50
#: Bits of an integer made by `*` or `**`.
MAX_INT_BITS = 4096
#: Words `lipsum()` may make (n * max).
MAX_LIPSUM_WORDS = 10_000

#: Methods whose result a format spec or an argument sizes without bound, by the type that has them.
_UNSIZED_METHODS = {str: {"format", "format_map", "join", "expandtabs", "translate"},
                    bytes: {"join", "expandtabs", "translate"}, int: {"to_bytes"}}
#: Filters that multiply their input by an argument (width per line, a string per line, a format spec).
_UNSIZED_FILTERS = {"format", "indent", "wordwrap"}
#: Filters with an int argument sizing their result (width, item or slice count).
_INT_SIZED_FILTERS = {"center", "batch", "slice", "truncate"}
#: Types size() counts without looking inside (ints by digits).
_SCALARS = frozenset({int, float, bool, type(None)})
#: Objects whose methods a template may call (minus the methods above).
_METHOD_OWNERS = (str, bytes, int, float, list, tuple, dict, Namespace, LoopContext, Cycler, TemplateModule,
                  TemplateReference)


class LimitExceeded(SecurityError):
    """A render that went over one of the limits."""


@dataclasses.dataclass
class Budget:
    """What one render may still spend."""

    deadline: float
    iterations: int = MAX_ITERATIONS
    allocated: int = MAX_ALLOCATED
    depth: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("rendering took longer than %gs" % MAX_SECONDS)

    def step(self) -> None:
        self.tick()
        self.iterations -= 1
        if self.iterations < 0:
            raise LimitExceeded("loops ran more than %d iterations" % MAX_ITERATIONS)

    def charge(self, units: int, what: str) -> None:
        self.tick()
        self.allocated -= units
        if self.allocated < 0:
            raise LimitExceeded("%s: more than the %d units of data a template may make" % (what, MAX_ALLOCATED))

    def fits(self, value: Any, what: str) -> None:
        """Refuse to hand `value` to an operation when it alone is bigger than what is left."""
        if size(value, self.allocated) > self.allocated:
            raise LimitExceeded("%s: argument larger than the %d units of data left" % (what, self.allocated))


_BUDGET: contextvars.ContextVar[Optional[Budget]] = contextvars.ContextVar("template_budget", default=None)


def budget() -> Budget:
    """The current render's budget. Outside a render (jinja2 folding constants at compile time) there is
    none, and the operation is left to run time."""
    current = _BUDGET.get()
    if current is None:
        raise LimitExceeded("not rendering")
    return current


def size(value: Any, limit: int) -> int:
    """About the characters of ``str(value)``: strings by length, each element of a list, tuple or
    dict one more, ints by digits, protobuf messages by their byte size. Stops counting past `limit`."""
    kind = type(value)
    if kind is str:  # most values a render sizes (every output and `~` part): no walk
        return 1 + len(value)
    if kind in _SCALARS:
        return 1 if kind is not int else 1 + value.bit_length() // 3
    total, todo = 0, [value]
    while todo and total <= limit:
        item = todo.pop()
        kind = type(item)
        if kind in _SCALARS:  # most elements: no isinstance chain
            total += 1 if kind is not int else 1 + item.bit_length() // 3
        elif isinstance(item, (str, bytes)):
            total += 1 + len(item)
        elif isinstance(item, (list, tuple, set, frozenset, dict)):
            total += 1 + len(item)
            items = itertools.chain.from_iterable(item.items()) if isinstance(item, dict) else item
            todo.extend(x for x in itertools.islice(items, max(0, limit - total + 1)) if type(x) not in _SCALARS)
        elif isinstance(item, Message):
            total += 1 + item.ByteSize()
        else:
            total += 1
    return total


def bounded_range(*args: int) -> range:
    """`range`, holding at most MAX_RANGE numbers."""
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:  # more than sys.maxsize
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise LimitExceeded("range() of %s numbers (at most %d)" % (count if count <= 10**12 else "so many",
                                                                     MAX_RANGE))
    return numbers


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """jinja2's `lipsum`, making at most MAX_LIPSUM_WORDS words."""
    if n * max > MAX_LIPSUM_WORDS:
        raise LimitExceeded("lipsum() of up to %s words (at most %d)" % (n * max, MAX_LIPSUM_WORDS))
    return generate_lorem_ipsum(n, html, min, max)


def _replace_size(text: Any, old: Any, new: Any, count: int = -1) -> int:
    """Units of ``text.replace(old, new, count)``, without making it."""
    hits = len(text) + 1 if not old else text.count(old)
    hits = min(hits, count) if count is not None and count >= 0 else hits
    return len(text) + hits * max(0, len(new) - len(old))


def _replace_filter(text: Any, old: Any, new: Any, count: Optional[int] = None) -> str:
    """The `replace` filter, sized before it runs."""
    text, old, new = str(text), str(old), str(new)
    count = -1 if count is None else count
    budget().charge(_replace_size(text, old, new, count), "replace")
    return text.replace(old, new, count)


@pass_environment
def _join_filter(environment, value: Iterable, d: str = "", attribute: Any = None) -> str:
    """The `join` filter: each item is charged as it is turned into a string, then the separators."""
    current = budget()
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    items = []
    for item in value:
        current.charge(size(item, current.allocated), "join")
        items.append(str(item))
    separator = str(d)
    current.charge(len(separator) * max(0, len(items) - 1), "join")
    return separator.join(items)


@pass_environment
def _sum_filter(environment, iterable: Iterable, attribute: Any = None, start: Any = 0) -> Any:
    """The `sum` filter, for numbers only (adding lists one by one is quadratic)."""
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise SecurityError("sum() adds numbers")
    return do_sum(environment, iterable, attribute, start)


def _limited_filter(name: str, func: Callable) -> Callable:
    """`func` with its arguments checked against the budget and its result charged to it."""

    @functools.wraps(func)  # keeps jinja2's pass_context/pass_environment marks
    def limited(*args, **kwargs):
        current = budget()
        current.fits((args, kwargs), "filter %s" % name)
        if name in _INT_SIZED_FILTERS:
            _check_int_args(args, kwargs, "filter %s" % name)
        result = func(*args, **kwargs)
        current.charge(size(result, current.allocated), "filter %s" % name)
        return result

    return limited


def _check_int_args(args: tuple, kwargs: dict, what: str) -> None:
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, int) and abs(value) > MAX_RANGE:
            raise LimitExceeded("%s: %d is more than %d" % (what, value, MAX_RANGE))


def _is_str_method(obj: Any) -> bool:
    return isinstance(obj, types.BuiltinMethodType) and isinstance(obj.__self__, (str, bytes))


def _binop_units(operator: str, left: Any, right: Any, current: Budget) -> int:
    """Units the result of `left operator right` takes; LimitExceeded for an int too wide."""
    if operator == "%" and isinstance(left, (str, bytes)):
        raise SecurityError("string formatting with % is not available in rule templates (use ~)")
    ints = [v for v in (left, right) if isinstance(v, int)]
    if operator == "**" and len(ints) == 2 and abs(left) > 1 and right > 0:
        bits = math.log2(abs(left)) * right
    elif operator == "*" and len(ints) == 2:
        bits = left.bit_length() + right.bit_length()
    else:
        bits = 0
    if bits > MAX_INT_BITS:
        raise LimitExceeded("%s %s %s: an integer wider than %d bits" % (_short(left), operator, _short(right),
                                                                          MAX_INT_BITS))
    sequences = [v for v in (left, right) if isinstance(v, (str, bytes, list, tuple))]
    if operator == "*" and len(sequences) == 1 and len(ints) == 1:
        return max(ints[0], 0) * size(sequences[0], current.allocated)
    if operator == "+" and len(sequences) == 2:
        return size(left, current.allocated) + size(right, current.allocated)
    return 0


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float)) and abs(value) < 10**12 else type(value).__name__
    return text


#: Methods of LimitedSandbox the compiled template calls directly (the parser never makes
#: EnvironmentAttribute nodes, so a template cannot name them).
_HOOKS = ("bounded_iter", "bounded_concat")


def _hook(name: str, arg: nodes.Expr, lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), [arg], [], None, None, lineno=lineno)


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles every ``{% for %}`` to iterate through the budget, and every ``~`` to be sized first."""

    def visit_For(self, node: nodes.For, frame) -> None:
        node = copy.copy(node)
        node.iter = _hook("bounded_iter", node.iter, node.lineno)
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.visit(_hook("bounded_concat", nodes.Tuple(node.nodes, "load"), node.lineno), frame)

    def visit_Call(self, node: nodes.Call, frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name in _HOOKS:
            self.write("environment.%s(" % node.node.name)  # our own code: not through the sandbox's call()
            self.visit(node.args[0], frame)
            self.write(")")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment whose templates render within the module's limits (see `render`)."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, extra_filters: Optional[Dict[str, Callable]] = None, **kwargs: Any) -> None:
        super().__init__(finalize=self._charged_output, **kwargs)
        self._renders = 0
        self.globals.update(range=bounded_range, lipsum=bounded_lipsum)
        filters = dict(self.filters, join=_join_filter, replace=_replace_filter, sum=_sum_filter,
                       **(extra_filters or {}))
        self.filters = {name: _limited_filter(name, f) for name, f in filters.items()
                        if name not in _UNSIZED_FILTERS}

    def render(self, template, context: Dict[str, Any]) -> str:
        """Render `template` with `context` under a fresh budget; raises LimitExceeded over a limit.

        A render leaves reference cycles behind (its macros, namespaces, loop contexts): while cyclic collection
        is paused (ir.graph.collections_paused, over a whole conversion), the young generation is collected here
        after every RENDERS_PER_COLLECTION renders, so a graph of many non-memoized firings stays bounded."""
        token = _BUDGET.set(Budget(deadline=time.monotonic() + MAX_SECONDS))
        try:
            return self.concat(template.generate(**context))
        finally:
            _BUDGET.reset(token)
            self._renders += 1
            if self._renders % RENDERS_PER_COLLECTION == 0 and not gc.isenabled():
                gc.collect(0)

    # ---- hooks of the compiled template ----------------------------------
    def concat(self, parts: Iterable[str]) -> str:  # a render's output, a macro's result, {% set %} blocks
        chunks, total = [], 0
        for chunk in parts:
            total += len(chunk)
            if total > MAX_OUTPUT:
                raise LimitExceeded("more than %d characters of output" % MAX_OUTPUT)
            chunks.append(chunk)
        budget().charge(total, "output")
        return "".join(chunks)

    def bounded_concat(self, parts: tuple) -> str:
        """``a ~ b``: charged before the string is made."""
        current = budget()
        current.charge(sum(size(part, current.allocated) for part in parts), "~")
        return "".join(map(str, parts))

    def bounded_iter(self, iterable: Iterable) -> Iterator:
        """What every ``{% for %}`` iterates: one budget step per item."""
        current = budget()
        for item in iterable:
            current.step()
            yield item

    @staticmethod
    def _charged_output(value: Any) -> Any:  # every {{ }} before it becomes text
        current = budget()
        current.charge(size(value, current.allocated), "output")
        return value

    # ---- sandbox hooks ------------------------------------------------------
    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja2's convention)
        current = budget()
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop iterates too
            args = (__self.bounded_iter(args[0]),) + args[1:]
        if not isinstance(__obj, Macro):
            current.fits((args, kwargs), "call")
        if _is_str_method(__obj):
            _check_int_args(args, kwargs, __obj.__name__ + "()")
            if __obj.__name__ == "replace":
                current.charge(_replace_size(__obj.__self__, *args, **kwargs), "replace")
        current.depth += 1
        try:
            if current.depth > MAX_CALL_DEPTH:
                raise LimitExceeded("calls nested deeper than %d" % MAX_CALL_DEPTH)
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            current.depth -= 1
        current.charge(size(result, current.allocated), "call")
        return result

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        current = budget()
        current.charge(_binop_units(operator, left, right, current), "operator %s" % operator)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        current = budget()
        current.tick()
        value = super().getitem(obj, argument)
        if isinstance(argument, slice):  # a copy
            current.charge(size(value, current.allocated), "slice")
        return value

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if any(isinstance(obj, kind) and attr in names for kind, names in _UNSIZED_METHODS.items()):
            return False
        return not callable(value) or isinstance(obj, _METHOD_OWNERS)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not offered at all (is_safe_attribute refuses it)
