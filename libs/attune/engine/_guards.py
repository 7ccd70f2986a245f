"""Jinja's filters and globals, held to the template's Budget (``_bounds.py``).

A filter that builds from its arguments (``center(width)``, ``indent``, ``wordwrap``, ``replace``,
``join``, ``format``, ``batch`` and ``slice`` with a filler, ``tojson(indent)``, ``urlize``) is
checked before it runs, from the sizes of what it is given; every filter that may give more than
it is given is checked after, on what it built. ``range``, ``lipsum``, ``dict`` and ``zip`` likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2.runtime import Context, Undefined
from jinja2.utils import _PassArg, generate_lorem_ipsum, pass_context

from ._bounds import Budget
from ._data import kind_of
from .errors import ExpressionError

__all__ = [
    "PASS_THROUGH_FILTERS",
    "guard_filter",
    "guarded_dict",
    "guarded_lipsum",
    "guarded_range",
    "guarded_zip",
]

#: Filters that never give more than they are given (or give it lazily, item by item): not guarded.
PASS_THROUGH_FILTERS = frozenset(
    {
        "abs",
        "attr",
        "count",
        "d",
        "default",
        "filesizeformat",
        "first",
        "float",
        "int",
        "items",
        "last",
        "length",
        "lower",
        "map",
        "max",
        "min",
        "random",
        "reject",
        "rejectattr",
        "reverse",
        "round",
        "safe",
        "select",
        "selectattr",
        "sort",
        "striptags",
        "trim",
        "unique",
        "wordcount",
    }
)


def _budget(context: Context) -> Budget:
    return context.budget  # type: ignore[attr-defined, no-any-return]  # our _DataContext


def _length(budget: Budget, value: Any) -> int:
    """The length of ``value`` as text, estimated without writing it out."""
    return len(value) if isinstance(value, str) else budget.size(value)


def _text(budget: Budget, value: Any, what: str) -> str:
    """``value`` as text, measured before it is written out."""
    if isinstance(value, str):
        return value
    budget.expect(budget.size(value), what)
    return str(value)


def _as_list(value: Any) -> Any:
    return value if isinstance(value, (list, tuple, str, Mapping)) else list(value)


# Each check takes the filter's arguments (without Jinja's context or environment), raises when
# the filter would build too much, and returns the value to give the filter (a materialised list
# where the check had to count an iterator's items).
def _center(budget: Budget, value: Any, width: Any = 80, *_: Any) -> Any:
    if isinstance(width, int):
        budget.expect(max(_length(budget, value), width), f"center({width})")
    return value


def _indent(budget: Budget, value: Any, width: Any = 4, *_: Any, **__: Any) -> Any:
    text = _text(budget, value, "indent")
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    budget.expect(len(text) + (text.count("\n") + 1) * pad, f"indent({pad})")
    return text


def _wordwrap(
    budget: Budget,
    value: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    *_: Any,
    **__: Any,
) -> Any:
    text = _text(budget, value, "wordwrap")
    lines = 2 * len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    joint = len(wrapstring) if isinstance(wrapstring, str) else 1
    budget.expect(len(text) + lines * joint, "wordwrap")
    return text


def _replace(budget: Budget, value: Any, old: Any = "", new: Any = "", count: Any = None) -> Any:
    text = _text(budget, value, "replace")
    old, new = _text(budget, old, "replace"), _text(budget, new, "replace")
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    budget.expect(len(text) + times * (len(new) - len(old)), "replace")
    return text


def _join(budget: Budget, value: Any, d: Any = "", *_: Any, **__: Any) -> Any:
    items = _as_list(value)
    joint = _length(budget, d)
    budget.expect(budget.size(items) + max(len(items) - 1, 0) * joint, "join")
    return items


def _format(budget: Budget, value: Any, *args: Any, **kwargs: Any) -> Any:
    text = _text(budget, value, "format")
    budget.before_printf(text, args or kwargs, "format")
    return text


def _batch(budget: Budget, value: Any, linecount: Any = 1, fill_with: Any = None) -> Any:
    items = _as_list(value)
    if fill_with is not None and isinstance(linecount, int):
        budget.expect(budget.size(items) + linecount * (budget.size(fill_with) + 2), f"batch({linecount})")
    return items


def _slice(budget: Budget, value: Any, slices: Any = 1, fill_with: Any = None) -> Any:
    items = _as_list(value)
    if isinstance(slices, int):
        budget.step(max(slices, 0))
        filler = 0 if fill_with is None else budget.size(fill_with) + 2
        budget.expect(budget.size(items) + slices * (2 + filler), f"slice({slices})")
    return items


def _tojson(budget: Budget, value: Any, indent: Any = None) -> Any:
    if isinstance(indent, int) and indent > 0:
        nodes, depth = _layout(value, budget.limits.max_bytes)
        budget.expect(budget.size(value) + nodes * (1 + indent * depth), f"tojson({indent})")
    return value


def _urlize(
    budget: Budget,
    value: Any,
    trim_url_limit: Any = None,
    nofollow: Any = False,
    target: Any = None,
    rel: Any = None,
    *_: Any,
    **__: Any,
) -> Any:
    text = _text(budget, value, "urlize")
    extra = 64 + _length(budget, target or "") + _length(budget, rel or "")
    links = sum(1 for word in text.split() if "." in word or "@" in word or ":" in word)
    budget.expect(2 * len(text) + links * extra, "urlize")
    return text


_BEFORE: dict[str, Callable[..., Any]] = {
    "batch": _batch,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "slice": _slice,
    "tojson": _tojson,
    "urlize": _urlize,
    "wordwrap": _wordwrap,
}


def _layout(value: Any, cap: int) -> tuple[int, int]:
    """How many values ``value`` holds and how deep it nests (stopping past ``cap`` values)."""
    nodes, deepest = 0, 0
    pending = [(value, 1)]
    while pending and nodes <= cap:
        item, depth = pending.pop()
        nodes += 1
        deepest = max(deepest, depth)
        if isinstance(item, Mapping):
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend((v, depth + 1) for v in item)
    return nodes, deepest


def guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (the filter ``name``) checked before and after it runs."""
    before = _BEFORE.get(name)
    passes = _PassArg.from_obj(function)
    what = f"the filter {name}"

    @pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(context)
        if before is not None:
            value = before(budget, value, *args, **kwargs)
        if passes is _PassArg.context:
            result = function(context, value, *args, **kwargs)
        elif passes is _PassArg.eval_context:
            result = function(context.eval_ctx, value, *args, **kwargs)
        elif passes is _PassArg.environment:
            result = function(context.environment, value, *args, **kwargs)
        else:
            result = function(value, *args, **kwargs)
        if isinstance(result, (str, list, tuple, dict)):
            return budget.built(result, what)
        return result

    return guarded


