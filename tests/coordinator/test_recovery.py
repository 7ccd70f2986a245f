"""SIGKILL the coordinator (a real subprocess) while 20 workflows run, start it again: every workflow
finishes with the result of an undisturbed run, and no task run is created twice.

The fake scheduler + completion here behave like the real ones where recovery depends on it: child
requests are idempotent per request_id, a child "runs" once and its outcome is re-sent on a
ReportOutcomes stream until acknowledged (also across coordinator restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import channel_options
from attune.grpcutil.convert import dumps, loads
from attune.ids import new_id
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune_services.cli.launcher import free_port
from tests.support.polling import eventually

WORKFLOW = """
version: 1
tasks:
  - name: prepare
    action: core.echo
    input: {message: "{{ parameters.n }}"}
    next:
      - do: [fan, flaky]
  - name: fan
    action: core.echo
    with_items: "{{ [1, 2, 3, 4] }}"
    concurrency: 2
    input: {message: "{{ item * parameters.n }}"}
    next:
      - do: [joined]
  - name: flaky
    action: core.local
    retry: {count: 2, delay: 0.3}
    next:
      - do: [joined]
  - name: joined
    action: core.echo
    join: all
    input: {message: "{{ task.fan | map(attribute='stdout') | join(',') }}"}
output_map:
  joined: "{{ task.joined.stdout }}"
  n: "{{ parameters.n }}"
