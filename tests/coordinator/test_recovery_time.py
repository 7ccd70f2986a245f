"""Recovery within seconds (issue #14): PostgreSQL goes away (closed to connections, every session
ended) while a child's outcome arrives, once; when it is back, the workflow moves on within
about a retry interval, because the coordinator applies the outcome again by itself until the
database answers, instead of waiting for the completion service to send it again (which it did
only after 30 s or more). Production timings: the default retry interval and lease time.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from attune.config import Settings
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from tests.coordinator.conftest import Harness, outcome
from tests.coordinator.test_coordinator import SEQUENCE
from tests.support.databases import _admin

ROUNDS = 3
OUTAGE_S = 2.0
#: Generous for a loaded machine; the figure measured is printed (the goal is a 2 s median).
RESUMED_WITHIN_S = 5.0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_workflow_moves_on_within_seconds_of_the_database_coming_back(harness: Harness) -> None:
    defaults = Settings()
    harness.settings = harness.settings.replace(retry_interval=defaults.retry_interval, lease_time=defaults.lease_time)
    await harness.stop_coordinator()
    await harness.start_coordinator()
    name = harness.settings.database_url.rsplit("/", 1)[1]
    figures = []
    for _ in range(ROUNDS):
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "iris"})
        [greet] = await harness.wait_requests(wf, 1)
        stream = harness.open_stream()
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            await stream.write(
                coordinator_pb2.ReportOutcomesRequest(outcomes=[outcome(greet, result={"stdout": "hi"})])
            )  # once
            await asyncio.sleep(OUTAGE_S)
            assert len(harness.scheduler.of(wf)) == 1  # nothing could move without the database
        finally:
            await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        back = time.monotonic()
        [_, shout] = await harness.wait_requests(wf, 2, timeout=30)
        figures.append(time.monotonic() - back)
        await harness.report(outcome(shout, result={"stdout": "HI"}))
        assert (await harness.wait_result(wf))[0] == "succeeded"
        assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
    median = statistics.median(figures)
    print(f"workflow moved on {median:.2f} s (median; {', '.join(f'{f:.2f}' for f in figures)}) after the database")
    assert median < RESUMED_WITHIN_S, figures
