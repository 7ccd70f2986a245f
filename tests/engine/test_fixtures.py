"""Every YAML fixture under fixtures/ run through the engine (see driver.py)."""

from __future__ import annotations

import pytest

from attune.engine import WorkflowSpecError, parse_workflow

from .driver import FIXTURES, check_expectations, load, run_fixture

RUNS = sorted(p.stem for p in FIXTURES.glob("*.yaml") if not p.stem.startswith("invalid_"))
INVALID = sorted(p.stem for p in FIXTURES.glob("invalid_*.yaml"))


@pytest.mark.parametrize("name", RUNS)
def test_fixture_runs_as_expected(name: str) -> None:
    fixture, run = run_fixture(name)
    check_expectations(fixture["expect"], run)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_fixture_is_refused(name: str) -> None:
    fixture = load(name)
    source = fixture.get("source", f"workflows/{name}.workflow.yaml")
    with pytest.raises(WorkflowSpecError) as caught:
        parse_workflow(fixture["workflow"], source=source)
    lines = [str(e) for e in caught.value.errors]
    for fragment in fixture["expect"]["errors"]:
        assert any(fragment in line for line in lines), f"{fragment!r} not in {lines}"
    if "count" in fixture["expect"]:
        assert len(lines) == fixture["expect"]["count"], lines