"""
RUNS_PER_WORKFLOW = 8  # prepare, 4 fan items, flaky twice (first attempt fails), joined


def expected_result(n: int) -> dict[str, Any]:
    return {"succeeded": True, "joined": ",".join(str(i * n) for i in range(1, 5)), "n": n}


class AutoCluster(child_pb2_grpc.ChildExecutionServiceServicer, completion_pb2_grpc.CompletionServiceServicer):
    """Runs every requested child once (after a short random delay) and delivers its outcome to
    the coordinator until acknowledged. It serves only the unary RequestChildExecutions, like a
    scheduler from before StreamChildExecutions: the coordinator falls back to it (every child
    here is requested that way)."""

    def __init__(self, coordinator_address: str) -> None:
        self.coordinator_address = coordinator_address
        self.ids: dict[str, str] = {}
        self.ran: Counter[str] = Counter()
        self.outbox: dict[str, coordinator_pb2.TaskOutcome] = {}
        self.results: dict[str, completion_pb2.ExecutionResult] = {}
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self.events: list[str] = []
        self.request_count = 0
        self._progress = 0.0
        self._closing: set[asyncio.Task[None]] = set()

    async def RequestChildExecutions(self, request: Any, context: Any) -> Any:
        answers = []
        self.request_count += len(request.children)
        self.events.append(f"{time.time():.3f} requested {len(request.children)}")
        for child in request.children:
            if child.request_id not in self.ids:
                self.ids[child.request_id] = new_id()
                asyncio.get_running_loop().call_later(random.uniform(0, 0.03), self._finish, child)
            answers.append(
                child_pb2.ChildExecutionResponse(request_id=child.request_id, execution_id=self.ids[child.request_id])
            )
        return child_pb2.RequestChildExecutionsResponse(children=answers)

    def _finish(self, child: child_pb2.ChildExecutionRequest) -> None:
        self.ran[child.request_id] += 1
        message = loads(child.parameters_json, {}).get("message", "")
        failed = child.link.task_name == "flaky" and child.link.attempt == 1
        child_id = self.ids[child.request_id]
        self.outbox[child_id] = coordinator_pb2.TaskOutcome(
            execution_id=child_id,
            link=child.link,
            state=common_pb2.EXECUTION_STATE_FAILED if failed else common_pb2.EXECUTION_STATE_SUCCEEDED,
            result_json=dumps({"stdout": str(message), "exit_code": 1 if failed else 0}),
        )
        self._ready.set()

    async def SubmitResult(self, request: Any, context: Any) -> Any:
        self.results.setdefault(request.result.execution_id, request.result)
        return completion_pb2.SubmitResultResponse(applied=True, state=request.result.state)

    def start_pump(self) -> None:
        self._pump = asyncio.create_task(self._deliver())

    async def stop_pump(self) -> None:
        if self._pump:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    async def _deliver(self) -> None:
        """Keeps a ReportOutcomes stream open, re-sending everything unacknowledged on reconnect.

        A stream to a SIGKILLed peer may neither fail nor let a pending write finish (nor be
        cancelled), so nothing here waits on one without a bound: a stuck stream is abandoned.
        """
        while True:
            channel = grpc.aio.insecure_channel(self.coordinator_address)
            stream = coordinator_pb2_grpc.CoordinatorServiceStub(channel).ReportOutcomes()
            reader = asyncio.create_task(self._read_acks(stream))
            try:
                await self._send(stream, reader)
            except Exception as err:
                self.events.append(f"{time.time():.3f} stream error {type(err).__name__} {err!r:.120}")
            reader.cancel()
            await asyncio.wait({reader}, timeout=1.0)
            if reader.done() and not reader.cancelled():
                reader.exception()  # retrieved: a broken stream is expected here
            self._closing.add(asyncio.create_task(channel.close()))
            self.events.append(f"{time.time():.3f} reconnecting")
            await asyncio.sleep(0.1)

    async def _send(self, stream: Any, reader: asyncio.Task[None]) -> None:
        sent: set[str] = set()
        self._progress = time.monotonic()
        while not reader.done():
            self._ready.clear()
            if time.monotonic() - self._progress > 1.0 and any(i in self.outbox for i in sent):
                self.events.append(f"{time.time():.3f} no acks for a second")
                return
            batch = [o for i, o in self.outbox.items() if i not in sent]
            if batch:
                self.events.append(f"{time.time():.3f} send {len(batch)}")
                self._progress = time.monotonic()
                sent.update(o.execution_id for o in batch)
                write = asyncio.ensure_future(stream.write(coordinator_pb2.ReportOutcomesRequest(outcomes=batch)))
                done, _ = await asyncio.wait({write}, timeout=1.0)
                if not done:
                    self.events.append(f"{time.time():.3f} write stuck")
                    return
                write.result()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 0.2)

    async def _read_acks(self, stream: Any) -> None:
        # The stream breaking (coordinator killed or stopped) ends this; _deliver reconnects.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._read_acks_until_broken(stream)

    async def _read_acks_until_broken(self, stream: Any) -> None:
        async for response in stream:
            self.events.append(f"{time.time():.3f} acked {len(response.acked_execution_ids)}")
            self._progress = time.monotonic()
            for execution_id in response.acked_execution_ids:
                self.outbox.pop(execution_id, None)


def spawn_coordinator(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "attune_services.coordinator"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def test_sigkill_while_20_workflows_run_then_every_one_finishes_once(database_url: str, tmp_path: Path) -> None:
    coordinator_address = f"127.0.0.1:{free_port()}"
    fake = AutoCluster(coordinator_address)
    server = grpc.aio.server(options=channel_options(Settings()))
    child_pb2_grpc.add_ChildExecutionServiceServicer_to_server(fake, server)
    completion_pb2_grpc.add_CompletionServiceServicer_to_server(fake, server)
    fake_address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    env = {
        **os.environ,
        "ATTUNE_DATABASE_URL": database_url,
        "ATTUNE_COORDINATOR_ADDRESS": coordinator_address,
        "ATTUNE_SCHEDULER_ADDRESS": fake_address,
        "ATTUNE_COMPLETION_ADDRESS": fake_address,
        "ATTUNE_RETRY_INTERVAL": "0.05",
        "ATTUNE_LOG_FORMAT": "text",
        # The same replica id after the restart: the commands the killed process committed and
        # never carried out are its own, resumed at start rather than once its lease expires.
        "ATTUNE_REPLICA_ID": "coordinator-under-test",
    }
    log = tmp_path / "coordinator.log"
    process = spawn_coordinator(env, log)
    workflows = {new_id(): n for n in range(1, 21)}
    try:
        async with grpc.aio.insecure_channel(coordinator_address) as channel:
            client = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            starts = [
                coordinator_pb2.WorkflowStart(
                    execution_id=wf,
                    action_ref="tests.flow",
                    workflow_yaml=WORKFLOW,
                    workflow_source="flow.yaml",
                    parameters_json=dumps({"n": n}),
                )
                for wf, n in workflows.items()
            ]
            response = await client.StartWorkflows(
                coordinator_pb2.StartWorkflowsRequest(workflows=starts), wait_for_ready=True, timeout=20
            )
            assert len(response.accepted_execution_ids) == 20
        fake.start_pump()
        total = RUNS_PER_WORKFLOW * len(workflows)
        await eventually(lambda: len(fake.ran) >= total // 3, within=60, what="a third of the children to run")
        process.send_signal(signal.SIGKILL)
        process.wait()
        ran_before = len(fake.ran)
        process = spawn_coordinator(env, log)
        await eventually(
            lambda: len(fake.results) == len(workflows),
            within=120,
            what=lambda: f"all results (ran {len(fake.ran)} of {total}; log: {log})",
        )
    except BaseException:
        print(f"outbox {len(fake.outbox)} ids {len(fake.ids)} ran {len(fake.ran)} requests {fake.request_count}")
        print("pump events:\n" + "\n".join(fake.events[-40:]))
        print("coordinator log:\n" + log.read_text(errors="replace")[-6000:])
        raise
    finally:
        await fake.stop_pump()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        await server.stop(grace=None)

    assert ran_before < total, "the kill came too late to test anything"
    for wf, n in workflows.items():
        result = fake.results[wf]
        assert result.state == common_pb2.EXECUTION_STATE_SUCCEEDED, (wf, result.error)
        assert loads(result.result_json) == expected_result(n)
        runs = [key for key in fake.ran if key.startswith(wf + ":")]
        assert len(runs) == RUNS_PER_WORKFLOW, sorted(runs)
    assert set(fake.ran.values()) == {1}
