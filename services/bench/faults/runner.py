"""Runs each fault of the catalog against freshly started services under the mixed load, and
scores it: start the deployment, send half the load, let it get going, inject the fault while
the other half is sent, wait until everything has ended or the deadline passed, read the
database, stop the deployment.

Each fault runs on a database of its own: a new one in the benchmark's PostgreSQL when there is
one, else the URL given (its executions told apart by their ids) or a temporary SQLite file.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from attune.config import Settings, normalize_database_url
from attune.storage.database import Database
from attune.storage.migrate import upgrade
from attune_services.bench.faults.catalog import Fault, FaultTarget
from attune_services.bench.faults.deployment import Deployment
from attune_services.bench.faults.load import Request, Submitted, mixed_load, submit
from attune_services.bench.faults.records import execution_trees, ids_of_requests, task_run_counts, unfinished
from attune_services.bench.faults.score import FaultFigures, Observation, score
from attune_services.bench.faults.scratch_postgres import ScratchPostgres

BENCH_PACK = Path(__file__).resolve().parent.parent / "packs" / "bench_faults"
POLL_S = 0.5


@dataclass(frozen=True)
class FaultOptions:
    """How big and how long each fault's run is."""

    scale: float = 1.0
    #: How long the long actions sleep.
    long_s: float = 6.0
    #: How long the first half of the load runs before the fault.
    lead_s: float = 2.0
    #: How long after the fault everything may take to end before what has not is stuck (at
    #: least twice ATTUNE_WORKER_GRACE and a little more, the time a killed worker's work needs to
    #: be declared abandoned).
    settle_s: float = 120.0
    ready_timeout: float = 120.0
    secure: bool = True


class FaultDatabases:
    """Where each fault's database lives (see the module docstring)."""

    def __init__(self, database_url: str, postgres: ScratchPostgres | None) -> None:
        self._url = database_url
        self.postgres = postgres
        self._made = 0

    async def for_fault(self, fault: Fault, scratch: Path) -> str:
        """A migrated database URL for `fault` (async driver)."""
        if self.postgres is not None and (fault.needs_own_database or not self._url):
            self._made += 1
            name = f"fault_{self._made}"
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.postgres.port, user="postgres", database="postgres"
            )
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            url = self.postgres.url.rsplit("/", 1)[0] + f"/{name}"
        else:
            url = self._url or f"sqlite:///{scratch / 'attune.db'}"
        url = normalize_database_url(url)
        await asyncio.to_thread(upgrade, url)
        return url


def _starts(log_file: Path) -> Counter[str]:
    try:
        return Counter(line.strip() for line in log_file.read_text().splitlines() if line.strip())
    except OSError:
        return Counter()


async def _settle(db: Database, ids: Sequence[str], deadline: float) -> None:
    """Waits until none of `ids` is unfinished or time.time() passes `deadline` (the database
    may be away for a moment: a failed read is tried again)."""
    while time.time() < deadline:
        try:
            if await unfinished(db, ids) == 0:
                return
        except Exception:  # the database restarting: the next poll tells
            pass
        await asyncio.sleep(POLL_S)


async def run_fault(
    fault: Fault, databases: FaultDatabases, options: FaultOptions, progress: Callable[[str], None]
) -> FaultFigures:
    """Runs the load through `fault` and scores it."""
    scratch = Path(tempfile.mkdtemp(prefix="attune-bench-faults-"))
    starts_dir = Path(tempfile.mkdtemp(prefix="attune-bench-starts-"))
    starts_dir.chmod(0o1777)  # the actions run as ATTUNE_ACTION_USER under a root worker
    log_file = starts_dir / "starts.log"
    url = await databases.for_fault(fault, scratch)
    env = {"ATTUNE_LOG_LEVEL": "WARNING"}
    deployment = Deployment(scratch / "home", url, replicas=fault.replicas, env=env, secure=options.secure)
    db = Database(url, pool_size=2)
    try:
        progress(f"{fault.name}: starting {fault.replicas} of each service")
        await deployment.start(options.ready_timeout, [BENCH_PACK])
        requests = mixed_load(options.scale, log_file, options.long_s)
        half = len(requests) // 2
        submitted = Submitted()
        worker_grace = Settings.from_env(deployment.plan.child_env()).worker_grace
        settle_s = max(options.settle_s, 2 * worker_grace + 10)
        async with deployment.client() as client:
            progress(f"{fault.name}: {len(requests)} requests, the fault after {half}")
            await submit(client, requests[:half], time.monotonic() + settle_s, submitted)
            await asyncio.sleep(options.lead_s)
            rest = asyncio.create_task(submit(client, requests[half:], time.monotonic() + settle_s, submitted))
            injected = await fault.inject(FaultTarget(deployment, databases.postgres))
            progress(f"{fault.name}: injected; waiting for the load to end")
            await rest
        ids = await _ids(db, requests)
        await _settle(db, list(ids.values()), injected.back_at + settle_s)
        records = await execution_trees(db, ids.values())
        workflows = [r.id for r in records.values() if r.runner_type == "workflow"]
        progress(f"{fault.name}: {len(ids)} executions requested, {len(records) - len(ids)} workflow children")
        seen = Observation(
            requests=requests,
            ids=ids,
            records=records,
            task_run_rows=await task_run_counts(db, workflows),
            starts=_starts(log_file),
            killed_workers=injected.killed_workers,
            back_at=injected.back_at,
        )
        figures = score(fault.name, seen)
        if submitted.refused:
            progress(f"{fault.name}: {len(submitted.refused)} requests never taken")
        progress(f"{fault.name}: {figures.as_json()}")
        return figures
    finally:
        deployment.stop()
        await db.close()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(starts_dir, ignore_errors=True)


async def _ids(db: Database, requests: Sequence[Request]) -> dict[str, str]:
    """request_id → execution id from the database (retried while it is away)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await ids_of_requests(db, [r.request_id for r in requests])
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(POLL_S)
