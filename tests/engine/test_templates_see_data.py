"""Templates see data, never Python objects (docs/workflows.md, Expressions).

Every dict method name, on every namespace, by item and by attribute access, is an undefined
name the workflow error names; functions, Jinja helpers and lazy views are errors naming them
however they are turned into text, never a Python repr.
"""

from __future__ import annotations

from typing import Any

import pytest

from attune.engine.errors import ExpressionError
from attune.engine.expressions import GLOBALS, render

from .driver import Simulation

DICT_METHODS = sorted(name for name in dir(dict) if not name.startswith("__"))
PRIVATE_NAMES = ["__class__", "__getitem__", "__init__", "_state", "_prefix", "missing_hint"]
#: Each namespace, and how an undefined name on it reads.
NAMESPACES = {
    "vars": "variable {name!r} is undefined",
    "workflow": "variable {name!r} is undefined",
    "parameters": "'dict object' has no attribute {name!r}",
    "task.probe": "'dict object' has no attribute {name!r}",
    "result()": "'dict object' has no attribute {name!r}",
}
#: Marks of a Python repr of something that is not data.
REPR_MARKS = ("<", " at 0x", "bound method", "built-in", "function ", "object at", "_EntryView")


def _publish(expression: str) -> dict[str, Any]:
    """A fixture: ``probe`` succeeds with a result, then publishes ``expression``."""
    return {
        "workflow": {
            "vars": [{"region": "eu"}],
            "tasks": [
                {
                    "name": "probe",
                    "action": "core.local",
                    "next": [{"publish": [{"x": expression}], "do": "after"}],
                },
                {"name": "after", "action": "core.noop"},
            ],
        },
        "parameters": {"env": "prod"},
        "outcomes": {"probe": [{"result": {"stdout": "ok"}}]},
    }


def _error_of(expression: str) -> str:
    run = Simulation(_publish(expression), "workflows/see_data.workflow.yaml").execute()
    assert run.finish is not None and run.finish.status == "failed", run.finish
    assert run.finish.error is not None
    return run.finish.error


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
@pytest.mark.parametrize("access", ["attribute", "item"])
def test_dict_method_names_are_undefined(namespace: str, access: str) -> None:
    for name in DICT_METHODS + PRIVATE_NAMES:
        lookup = f".{name}" if access == "attribute" else f"[{name!r}]"
        expression = "{{ " + namespace + lookup + " }}"
        message = NAMESPACES[namespace].format(name=name)
        error = _error_of(expression)
        assert error == f'task "probe", field next[0].publish.x: expression {expression!r}: {message}'
        assert not any(mark in error for mark in REPR_MARKS), error


def test_undefined_names_still_work_with_is_defined_and_default() -> None:
    names = {**GLOBALS, "parameters": {"env": "prod"}, "r": {"items": [1]}}
    assert render("{{ parameters['items'] is defined }}", names) is False
    assert render("{{ parameters.keys | default('none') }}", names) == "none"
    assert render("{{ r['items'] }}", names) == [1]


NOT_DATA = {
    "range": "'range' is a function, not data: call it, as range()",
    "succeeded": "'succeeded' is a function, not data: call it, as succeeded()",
    "cycler(1, 2)": "a cycler is not data: use its next() or current",
    "joiner()": "a joiner is not data: call it",
    "namespace(a=1)": "a namespace is not data: use its fields",
    "self": "self is not data",
}
#: Every way a value can be turned into text or JSON.
AS_TEXT = ["{{ X }}", "x {{ X }}", "{{ X ~ '' }}", "{{ X | string }}", "{{ X | pprint }}", "{{ '%s' % X }}",
           "{{ [X] }}", "{{ {'k': X} }}", "{{ X | to_json }}", "{{ X | tojson }}", "{{ [X] | join }}"]  # fmt: skip


@pytest.mark.parametrize("value", sorted(NOT_DATA))
@pytest.mark.parametrize("template", AS_TEXT)
def test_what_is_not_data_never_becomes_text(value: str, template: str) -> None:
    source = template.replace("X", value)
    with pytest.raises(ExpressionError) as caught:
        render(source, {**GLOBALS, "succeeded": lambda: True})
    message = str(caught.value)
    assert message == f"expression {source!r}: {NOT_DATA[value]}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for x in [1] %}{{ loop ~ '' }}{% endfor %}", "loop is not data: use its fields, such as loop.index"),
        ("{% for x in [1] %}{{ loop.cycle }}{% endfor %}", "'cycle' is a function, not data: call it, as cycle()"),
        ("{% macro m() %}M{% endmacro %}{{ m | string }}", "a macro is not data: call it"),
        ("{{ result.stdout }}", "'result' is a function, not data: call it, as result()"),
        ("{{ 'a,b'.split(',') }}", "'str object' has no attribute 'split'"),
        ("{{ (1).real }}", "'int object' has no attribute 'real'"),
        ("{{ [1, 2].append }}", "'list object' has no attribute 'append'"),
    ],
)
def test_helpers_and_methods_are_not_data(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(source, {**GLOBALS, "result": lambda: {"stdout": "x"}})
    assert str(caught.value) == f"expression {source!r}: {message}"


def test_jinja_helpers_still_work() -> None:
    names = dict(GLOBALS)
    assert render("{% for x in 'ab' %}{{ loop.index }}{{ loop.cycle('-', '+') }}{% endfor %}", names) == "1-2+"
    assert render("{% set ns = namespace(n=1) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}", names) == "2"
    assert render("{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.current }}", names) == "aba"
    assert render("{% set j = joiner('|') %}{% for x in [1, 2] %}{{ j() }}{{ x }}{% endfor %}", names) == "1|2"
    rows = [{"city": "x", "n": 1}, {"city": "y", "n": 2}, {"city": "x", "n": 3}]
    grouped = "{% for g in rows | groupby('city') %}{{ g.grouper }}={{ g.list | map(attribute='n') | sum }};"
    grouped += "{% endfor %}"
    assert render(grouped, {**names, "rows": rows}) == "x=4;y=2;"
    assert render("{{ range(3) }}", names) == [0, 1, 2]
    assert render("{{ rows | map(attribute='n') }}", {**names, "rows": rows}) == [1, 2, 3]
