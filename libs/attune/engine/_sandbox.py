"""The Jinja environment workflow templates run in: sandboxed, strict, and seeing data only.

Every lookup — ``a.b``, ``a['b']``, ``a[0]``, ``map(attribute='b')`` — reads a key of a mapping,
an element of a list (or a named field of a tuple such as ``groupby``'s), or a character or
slice of a string; never a method or any other Python attribute. So ``vars['items']`` is the
variable ``items`` or undefined, not ``Mapping.items``. Only Jinja's own helpers (``loop``, a
``cycler``, ``joiner`` or ``namespace``) keep their fields and methods.

Names bound to functions resolve to ``Function`` wrappers and every output goes through
``as_data`` (``_data.py``), so a function, a helper or a lazy view is an error naming it, never
a Python repr in the text.

What a template builds and does is bounded by its context's ``Budget`` (``_bounds.py``): ``*``,
``**``, ``+`` and ``%`` are checked before they run, and so are ``~``, list and mapping literals,
the text it renders, every loop round and call, and the filters and globals (``range``,
``lipsum``, ``dict``, ``zip``: ``_guards.py``).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes, runtime, utils
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from ._bounds import DEFAULT_LIMITS, LIMITS_NAME, Budget
from ._data import Function, NotData, as_data, dumps, not_data
from ._guards import PASS_THROUGH_FILTERS, guard_filter, guarded_dict, guarded_lipsum, guarded_range, guarded_zip

__all__ = ["CONTEXT_GLOBALS", "ENV", "GLOBALS", "new_context"]

_MAPPING, _SEQUENCE, _TEXT, _HELPER, _OTHER = range(5)
#: What each type of value is to a lookup; filled in as types are met.
_KINDS: dict[type, int] = {dict: _MAPPING, list: _SEQUENCE, tuple: _SEQUENCE, str: _TEXT}
_HELPERS = (runtime.LoopContext, utils.Cycler, utils.Joiner, utils.Namespace)
_FUNCTION_TYPES = frozenset({types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, functools.partial})


def _kind(cls: type) -> int:
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, _HELPERS):
            kind = _HELPER
        elif issubclass(cls, Mapping):
            kind = _MAPPING
        elif issubclass(cls, (list, tuple)):
            kind = _SEQUENCE
        elif issubclass(cls, str):
            kind = _TEXT
        else:
            kind = _OTHER
        _KINDS[cls] = kind
    return kind


class _WorkflowEnvironment(SandboxedEnvironment):
    """Lookups read data (keys, elements), never Python attributes; operators, loops and calls
    spend the context's budget."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget: Budget = context.budget  # type: ignore[attr-defined]  # a _DataContext
        budget.before_binop(operator, left, right)
        return budget.built(self.binop_table[operator](left, right), f"the operator {operator}")

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        # Every loop iterates through _rounds, which spends a step per round.
        for loop in list(source.find_all(nodes.For)):
            rounds = nodes.Call(nodes.ImportedName(_ROUNDS), [loop.iter], [], None, None, lineno=loop.iter.lineno)
            loop.iter = rounds.set_environment(self)
        return super()._generate(source, name, filename, defer_init)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._lookup(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, Undefined):
            argument._fail_with_undefined_error()
        return self._lookup(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is Function:
            # Our wrappers hold plain callables: none takes the context, so Jinja's checks for
            # that (a third of a `{{ succeeded() and … }}`) are skipped.
            if kwargs:
                kwargs.pop("_loop_vars", None)
                kwargs.pop("_block_vars", None)
            if __obj.with_context:
                return __obj.target(__context, *args, **kwargs)
            return __obj.target(*args, **kwargs)
        __context.budget.step()  # type: ignore[attr-defined]  # a macro can call itself
        return super().call(__context, __obj, *args, **kwargs)

    def _lookup(self, obj: Any, name: Any) -> Any:
        kind = _KINDS.get(type(obj))
        if kind is None:
            kind = _kind(type(obj))
        if kind == _MAPPING:
            try:
                return obj[name]
            except (KeyError, TypeError):
                return self._missing(obj, name, kind)
        if kind in (_SEQUENCE, _TEXT):
            if type(name) is int or type(name) is slice:
                try:
                    return obj[name]
                except IndexError:
                    pass
            elif type(name) is str and name in getattr(type(obj), "_fields", ()):
                return getattr(obj, name)  # a named tuple's field, e.g. groupby's grouper and list
            return self._missing(obj, name, kind)
        if kind == _HELPER and type(name) is str:
            value = super().getattr(obj, name)
            if callable(value) and not isinstance(value, (Undefined, Function)):
                return Function(name, value)  # loop.cycle, c.next: callable, never text
            return value
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        return self._missing(obj, name, kind)

    def _missing(self, obj: Any, name: Any, kind: int) -> Undefined:
        if kind == _MAPPING:
            hint = getattr(obj, "missing_hint", None)  # the engine's views name what is missing
            if hint is not None:
                return self.undefined(hint=hint(name))
        if type(obj).__module__ == "builtins":
            return self.undefined(obj=obj, name=name)  # Jinja's "'dict object' has no attribute 'x'"
        if isinstance(obj, Function):
            return self.undefined(hint=str(not_data(obj)))
        noun = "attribute" if isinstance(name, str) else "element"
        return self.undefined(hint=f"{type(obj).__name__} object has no {noun} {name!r}")


class _DataContext(Context):
    """Resolves names bound to functions (the engine's ``succeeded``, ``result``…) to
    ``Function`` wrappers: they can be called, but are never written as text. A wrapper replaces
    the function in the engine's names, so each is made once per event at most.

    Carries the evaluation's ``Budget``, made on first use from the limits in its names."""

    _budget: Budget | None = None

    @property
    def budget(self) -> Budget:
        budget = self._budget
        if budget is None:
            budget = self._budget = Budget(self.parent.get(LIMITS_NAME, DEFAULT_LIMITS))
        return budget

    def derived(self, locals: dict[str, Any] | None = None) -> Context:  # Jinja's name
        context = super().derived(locals)
        context._budget = self.budget  # type: ignore[attr-defined]  # one budget per evaluation
        return context

    def concat_text(self, parts: list[str]) -> str:
        """Join the text a macro, ``{% set %}`` or ``{% filter %}`` block rendered."""
        budget = self.budget
        size = sum(map(len, parts))
        budget.expect(size, "the rendered text")
        budget.spend(size)
        return "".join(parts)

    def join_text(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: each part as text, measured before it is written out."""
        budget = self.budget
        texts = []
        for part in parts:
            if type(part) is not str:
                if not isinstance(part, (int, float, str)):
                    budget.expect(budget.size(part), "~")
                part = str(part)
            texts.append(part)
        size = sum(map(len, texts))
        budget.expect(size, "~")
        budget.spend(size)
        return "".join(texts)

    def join_output(self, pieces: Iterable[str]) -> str:
        """The text a template renders, stopped as soon as it is over the limit."""
        limit = self.parent.get(LIMITS_NAME, DEFAULT_LIMITS).max_bytes
        texts = []
        size = 0
        for piece in pieces:
            size += len(piece)
            if size > limit:
                self.budget.expect(size, "the rendered text")
            texts.append(piece)
        return "".join(texts)

    def literal(self, value: Any) -> Any:
        """A list, tuple or mapping the template writes out (``[a, b]``, ``{'k': v}``)."""
        return self.budget.built(value, "a " + ("mapping" if type(value) is dict else "list"))

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            value = self.vars[key]
        elif key in self.parent:
            value = self.parent[key]
            if type(value) in _FUNCTION_TYPES:
                value = self.parent[key] = Function(key, value)
        else:
            return missing
        if type(value) in _FUNCTION_TYPES:
            return Function(key, value)
        return value


class LoopContext(NotData, runtime.LoopContext):
    """``loop`` inside ``{% for %}``."""

    what, advice = "loop", "use its fields, such as loop.index"


class Macro(NotData, runtime.Macro):
    """A ``{% macro %}``."""

    what, advice = "a macro", "call it"


class TemplateReference(NotData, runtime.TemplateReference):
    """``self``."""

    what = "self"


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, making the versions above of ``loop``, macros and ``self``: a
    compiled template imports Jinja's runtime names, then these over them. Joining text (``~``,
    a block's output) and writing a list or mapping go through the context, which measures them."""

    def writeline(self, x: str, node: nodes.Node | None = None, extra: int = 0) -> None:
        super().writeline(x, node, extra)
        if x.startswith("from jinja2.runtime import "):
            super().writeline(f"from {__name__} import LoopContext, Macro, TemplateReference")

    def write_commons(self) -> None:
        super().write_commons()
        self.writeline("concat = context.concat_text")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("context.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("context.literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("context.literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: `{% for a, b in … %}`
            super().visit_Tuple(node, frame)
            return
        self.write("context.literal(")
        super().visit_Tuple(node, frame)
        self.write(")")


class Cycler(NotData, utils.Cycler):
    """``cycler(…)``."""

    what, advice = "a cycler", "use its next() or current"


class Joiner(NotData, utils.Joiner):
    """``joiner(sep)``."""

    what, advice = "a joiner", "call it"


class Namespace(NotData, utils.Namespace):
    """``namespace(…)``."""

    what, advice = "a namespace", "use its fields"


def _to_json(value: Any) -> str:
    return dumps(value, sort_keys=True)


def _loop_rounds(context: _DataContext, iterable: Iterable[Any]) -> Iterable[Any]:
    """What a ``{% for %}`` loops over, a step spent per round (all at once when it has a length)."""
    budget = context.budget
    if hasattr(iterable, "__len__"):  # a list, string, mapping… (an undefined name raises here)
        budget.step(len(iterable))  # type: ignore[arg-type]  # it has a length
        return iterable
    return _counted(budget, iterable)


def _counted(budget: Budget, iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        budget.step()
        yield item


_rounds = Function("for", _loop_rounds, with_context=True)
_ROUNDS = f"{__name__}._rounds"

ENV = _WorkflowEnvironment(undefined=StrictUndefined, autoescape=False, finalize=as_data)
ENV.context_class = _DataContext
ENV.code_generator_class = _CodeGenerator
ENV.filters["to_json"] = _to_json
ENV.filters["json"] = _to_json
ENV.filters.update(
    {name: guard_filter(name, function) for name, function in ENV.filters.items() if name not in PASS_THROUGH_FILTERS}
)
ENV.policies["json.dumps_function"] = dumps  # Jinja's own tojson

#: Globals called with the template's context (they spend its budget): never called without it.
CONTEXT_GLOBALS: dict[str, Callable[..., Any]] = {
    "range": guarded_range,
    "lipsum": guarded_lipsum,
    "dict": guarded_dict,
    "zip": guarded_zip,
}
ENV.globals.update(cycler=Cycler, joiner=Joiner, namespace=Namespace)
ENV.globals.update({name: Function(name, value) for name, value in ENV.globals.items() if callable(value)})
ENV.globals.update({name: Function(name, value, with_context=True) for name, value in CONTEXT_GLOBALS.items()})
# Contexts are built by the engine and handed to Jinja as-is ("shared"), which skips Jinja's
# per-call merge of its globals; so contexts start from a copy of these.
GLOBALS: dict[str, Any] = dict(ENV.globals)


def new_context(template: Any, names: dict[str, Any]) -> _DataContext:
    """A Jinja context over ``names`` (which must include GLOBALS) for a compiled template."""
    # Template.new_context(shared=True) would still scan the template globals on every call;
    # our contexts already carry GLOBALS, so build the Context directly.
    return _DataContext(ENV, names, template.name, template.blocks)
