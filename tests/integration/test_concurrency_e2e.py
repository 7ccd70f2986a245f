"""A concurrency policy holds across scheduler replicas (issue #16): two schedulers, two workers,
50 requests of one key with `limit: 2`, sent to both schedulers; the database, sampled while they
run, never shows a third one running (or holding a slot), and all 50 succeed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.grpcutil.convert import execution_state_from_proto, struct_from_dict
from attune.storage import Database
from attune.storage.schema import executions
from tests.integration.cluster import Cluster
from tests.integration.replicas import start_replicas

PACK = Path(__file__).parent / "packs" / "conclimit"
REQUESTS = 50
LIMIT = 2


async def _sample(database_url: str, done: asyncio.Event) -> tuple[int, int, int]:
    """The most executions of conclimit.sleep seen running and holding a slot at once, and how
    many samples were taken, until `done`."""
    db = Database(database_url)
    most_running = most_holding = samples = 0
    query = (
        sa.select(executions.c.state, sa.func.count())
        .where(executions.c.action_ref == "conclimit.sleep")
        .group_by(executions.c.state)
    )
    try:
        while not done.is_set():
            async with db.read() as conn:
                counts: dict[str, int] = {state: n for state, n in (await conn.execute(query)).all()}
            most_running = max(most_running, counts.get("running", 0))
            most_holding = max(most_holding, counts.get("running", 0) + counts.get("scheduled", 0))
            samples += 1
            await asyncio.sleep(0.01)
    finally:
        await db.close()
    return most_running, most_holding, samples


async def test_two_schedulers_never_run_more_than_the_limit(postgres_url: str, tmp_path: Path) -> None:
    cluster = Cluster(postgres_url, tmp_path / "cluster")
    try:
        listen = await start_replicas(cluster, count={"scheduler": 2}, workers=2)
        await cluster.register_pack(PACK)
        done = asyncio.Event()
        sampler = asyncio.create_task(_sample(postgres_url, done))
        began = time.monotonic()
        async with (
            open_channel(listen["scheduler"], cluster.client_settings, token=cluster.admin_token) as first,
            open_channel(listen["scheduler-2"], cluster.client_settings, token=cluster.admin_token) as second,
        ):
            stubs = [execution_pb2_grpc.ExecutionServiceStub(c) for c in (first, second)]
            replies = await asyncio.gather(
                *(
                    stubs[i % 2].RequestExecution(
                        execution_pb2.RequestExecutionRequest(
                            action_ref="conclimit.sleep", parameters=struct_from_dict({"group": "one", "seconds": 0.1})
                        ),
                        timeout=10,
                    )
                    for i in range(REQUESTS)
                )
            )
            ids = [r.execution.id for r in replies]
            ends = [await cluster.wait_terminal(i, timeout=60) for i in ids]
        done.set()
        most_running, most_holding, samples = await sampler
        elapsed = time.monotonic() - began
        states = [execution_state_from_proto(e.execution.state) for e in ends]
        errors = [(e.execution.id, e.execution.error) for e in ends if e.execution.error]
        assert states == ["succeeded"] * REQUESTS, errors
        assert samples > 20, samples
        assert most_running <= LIMIT and most_holding <= LIMIT, (most_running, most_holding)
        assert most_running == LIMIT  # the limit is used, not just respected
        print(f"{REQUESTS} executions in {elapsed:.1f} s; {samples} samples; at most {most_running} running")
    finally:
        await cluster.stop()


async def test_examples_exclusive_deploy_runs_one_deploy_per_environment(cluster: Cluster) -> None:
    """The bundled example through the whole stack (coordinator, worker, completion), both stores."""
    first = await cluster.request("examples.exclusive_deploy", {"env": "prod", "seconds": 0.5})
    second = await cluster.request("examples.exclusive_deploy", {"env": "prod", "seconds": 0.1})
    other = await cluster.request("examples.exclusive_deploy", {"env": "qa", "seconds": 0.1})
    ends = [(await cluster.wait_terminal(e.id, timeout=30)).execution for e in (first, second, other)]
    assert [execution_state_from_proto(e.state) for e in ends] == ["succeeded"] * 3, [e.error for e in ends]
    done, waited, qa = ends
    assert waited.started_at.ToNanoseconds() >= done.finished_at.ToNanoseconds()  # its turn came after
    assert qa.started_at.ToNanoseconds() < done.finished_at.ToNanoseconds()  # another key: no wait
