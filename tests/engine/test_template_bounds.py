"""Templates cannot exhaust memory or CPU (issue #13; docs/workflows.md, Expressions).

Each way a short template builds a huge value or loops for ever is refused before it does, in
milliseconds, as a template error naming the expression and the limit; templates at the limits
still work; and a workflow holds its templates to the limits it was started with.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from attune.engine import TemplateLimits, WorkflowState
from attune.engine.errors import ExpressionError
from attune.engine.expressions import GLOBALS, render

from .driver import Simulation

BYTES = "over the limit of 4,194,304 for a value a template builds (ATTUNE_TEMPLATE_MAX_BYTES)"
STEPS = (
    "the template would take more than the limit of 100,000 steps (loop rounds and calls; ATTUNE_TEMPLATE_MAX_STEPS)"
)
DIGITS = "over the limit of 4,300"

#: Each template, and what its error says after ``expression '…': ``.
REFUSED = {
    "{{ 'x' * 10**8 }}": f"repeating 100,000,000 times with * would build 100,000,000 bytes, {BYTES}",
    "{{ 10**8 * [0] }}": f"repeating 100,000,000 times with * would build 500,000,000 bytes, {BYTES}",
    "{{ 'x' | center(10**8) }}": f"center(100000000) would build 100,000,000 bytes, {BYTES}",
    "{{ 'x' | indent(10**8, true) }}": f"indent(100000000) would build 100,000,001 bytes, {BYTES}",
    "{{ 'a b' | wordwrap(1, wrapstring='-' * 4000000) }}": f"wordwrap would build 28,000,003 bytes, {BYTES}",
    "{{ '%0100000000d' % 1 }}": f"formatting with % would build 100,000,012 bytes, {BYTES}",
    "{{ '%*d' % (100000000, 1) }}": f"formatting with % would build 100,000,003 bytes, {BYTES}",
    "{{ '%.100000000f' | format(1.5) }}": f"format would build 100,000,012 bytes, {BYTES}",
    "{{ ('x' * 1000) | replace('x', 'y' * 10000) }}": f"replace would build 10,000,000 bytes, {BYTES}",
    "{{ range(100000) | join('x' * 1000) }}": f"join would build 100,724,690 bytes, {BYTES}",
    "{{ [1] | batch(10**9, 'x') | list }}": f"batch(1000000000) would build 3,000,000,005 bytes, {BYTES}",
    "{{ {'a': 1} | tojson(10**8) }}": f"tojson(100000000) would build 400,000,008 bytes, {BYTES}",
    "{{ lipsum(1, false, 10**8, 10**8) }}": (
        f"lipsum(1, …, 100000000, 100000000) would build 1,200,000,000 bytes, {BYTES}"
    ),
    "{{ 'x' * 4000000 ~ 'y' * 4000000 }}": f"~ would build 8,000,000 bytes, {BYTES}",
    "{{ 'x' * 4000000 + 'y' * 4000000 }}": f"adding with + would build 8,000,000 bytes, {BYTES}",
    "{% for i in range(5) %}{{ 'x' * 1000000 }}{% endfor %}": f"the rendered text would build 5,000,000 bytes, {BYTES}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}": (
        f"~ would build 8,388,608 bytes, {BYTES}"
    ),
    # a list holding the same list twice, 60 times over: 2**60 values once written out as JSON
    "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}": (
        f"a list would build 5,767,162 bytes, {BYTES}"
    ),
    "{{ 2 ** (10**9) }}": (
        f"raising to the power 1,000,000,000 would give a number of about 301,030,001 digits, {DIGITS}"
    ),
    "{{ 10 ** 5000 }}": f"raising to the power 5,000 would give a number of about 4,516 digits, {DIGITS}",
    "{{ (10 ** 3000) * (10 ** 3000) }}": f"multiplying with * would give a number of about 6,001 digits, {DIGITS}",
    "{{ range(10**9) }}": "range() of 1,000,000,000 numbers is over the limit of 100,000 (ATTUNE_TEMPLATE_MAX_STEPS)",
    "{{ zip(['x' * 3000000], ['y' * 3000000]) }}": f"zip() would build 6,000,012 bytes, {BYTES}",
    "{% for i in range(2) %}{{ zip(range(100000), range(100000)) | length }}{% endfor %}": STEPS,
    "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}": STEPS,
    "{{ [] | slice(10**9) | list }}": STEPS,
}


def _names(**more: Any) -> dict[str, Any]:
    return {**GLOBALS, "parameters": {"hosts": ["web1", "web2"]}, **more}


@pytest.mark.parametrize("template", sorted(REFUSED))
def test_a_template_building_too_much_is_refused_fast_naming_the_limit(template: str) -> None:
    began = time.perf_counter()
    with pytest.raises(ExpressionError) as refused:
        render(template, _names())
    elapsed = time.perf_counter() - began
    assert str(refused.value) == f"expression {template!r}: {REFUSED[template]}"
    assert elapsed < 0.5, f"took {elapsed:.3f}s"


def test_a_macro_calling_itself_twice_runs_out_of_steps() -> None:
    template = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    names = _names(**{"template limits": TemplateLimits(max_steps=1000)})
    with pytest.raises(ExpressionError, match="more than the limit of 1,000 steps"):
        render(template, names)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ('x' * 4194304) | length }}", 4194304),
        ("{% for i in range(100000) %}{% endfor %}done", "done"),
        ("{{ range(100000) | length }}", 100000),
        ("{{ 2 ** 14000 > 0 }}", True),
        ("{{ [1, 2] * 3 }}", [1, 2, 1, 2, 1, 2]),
        ("{{ 'ab' ~ 3 ~ [1] }}", "ab3[1]"),
        ("{{ '%5d|%-3s|%.2f' % (1, 'a', 2.5) }}", "    1|a  |2.50"),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ parameters.hosts | join(', ') | upper }}", "WEB1, WEB2"),
        ("{% for h in parameters.hosts %}{{ loop.index }}:{{ h }} {% endfor %}", "1:web1 2:web2 "),
        ("{{ {'a': [1, 2]} | tojson(2) }}", '{\n  "a": [\n    1,\n    2\n  ]\n}'),
        ("{{ range(5) | batch(2, 0) | list }}", [[0, 1], [2, 3], [4, 0]]),
        ("{{ dict(a=1, b=[2]) }}", {"a": 1, "b": [2]}),
        ("{{ zip(range(100000), range(100000)) | length }}", 100000),
        ("{% set x %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ x }}", "012"),
    ],
)
def test_templates_within_the_limits_still_work(template: str, expected: Any) -> None:
    assert render(template, _names()) == expected


def _workflow(template: str, limits: dict[str, int]) -> dict[str, Any]:
    return {
        "workflow": {"tasks": [{"name": "pad", "action": "core.echo", "input": {"message": template}}]},
        "template_limits": limits,
    }


def test_a_workflow_holds_templates_to_the_limits_it_was_started_with() -> None:
    fixture = _workflow("{{ 'x' * 200 }}", {"max_bytes": 100})
    run = Simulation(fixture, "workflows/pad.workflow.yaml").execute()
    assert run.finish is not None and run.finish.status == "failed"
    assert run.starts == []
    assert run.finish.error == (
        'task "pad", field input.message: expression "{{ \'x\' * 200 }}": repeating 200 times with * would '
        "build 200 bytes, over the limit of 100 for a value a template builds (ATTUNE_TEMPLATE_MAX_BYTES)"
    )
    fixture = _workflow("{{ 'x' * 200 }}", {"max_bytes": 1000})
    run = Simulation(fixture, "workflows/pad.workflow.yaml").execute()
    assert run.finish is not None and run.finish.status == "succeeded"
    assert [start.input for start in run.starts] == [{"message": "x" * 200}]


def test_the_limits_are_kept_in_the_state_and_default_for_an_older_state() -> None:
    state = WorkflowState.new(parameters={}, template_limits=TemplateLimits(max_bytes=100, max_steps=7))
    reloaded = WorkflowState.from_entries(state.to_entries())
    assert reloaded.template_limits == TemplateLimits(max_bytes=100, max_steps=7)
    entries = state.to_entries()
    entries["wf"] = {k: v for k, v in entries["wf"].items() if not k.startswith("template_")}
    assert WorkflowState.from_entries(entries).template_limits == TemplateLimits()
