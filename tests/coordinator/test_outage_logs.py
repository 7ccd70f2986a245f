"""A database outage is logged once per interval and kind, with a count, not once per round of
every loop (issue #13): the timer loop looks every retry interval, the recovery sweep every
recovery interval, and the completion service sends outcomes again until they are applied.
PostgreSQL is closed to connections and every session ended, as an outage would.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from tests.coordinator.conftest import RECOVERY_INTERVAL, Harness, outcome
from tests.support.databases import _admin
from tests.support.polling import eventually

WAIT = """
version: 1
tasks:
  - name: wait
    action: core.sleep
"""
OUTAGE_S = 1.5


# An outage of PostgreSQL (connections disallowed, sessions ended); SQLite has no server to lose.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_outage_is_one_line_per_kind_and_no_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    url = harness.settings.database_url
    wf = await harness.start_workflow(WAIT)
    [wait] = await harness.wait_requests(wf, 1)
    name = url.rsplit("/", 1)[1]
    caplog.set_level(logging.WARNING)
    caplog.clear()
    await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        stream = harness.open_stream()
        for _ in range(10):  # the completion service sends an outcome again until it is acked
            await stream.write(coordinator_pb2.ReportOutcomesRequest(outcomes=[outcome(wait)]))
            await asyncio.sleep(OUTAGE_S / 10)
    finally:
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    records = [r for r in caplog.records if r.name.startswith("attune_services.coordinator")]
    rounds = OUTAGE_S / harness.settings.retry_interval  # the timer loop's, ~30
    assert rounds > 20 and OUTAGE_S / RECOVERY_INTERVAL > 5
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]
    by_kind: dict[str, int] = {}
    for r in records:
        kind = getattr(r, "kind", r.getMessage())
        by_kind[kind] = by_kind.get(kind, 0) + 1
    assert by_kind.get("timer loop") == 1, by_kind
    assert max(by_kind.values()) == 1 and len(records) <= 5, by_kind

    # Healed by itself: the outcome sent again is applied once the database is back.
    async def applied() -> bool:
        try:
            await asyncio.wait_for(harness.report(outcome(wait)), timeout=1)
        except TimeoutError:
            return False
        return True

    await eventually(applied, within=10, what="the outcome to be applied")
    assert (await harness.wait_result(wf))[0] == "succeeded"