def guarded_range(context: Context, *args: Any) -> list[int]:
    """``range(…)`` as a list, at most ``max_steps`` long."""
    numbers = range(*args)
    budget = _budget(context)
    budget.check_range(len(numbers))
    budget.spend(len(numbers))
    return list(numbers)


def guarded_lipsum(context: Context, n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> str:
    """Jinja's ``lipsum``, its paragraphs and words counted first."""
    budget = _budget(context)
    if isinstance(n, int) and isinstance(min, int) and isinstance(max, int):
        budget.step(n if n > 0 else 0)
        words = n * (min if min > max else max)
        budget.expect(words * 12, f"lipsum({n}, …, {min}, {max})")
    text: str = generate_lorem_ipsum(n, html, min, max)
    return budget.built(text, "lipsum")  # type: ignore[no-any-return]


def guarded_dict(context: Context, *args: Any, **kwargs: Any) -> dict[Any, Any]:
    """``dict(…)``, measured like any mapping a template builds."""
    return _budget(context).built(dict(*args, **kwargs), "dict()")  # type: ignore[no-any-return]


def guarded_zip(context: Context, *lists: Any) -> list[list[Any]]:
    """``zip(a, b, …)``: ``[[a[0], b[0], …], [a[1], b[1], …], …]``, as long as the shortest list.

    Takes lists (and the lazy sequences filters give); its rows count as built, like any list."""
    budget = _budget(context)
    columns = []
    for position, value in enumerate(lists, 1):
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        if isinstance(value, Iterator):  # map, select, reverse…: as long as what they read
            value = list(value)
        if not isinstance(value, (list, tuple)):
            raise ExpressionError(f"zip() takes lists, but its argument {position} is {kind_of(value)}")
        columns.append(value)
    count = min((len(column) for column in columns), default=0)
    budget.step(count)
    budget.expect(sum(budget.size(column) for column in columns) + 4 * count, "zip()")
    budget.spend(count * (len(columns) + 1))
    return [list(row) for row in zip(*columns, strict=False)]
