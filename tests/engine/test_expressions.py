"""Expressions: native values, strictness, sandbox, data never re-rendered."""

from __future__ import annotations

import pytest

from attune.engine.errors import ExpressionError, ExpressionSyntaxError
from attune.engine.expressions import GLOBALS, compile_template, render


def ctx(**names: object) -> dict[str, object]:
    return {**GLOBALS, **names}


def test_single_expression_keeps_native_type() -> None:
    c = ctx(p={"n": 42, "s": "42", "l": [1, 2], "d": {"a": 1}})
    assert render("{{ p.n }}", c) == 42
    assert render("{{ p.s }}", c) == "42"  # a data string that looks like a number stays a string
    assert render("{{ p.l }}", c) == [1, 2]
    assert render("  {{ p.d }}\n", c) == {"a": 1}
    assert render("n={{ p.n }}", c) == "n=42"
    assert render("{{ p.n }}{{ p.n }}", c) == "4242"


def test_data_is_not_rendered_again() -> None:
    c = ctx(out={"stdout": "{{ 7*7 }}"})
    assert render("{{ out.stdout }}", c) == "{{ 7*7 }}"
    assert render("x {{ out.stdout }}", c) == "x {{ 7*7 }}"
    assert render({"k": ["{{ out }}"]}, c) == {"k": [{"stdout": "{{ 7*7 }}"}]}


def test_strict_undefined_and_absence_tests() -> None:
    c = ctx(p={"a": 1})
    for source in ("{{ nope }}", "{{ p.b }}", "{{ p['b'] }}", "x{{ p.b }}", "{{ p.a.b.c }}"):
        with pytest.raises(ExpressionError):
            render(source, c)
    assert render("{{ p.b is defined }}", c) is False
    assert render("{{ p.b | default('d') }}", c) == "d"
    assert render("{{ nope | default(3) }}", c) == 3


def test_mapping_keys_win_over_dict_methods() -> None:
    c = ctx(r={"items": [1], "keys": "k"})
    assert render("{{ r.items }}", c) == [1]
    assert render("{{ r.keys }}", c) == "k"


def test_sandbox_blocks_unsafe_attributes() -> None:
    with pytest.raises(ExpressionError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", ctx())


def test_errors_inside_structures_name_the_path() -> None:
    with pytest.raises(ExpressionError) as caught:
        render({"a": [1, {"b": "{{ x }}"}]}, ctx())
    assert str(caught.value) == ".a[1].b: expression '{{ x }}': 'x' is undefined"


def test_runtime_errors_become_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}", ctx())
    with pytest.raises(ExpressionError, match="boom"):
        render("{{ f() }}", ctx(f=lambda: (_ for _ in ()).throw(ValueError("boom"))))


def test_syntax_errors_at_compile_time() -> None:
    with pytest.raises(ExpressionSyntaxError, match="syntax error"):
        compile_template("{{ a. }}")
    with pytest.raises(ExpressionSyntaxError):
        compile_template("{% if %}")


def test_whitespace_control_still_native() -> None:
    assert render("{{- [1] -}}", ctx()) == [1]


def test_zip_pairs_lists_up_to_the_shortest() -> None:
    c = ctx(p={"hosts": ["a", "b", "c"], "ports": [1, 2], "none": []})
    assert render("{{ zip(p.hosts, p.ports) }}", c) == [["a", 1], ["b", 2]]
    assert render("{{ zip(p.hosts, p.hosts | map('upper'), range(3)) }}", c) == [
        ["a", "A", 0],
        ["b", "B", 1],
        ["c", "C", 2],
    ]
    assert render("{{ zip(p.hosts) }}", c) == [["a"], ["b"], ["c"]]
    assert render("{{ zip(p.hosts, p.none) }}", c) == []
    assert render("{{ zip() }}", c) == []
    assert render("{% for h, n in zip(p.hosts, p.ports) %}{{ h }}{{ n }} {% endfor %}", c) == "a1 b2 "


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ zip(p.hosts, 'ab') }}", "zip() takes lists, but its argument 2 is a string"),
        ("{{ zip({'a': 1}) }}", "zip() takes lists, but its argument 1 is an object"),
        ("{{ zip(p.hosts, p.missing) }}", "'dict object' has no attribute 'missing'"),
        ("{{ zip }}", "'zip' is a function, not data: call it, as zip()"),
    ],
)
def test_zip_refuses_what_is_not_a_list(template: str, error: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(template, ctx(p={"hosts": ["a"]}))
    assert str(caught.value) == f"expression {template!r}: {error}"
