"""What a template may give back: data (JSON values), never a Python object.

A template can reach a few things that are not data: the functions in scope (``range``,
``succeeded``…), the helpers Jinja hands out (a ``cycler``, ``loop``), the lazy views behind
``vars`` and ``task``, and the generators some filters return. ``as_data`` turns a template's
value into plain data — views into dicts, tuples and iterators into lists — and refuses the
rest with an ExpressionError naming it. The objects that are not data also refuse to be written
as text (``str``, ``repr``, ``~``, ``| string``, ``to_json``), so no Python repr of one ever
reaches a result, an error or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NoReturn

from jinja2.runtime import LoopContext, Undefined

from .errors import ExpressionError

__all__ = ["SCALARS", "Function", "NotData", "as_data", "dumps", "kind_of", "not_data"]

SCALARS = frozenset({str, int, float, bool, type(None)})


class Function:
    """A function in a template's scope (``range``, ``succeeded``, ``loop.cycle``): it can be
    called, never written as text or handed out as a value. One ``with_context`` is called with
    the template's context first (``range`` and the like, which spend the template's budget)."""

    __slots__ = ("name", "target", "with_context")

    def __init__(self, name: str, target: Callable[..., Any], *, with_context: bool = False) -> None:
        self.name = name
        self.target = target
        self.with_context = with_context

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.target(*args, **kwargs)

    def __str__(self) -> NoReturn:
        raise not_data(self)

    __repr__ = __str__


class NotData:
    """Mixin for the Jinja objects a template may hold (``loop``, a macro, ``self``, a cycler, a
    joiner, a namespace): usable through their own fields and calls, never written as text or
    handed out."""

    __slots__ = ()
    #: How an error names the object ("a cycler") and says what to do instead.
    what: ClassVar[str] = "this object"
    advice: ClassVar[str] = ""

    def __str__(self) -> NoReturn:
        raise not_data(self)

    __repr__ = __str__


def not_data(value: object) -> ExpressionError:
    """The error for a template value that is not data, naming what it is."""
    if isinstance(value, Function):
        return ExpressionError(f"{value.name!r} is a function, not data: call it, as {value.name}()")
    if isinstance(value, NotData):
        kind = type(value)
        return ExpressionError(f"{kind.what} is not data" + (f": {kind.advice}" if kind.advice else ""))
    return ExpressionError(f"a {type(value).__name__} object is not data")


def as_data(value: Any) -> Any:
    """``value`` as plain data: the same object when it already is (the usual case), else a
    converted copy; raises ExpressionError for a value that is not data (or is undefined)."""
    cls = type(value)
    if cls in SCALARS:
        return value
    if cls is dict:
        return _mapping(value, copy=False)
    if cls is list:
        return _sequence(value, copy=False)
    return _other(value)


def _other(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (Function, NotData, LoopContext)):
        raise not_data(value)
    if isinstance(value, str):
        return str(value)  # Markup and str enums become plain strings
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return _mapping(value, copy=True)
    if isinstance(value, (list, tuple, range)):
        return _sequence(value, copy=True)
    if isinstance(value, Iterator):  # what map, select, unique, items, reverse… give
        return _sequence(list(value), copy=False)
    raise not_data(value)


def _mapping(mapping: Mapping[Any, Any], *, copy: bool) -> dict[Any, Any]:
    out: dict[Any, Any] | None = dict(mapping) if copy else None
    for key, item in (out if out is not None else mapping).items():
        if type(item) in SCALARS:
            continue
        data = as_data(item)
        if data is not item:
            if out is None:
                out = dict(mapping)
            out[key] = data  # replacing a value while iterating is safe: the keys do not change
    return out if out is not None else mapping  # type: ignore[return-value]  # a plain dict when not copied


def _sequence(items: Sequence[Any], *, copy: bool) -> list[Any]:
    out: list[Any] | None = list(items) if copy else None
    for index, item in enumerate(items):
        if type(item) in SCALARS:
            continue
        data = as_data(item)
        if data is not item:
            if out is None:
                out = list(items)
            out[index] = data
    return out if out is not None else items  # type: ignore[return-value]  # a plain list when not copied


def kind_of(value: Any) -> str:
    """What a data value is, in JSON's words: "a list", "an object", "a string", "null"…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of ``value`` as data (the ``to_json``/``json``/``tojson`` filters)."""
    return json.dumps(as_data(value), **kwargs)
