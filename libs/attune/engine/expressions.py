"""Workflow expressions: ``{{ … }}`` Jinja2 templates, sandboxed and strict.

Only strings written in the workflow file are templates. Values coming out of the
context (parameters, action results, published variables) are returned as they
are and never rendered again. A string that is exactly one ``{{ expr }}`` yields
the native value of ``expr``; anything else renders to a string.

Templates see data only (``_sandbox.py``): ``a.b`` and ``a['b']`` read keys of mappings and
elements of lists, never a method (``result().items`` is the ``items`` key or undefined), and
what a template gives is plain data (``_data.py``). Errors name the expression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError

from ._data import SCALARS, as_data
from ._sandbox import CONTEXT_GLOBALS, ENV, GLOBALS, new_context
from .errors import ExpressionError, ExpressionSyntaxError

__all__ = [
    "GLOBALS",
    "NestedExpressionError",
    "Renderer",
    "Template",
    "compile_template",
    "compile_value",
    "is_template",
    "render",
    "template_syntax_errors",
]

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\(\)\s*$")
#: Longest template source quoted in an error; a longer one is cut with a marker.
_QUOTED_MAX = 200


def is_template(value: object) -> bool:
    """True when ``value`` is a string holding Jinja markup."""
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


class Template:
    """A compiled workflow template; ``evaluate`` gives a native value or a string."""

    __slots__ = ("_call", "_native", "_text", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._native: Any = None  # the jinja Template computing `result = <expr>`
        self._call: str | None = None  # fast path: the expression is just `name()`
        try:
            tree = ENV.parse(source)
            self._text = ENV.from_string(tree)
        except TemplateSyntaxError as err:
            raise ExpressionSyntaxError(f"syntax error in {_quote(source)}: {err.message}") from err
        except Exception as err:  # Python cannot compile what Jinja made of it
            raise ExpressionSyntaxError(f"cannot compile {_quote(source)}: {_compile_problem(err)}") from err
        inner = _single_expression(source)
        if inner is not None:
            try:
                self._native = ENV.compile_expression(inner, undefined_to_none=False)._template
            except Exception:
                self._native = None  # fall back to rendering as text
            match = _CALL.match(inner)
            if match is not None and match.group(1) not in CONTEXT_GLOBALS:
                self._call = match.group(1)

    def evaluate(self, context: dict[str, Any]) -> Any:
        """Evaluate against ``context`` (which must include GLOBALS) to plain data; raises
        ExpressionError naming the expression."""
        try:
            if self._call is not None:
                function = context.get(self._call)
                if callable(function) and not isinstance(function, type):
                    value = function()
                    return value if type(value) in SCALARS else as_data(value)
            if self._native is not None:
                jinja_ctx = new_context(self._native, context)
                for _ in self._native.root_render_func(jinja_ctx):
                    pass
                value = jinja_ctx.vars["result"]
                return value if type(value) in SCALARS else as_data(value)
            jinja_ctx = new_context(self._text, context)
            return jinja_ctx.join_output(self._text.root_render_func(jinja_ctx))
        except ExpressionError as err:
            raise ExpressionError(f"expression {_quote(self.source)}: {err}") from err
        except TemplateError as err:
            raise ExpressionError(f"expression {_quote(self.source)}: {err.message or err}") from err
        except Exception as err:
            raise ExpressionError(f"expression {_quote(self.source)}: {type(err).__name__}: {err}") from err


def _compile_problem(err: Exception) -> str:
    if isinstance(err, RecursionError):
        return "it nests too deeply"
    if isinstance(err, SyntaxError):
        return f"it nests too deeply ({err.msg})"
    if isinstance(err, UnicodeError):
        return "it holds a character that is not valid text (a lone surrogate)"
    return f"{type(err).__name__}: {err}"


def _quote(source: str) -> str:
    """``source`` quoted for an error message (its head only when it is long)."""
    if len(source) <= _QUOTED_MAX:
        return repr(source)
    return repr(source[:_QUOTED_MAX]) + f" … [{len(source) - _QUOTED_MAX} more characters]"


def _single_expression(source: str) -> str | None:
    """The inner expression text when ``source`` (trimmed) is exactly one ``{{ … }}``."""
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    body = ENV.parse(text).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = body[0].nodes
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    inner = text[2:-2]
    if inner[:1] in "-+":
        inner = inner[1:]
    if inner[-1:] in "-+":
        inner = inner[:-1]
    return inner


@functools.lru_cache(maxsize=8192)
def compile_template(source: str) -> Template:
    """Compile (and cache) one template string; raises ExpressionSyntaxError."""
    return Template(source)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render workflow-file ``value`` recursively through dicts and lists.

    Raises ExpressionError whose message starts with the path inside ``value``
    (e.g. ``.hosts[2]: 'x' is undefined``) when a nested template fails.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        return compile_template(value).evaluate(context)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = _render_at(item, context, f".{key}")
        return out
    if isinstance(value, list):
        return [_render_at(item, context, f"[{i}]") for i, item in enumerate(value)]
    return value


Renderer = Callable[[dict[str, Any]], Any]


def compile_value(value: Any) -> Renderer:
    """Precompile ``render(value, ·)``: static parts are returned as they are (shared,
    treat as read-only), templates are compiled once. Same results and errors as ``render``."""
    if isinstance(value, str):
        if not is_template(value):
            return lambda _ctx: value
        return compile_template(value).evaluate
    if isinstance(value, dict):
        parts = [(key, compile_value(item), f".{key}") for key, item in value.items()]
        if all(_is_static(item) for item in value.values()):
            return lambda _ctx: value

        def render_dict(ctx: dict[str, Any]) -> dict[str, Any]:
            return {key: _call_at(part, ctx, step) for key, part, step in parts}

        return render_dict
    if isinstance(value, list):
        items = [(compile_value(item), f"[{i}]") for i, item in enumerate(value)]
        if all(_is_static(item) for item in value):
            return lambda _ctx: value
        return lambda ctx: [_call_at(part, ctx, step) for part, step in items]
    return lambda _ctx: value


def _is_static(value: Any) -> bool:
    if isinstance(value, str):
        return not is_template(value)
    if isinstance(value, dict):
        return all(_is_static(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_static(v) for v in value)
    return True


def _call_at(part: Renderer, ctx: dict[str, Any], step: str) -> Any:
    try:
        return part(ctx)
    except NestedExpressionError as err:
        raise NestedExpressionError(step + err.subpath, err.detail) from err
    except ExpressionError as err:
        raise NestedExpressionError(step, str(err)) from err


class NestedExpressionError(ExpressionError):
    """An ExpressionError raised inside a structure; ``subpath`` says where."""

    def __init__(self, subpath: str, message: str) -> None:
        self.subpath = subpath
        self.detail = message
        super().__init__(f"{subpath}: {message}")


def _render_at(value: Any, context: dict[str, Any], step: str) -> Any:
    try:
        return render(value, context)
    except NestedExpressionError as err:
        raise NestedExpressionError(step + err.subpath, err.detail) from err
    except ExpressionError as err:
        raise NestedExpressionError(step, str(err)) from err


def template_syntax_errors(value: Any, path: str) -> list[tuple[str, str]]:
    """Compile every template inside ``value``; return ``(path, message)`` per bad one."""
    problems: list[tuple[str, str]] = []
    if isinstance(value, str):
        if is_template(value):
            try:
                compile_template(value)
            except ExpressionSyntaxError as err:
                problems.append((path, str(err)))
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.extend(template_syntax_errors(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems.extend(template_syntax_errors(item, f"{path}[{i}]"))
    return problems
