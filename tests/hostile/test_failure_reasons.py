"""Failure reasons travel (issue #13): a workflow's error says why each unhandled task failed —
its input refused before it ran, the nesting cap, an action failing on every retry — and
`attune run --wait` prints it (docs/workflows.md, Failure handling)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune.config import Settings
from attune.grpcutil.convert import execution_state_from_proto
from attune.states import ExecutionState
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

PACK = Path(__file__).parent / "packs" / "failing"
UNHANDLED = "(run 1) ended failed and no transition handled it"


@pytest.fixture
async def failing(cluster: Cluster) -> Cluster:
    """The cluster with the `failing` pack, once a worker runs shell actions."""
    await cluster.register_pack(PACK)
    for _ in range(5):
        outcome = await cluster.run("core.echo", {"message": "ready?"})
        if execution_state_from_proto(outcome.execution.state) == ExecutionState.SUCCEEDED:
            return cluster
    raise AssertionError(f"no worker ran core.echo: {outcome.execution.error}")


async def test_input_refused_before_the_task_ran_names_the_parameter(failing: Cluster) -> None:
    outcome = await failing.run("failing.bad_input")
    execution = outcome.execution
    assert execution_state_from_proto(execution.state) == ExecutionState.FAILED
    assert execution.error.startswith(f'task "count" {UNHANDLED}: not started: '), execution.error
    assert "failing.strict" in execution.error and "count" in execution.error.split("not started: ")[1]
    assert "integer" in execution.error
    assert list(outcome.children) == []  # it never ran


async def test_nesting_past_the_cap_names_the_cap(failing: Cluster) -> None:
    cap = Settings.from_env(failing.env).workflow_max_depth
    outcome = await failing.run("failing.recurse", timeout=60)
    error = outcome.execution.error
    assert execution_state_from_proto(outcome.execution.state) == ExecutionState.FAILED
    # every level quotes the level below it, down to the one started past the cap
    assert error.startswith(f'task "again" {UNHANDLED}: task "again" {UNHANDLED}: '), error
    assert error.endswith(f"workflow nesting depth {cap + 1} is over the cap of {cap}"), error
    assert len(error) < 1200, "a chain of quoted errors stays bounded"


async def test_a_retried_failure_names_its_attempts_and_the_action_error(failing: Cluster) -> None:
    outcome = await failing.run("failing.retried")
    assert outcome.execution.error == (
        'task "flaky" (run 1) ended failed after 3 attempts and no transition handled it: exit code 3: disk on fire'
    )
    assert sorted(child.link.attempt for child in outcome.children) == [1, 2, 3]


async def test_attune_run_wait_prints_the_reason(failing: Cluster) -> None:
    text = await attune("run", "failing.retried", "--wait", env=failing.cli_env())
    assert text.code == 1
    reason = "after 3 attempts and no transition handled it: exit code 3: disk on fire"
    assert reason in text.stdout, text.stdout  # the execution's `error:` line
    assert text.stderr.strip().splitlines()[-1].endswith(reason), text.stderr
