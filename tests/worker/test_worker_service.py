"""The worker service against a fake scheduler and a fake completion service: real gRPC servers
implementing the real stubs, real channels, real child processes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.server import RpcContext, ServerHandle, start_server, stop_server
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.packs.v1 import packs_pb2, packs_pb2_grpc
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.registry.v1 import registry_pb2
from attune_services.cli.launcher import free_port
from attune_services.worker.app import WorkerApp
from attune_services.worker.runtimes import detect_runtimes, open_containment
from tests.support.fakes import FakeCompletionService
from tests.support.polling import eventually

S = common_pb2.ExecutionState
DIGEST = "d" * 64
EVIL_DIGEST = "b" * 64
PACK_FILES = {
    "pack.yaml": b"ref: demo\n",
    "actions/hello.yaml": b"name: hello\nrunner_type: shell\nentry_point: hello.sh\n",
    "actions/hello.sh": b'read -r params; printf "hello %s\\n" "$ATTUNE_PARAM_WHO"; echo "$params" >&2\n',
    "actions/sleep.sh": b"sleep ${ATTUNE_PARAM_SECONDS:-30}\n",
    "actions/env.sh": b"env | grep '^ATTUNE_'\n",
}
WORKFLOW_VARIABLES = {
    "ATTUNE_PARENT_ID",
    "ATTUNE_WORKFLOW_EXECUTION_ID",
    "ATTUNE_TASK_NAME",
    "ATTUNE_TASK_RUN",
    "ATTUNE_TASK_ITEM_INDEX",
    "ATTUNE_TASK_ATTEMPT",
}


class FakeScheduler(worker_pb2_grpc.WorkerServiceServicer, packs_pb2_grpc.PackFilesServiceServicer):
    """Records what the worker says; sends what the test tells it to."""

    def __init__(self) -> None:
        self.hellos: list[worker_pb2.Hello] = []
        self.started: list[str] = []
        self.released: list[str] = []
        self.released_messages: list[list[str]] = []
        self.heartbeats = 0
        self.fetches: list[str] = []
        self.left = asyncio.Event()  # the worker half-closed its stream
        self.log_chunks: list[worker_pb2.LogChunk] = []
        self._outbox: asyncio.Queue[worker_pb2.ConnectResponse | None] = asyncio.Queue()

    async def Connect(self, request_iterator: Any, context: RpcContext) -> AsyncIterator[Any]:
        first = await anext(request_iterator)
        assert first.WhichOneof("kind") == "hello"
        self.hellos.append(first.hello)
        outbox: asyncio.Queue[worker_pb2.ConnectResponse | None] = asyncio.Queue()
        self._outbox = outbox
        reader = asyncio.create_task(self._read(request_iterator, outbox))
        try:
            yield worker_pb2.ConnectResponse(welcome=worker_pb2.Welcome(scheduler_id="fake"))
            while (message := await outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()

    async def _read(self, request_iterator: Any, outbox: asyncio.Queue[Any]) -> None:
        async for message in request_iterator:
            kind = message.WhichOneof("kind")
            if kind == "started":
                self.started += [e.execution_id for e in message.started.executions]
            elif kind == "released":
                self.released += list(message.released.execution_ids)
                self.released_messages.append(list(message.released.execution_ids))
            elif kind == "heartbeat":
                self.heartbeats += 1
            elif kind == "logs":  # stored at once: every chunk acknowledged
                self.log_chunks += list(message.logs.chunks)
                acks = [worker_pb2.LogAck(execution_id=c.execution_id, seq=c.seq) for c in message.logs.chunks]
                outbox.put_nowait(worker_pb2.ConnectResponse(log_acks=worker_pb2.LogAcks(acks=acks)))
        self.left.set()
        outbox.put_nowait(None)

    async def GetPackFiles(self, request: Any, context: RpcContext) -> Any:
        self.fetches.append(request.digest)
        files = {DIGEST: PACK_FILES, EVIL_DIGEST: {**PACK_FILES, "../escaped.sh": b"echo gotcha\n"}}.get(request.digest)
        if files is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no pack with digest {request.digest}")
            raise AssertionError("abort raises")
        return packs_pb2.GetPackFilesResponse(
            pack_ref="demo", files=[registry_pb2.PackFile(path=p, content=c) for p, c in files.items()]
        )

    def assign(self, *assignments: worker_pb2.Assignment) -> None:
        self._outbox.put_nowait(worker_pb2.ConnectResponse(assignments=worker_pb2.Assignments(assignments=assignments)))

    def cancel(self, *execution_ids: str) -> None:
        self._outbox.put_nowait(
            worker_pb2.ConnectResponse(cancellations=worker_pb2.Cancellations(execution_ids=execution_ids))
        )


async def serve(address: str, *servicers: Any) -> grpc.aio.Server:
    server = grpc.aio.server()
    for servicer in servicers:
        if isinstance(servicer, FakeScheduler):
            worker_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
            packs_pb2_grpc.add_PackFilesServiceServicer_to_server(servicer, server)
        else:
            completion_pb2_grpc.add_CompletionServiceServicer_to_server(servicer, server)
    assert server.add_insecure_port(address)
    await server.start()
    return server


class Cluster:
    """A fake scheduler, a fake completion service and the worker under test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scheduler = FakeScheduler()
        self.completion = FakeCompletionService()
        self.servers: dict[str, grpc.aio.Server] = {}
        self.worker: WorkerApp | None = None
        self.handle: ServerHandle | None = None

    async def start(self) -> None:
        self.servers["scheduler"] = await serve(self.settings.scheduler_address, self.scheduler)
        self.servers["completion"] = await serve(self.settings.completion_address, self.completion)
        # Not the worker's default (exclusive) containment: this test process has other children.
        self.worker = WorkerApp(self.settings, containment=open_containment(self.settings.worker_containment))
        self.handle = await start_server(self.worker, address=self.settings.worker_address, settings=self.settings)
        await eventually(lambda: self.scheduler.hellos, what="the worker's Hello")

    async def restart_completion(self, completion: FakeCompletionService) -> None:
        await self.servers["completion"].stop(None)
        self.completion = completion
        self.servers["completion"] = await serve(self.settings.completion_address, completion)

    async def stop_worker(self) -> None:
        if self.worker is not None and self.handle is not None:
            await stop_server(self.worker, self.handle, grace=self.settings.shutdown_grace)
        self.worker = self.handle = None

    async def stop(self) -> None:
        await self.stop_worker()
        for server in self.servers.values():
            await server.stop(None)

    async def result(self, execution_id: str, within: float = 10.0) -> completion_pb2.ExecutionResult:
        return await eventually(
            lambda: self.completion.result_of(execution_id), within=within, what=f"result of {execution_id}"
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        scheduler_address=f"127.0.0.1:{free_port()}",
        completion_address=f"127.0.0.1:{free_port()}",
        worker_address="127.0.0.1:0",
        worker_id="test-worker-1",
        worker_capacity=7,
        heartbeat_interval=0.2,
        retry_interval=0.05,
        kill_grace=0.5,
        shutdown_grace=2.0,
        pack_cache_dir=str(tmp_path / "packs"),
    )


@pytest.fixture
async def cluster(settings: Settings) -> AsyncIterator[Cluster]:
    c = Cluster(settings)
    await c.start()
    yield c
    await c.stop()


def assignment(execution_id: str, script: str = "actions/hello.sh", **fields: Any) -> worker_pb2.Assignment:
    return worker_pb2.Assignment(
        execution_id=execution_id,
        action_ref=fields.pop("action_ref", "demo.hello"),
        runtime=fields.pop("runtime", "shell"),
        entry_point=script,
        pack_ref="demo",
        pack_digest=fields.pop("pack_digest", DIGEST),
        parameters_json=json.dumps(fields.pop("parameters", {"who": "world"})).encode(),
        trace=common_pb2.TraceContext(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        **fields,
    )


async def test_hello_advertises_the_worker(cluster: Cluster) -> None:
    hello = cluster.scheduler.hellos[0]
    assert hello.worker_id == "test-worker-1"
    assert hello.hostname == socket.gethostname()
    assert list(hello.runtimes) == sorted(detect_runtimes())
    assert {"shell", "python", "noop"} <= set(hello.runtimes)
    assert hello.capacity == 7
    assert list(hello.execution_ids) == []
    await eventually(lambda: cluster.scheduler.heartbeats >= 2, what="heartbeats")
    assert cluster.handle is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cluster.handle.port}") as channel:
        # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())  # type: ignore[attr-defined]
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_shell_assignment_runs_and_is_released_after_ack(cluster: Cluster) -> None:
    cluster.scheduler.assign(
        assignment("exec-a", parameters={"who": "attune", "token": "s3cret"}, secret_names=["token"])
    )
    result = await cluster.result("exec-a")
    assert result.state == S.EXECUTION_STATE_SUCCEEDED, result.error
    body = json.loads(result.result_json)
    assert body["stdout"] == "hello attune\n"
    # Parameters on stdin; the secret one the action printed back is masked in the result.
    assert json.loads(body["stderr"]) == {"who": "attune", "token": "********"}
    assert body["exit_code"] == 0
    assert result.reporter == "test-worker-1"
    assert 0 < result.started_at <= result.finished_at
    assert result.trace.traceparent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert "exec-a" in cluster.scheduler.started
    await eventually(lambda: "exec-a" in cluster.scheduler.released, what="Released")
    # The same digest again: served from the cache, no second fetch; entry point relative to actions/.
    cluster.scheduler.assign(assignment("exec-b", script="hello.sh"))
    assert (await cluster.result("exec-b")).state == S.EXECUTION_STATE_SUCCEEDED
    assert cluster.scheduler.fetches == [DIGEST]
    assert cluster.worker is not None  # the cache is ATTUNE_PACK_CACHE_DIR unless the action user cannot reach it
    assert (cluster.worker.pack_root / DIGEST / "actions" / "hello.sh").is_file()


async def test_a_noop_release_rides_on_the_next_message(settings: Settings) -> None:
    """A no-op holds no slot at the scheduler: its release costs no send of its own. It goes
    when the worker next has something to say (here a shell action's start notice), or instead
    of a heartbeat, and at the latest when the worker leaves."""
    cluster = Cluster(dataclasses.replace(settings, heartbeat_interval=30.0))
    await cluster.start()
    try:
        cluster.scheduler.assign(assignment("noop-1", runtime="noop", pack_digest="", script=""))
        await cluster.result("noop-1")
        await asyncio.sleep(0.5)  # acked long since; a release of its own would have arrived
        assert cluster.scheduler.released_messages == []
        cluster.scheduler.assign(assignment("shell-1"))
        await eventually(lambda: cluster.scheduler.released_messages, what="a Released")
        assert cluster.scheduler.released_messages[0] == ["noop-1"]
        assert "shell-1" in cluster.scheduler.started  # sent right after the start notice
        await cluster.result("shell-1")
        await eventually(lambda: len(cluster.scheduler.released_messages) > 1, what="the shell action's Released")
        assert cluster.scheduler.released_messages[1] == ["shell-1"]  # urgent: at once, on its own
        cluster.scheduler.assign(assignment("noop-2", runtime="noop", pack_digest="", script=""))
        await cluster.result("noop-2")
        await asyncio.sleep(0.2)
        await cluster.stop_worker()  # leaving sends what is queued
        assert cluster.scheduler.released_messages[2:] == [["noop-2"]]
    finally:
        await cluster.stop()


async def test_a_noop_release_goes_instead_of_a_heartbeat(cluster: Cluster) -> None:
    cluster.scheduler.assign(assignment("noop-h", runtime="noop", pack_digest="", script=""))
    await cluster.result("noop-h")
    beats = cluster.scheduler.heartbeats
    await eventually(lambda: "noop-h" in cluster.scheduler.released, what="the release, at the heartbeat")
    assert cluster.scheduler.heartbeats == beats  # it took the heartbeat's place
    await eventually(lambda: cluster.scheduler.heartbeats > beats, what="heartbeats again")


async def test_many_assignments_are_batched(cluster: Cluster) -> None:
    ids = [f"noop-{i}" for i in range(200)]
    cluster.scheduler.assign(*(assignment(i, runtime="noop", pack_digest="", script="") for i in ids))
    await eventually(lambda: set(ids) <= set(cluster.scheduler.released), what="every Released")
    # result_of is None for an id without a result, which fails the test as an AttributeError.
    assert all(cluster.completion.result_of(i).state == S.EXECUTION_STATE_SUCCEEDED for i in ids)  # type: ignore[union-attr]
    assert cluster.scheduler.fetches == []  # noop needs no pack files


async def test_result_is_resent_after_completion_restarts(cluster: Cluster) -> None:
    cluster.completion.ack = False
    cluster.scheduler.assign(assignment("exec-r"))
    first = await cluster.result("exec-r")
    await asyncio.sleep(0.2)
    assert "exec-r" not in cluster.scheduler.released  # not acked: the slot stays taken
    fresh = FakeCompletionService(ack=True)
    await cluster.restart_completion(fresh)
    again = await cluster.result("exec-r")
    assert again == first
    await eventually(lambda: "exec-r" in cluster.scheduler.released, what="Released after the ack")


async def test_cancellation_ends_the_run_cancelled(cluster: Cluster) -> None:
    cluster.scheduler.assign(assignment("exec-c", script="actions/sleep.sh", parameters={"seconds": 30}))
    await eventually(lambda: "exec-c" in cluster.scheduler.started, what="Started")
    began = time.monotonic()
    cluster.scheduler.cancel("exec-c")
    result = await cluster.result("exec-c")
    assert result.state == S.EXECUTION_STATE_CANCELLED
    assert result.error == "cancelled"
    assert time.monotonic() - began < 3


async def test_noop_succeeds_without_files(cluster: Cluster) -> None:
    cluster.scheduler.assign(assignment("exec-n", runtime="noop", action_ref="core.noop", pack_digest="", script=""))
    result = await cluster.result("exec-n")
    assert result.state == S.EXECUTION_STATE_SUCCEEDED
    assert json.loads(result.result_json)["exit_code"] == 0


async def test_errors_before_start_are_failed_results(cluster: Cluster) -> None:
    cluster.scheduler.assign(
        assignment("no-pack", pack_digest="e" * 64),
        assignment("no-script", script="actions/missing.sh"),
        assignment("workflow", runtime="workflow", action_ref="examples.single_echo"),
    )
    no_pack = await cluster.result("no-pack")
    assert no_pack.state == S.EXECUTION_STATE_FAILED
    assert "e" * 64 in no_pack.error and "NOT_FOUND" in no_pack.error
    no_script = await cluster.result("no-script")
    assert no_script.state == S.EXECUTION_STATE_FAILED and "missing.sh" in no_script.error
    workflow = await cluster.result("workflow")
    assert workflow.state == S.EXECUTION_STATE_FAILED
    assert 'runtime "workflow" is not available' in workflow.error and "examples.single_echo" in workflow.error
    await eventually(lambda: {"no-pack", "no-script", "workflow"} <= set(cluster.scheduler.released), what="Released")


async def test_reconnect_says_hello_with_held_executions(cluster: Cluster) -> None:
    cluster.scheduler.assign(assignment("exec-h", script="actions/sleep.sh", parameters={"seconds": 30}))
    await eventually(lambda: "exec-h" in cluster.scheduler.started, what="Started")
    await cluster.servers["scheduler"].stop(None)
    cluster.scheduler.started.clear()
    cluster.servers["scheduler"] = await serve(cluster.settings.scheduler_address, cluster.scheduler)
    await eventually(lambda: len(cluster.scheduler.hellos) == 2, what="a second Hello")
    assert list(cluster.scheduler.hellos[1].execution_ids) == ["exec-h"]
    await eventually(lambda: "exec-h" in cluster.scheduler.started, what="Started re-sent")
    cluster.scheduler.cancel("exec-h")
    assert (await cluster.result("exec-h")).state == S.EXECUTION_STATE_CANCELLED


async def test_drain_finishes_runs_and_reports_them(cluster: Cluster) -> None:
    cluster.scheduler.assign(
        assignment("short", script="actions/sleep.sh", parameters={"seconds": 0.3}),
        assignment("long", script="actions/sleep.sh", parameters={"seconds": 30}),
    )
    await eventually(lambda: {"short", "long"} <= set(cluster.scheduler.started), what="Started")
    began = time.monotonic()
    await cluster.stop_worker()
    assert cluster.scheduler.left.is_set()  # the worker said goodbye: no new assignments
    # It left only once the output of its runs (their end chunks at least) was stored.
    assert {"short", "long"} <= {c.execution_id for c in cluster.scheduler.log_chunks if c.stream == "end"}
    assert (
        cluster.completion.result_of("short") or completion_pb2.ExecutionResult()
    ).state == S.EXECUTION_STATE_SUCCEEDED
    long = cluster.completion.result_of("long")
    assert long is not None and long.state == S.EXECUTION_STATE_CANCELLED  # past the grace: cancelled, reported
    assert long.error == "worker shut down"  # not a user's cancel
    assert time.monotonic() - began < cluster.settings.shutdown_grace + cluster.settings.kill_grace + 2


async def test_worker_runtimes_setting_restricts_what_is_advertised(settings: Settings) -> None:
    cluster = Cluster(settings.replace(worker_runtimes="shell, noop"))
    await cluster.start()
    try:
        assert list(cluster.scheduler.hellos[0].runtimes) == ["noop", "shell"]
        cluster.scheduler.assign(assignment("py", runtime="python", script="actions/hello.sh"))
        result = await cluster.result("py")
        assert result.state == S.EXECUTION_STATE_FAILED
        assert 'runtime "python" is not available' in result.error and "noop, shell" in result.error
    finally:
        await cluster.stop()


async def test_pack_files_outside_the_pack_folder_are_refused(cluster: Cluster) -> None:
    cluster.scheduler.assign(assignment("evil", pack_digest=EVIL_DIGEST))
    result = await cluster.result("evil")
    assert result.state == S.EXECUTION_STATE_FAILED
    assert "refusing file path '../escaped.sh'" in result.error and "demo.hello" in result.error
    cache = Path(cluster.settings.pack_cache_dir)
    assert not (cache / "escaped.sh").exists() and not (cache / EVIL_DIGEST).exists()
    assert [p.name for p in cache.iterdir()] == []  # the staging folder is gone too


async def attune_env_of(cluster: Cluster, execution_id: str) -> dict[str, str]:
    """The ATTUNE_* variables actions/env.sh saw, from its result."""
    result = await cluster.result(execution_id)
    assert result.state == S.EXECUTION_STATE_SUCCEEDED, result.error
    lines = json.loads(result.result_json)["stdout"].splitlines()
    return dict(line.split("=", 1) for line in lines)


async def test_workflow_task_sees_its_task_run_in_the_environment(cluster: Cluster) -> None:
    def link(item_index: int) -> common_pb2.WorkflowLink:
        return common_pb2.WorkflowLink(
            workflow_execution_id="wf-7", task_name="deploy", run=2, item_index=item_index, attempt=3
        )

    cluster.scheduler.assign(
        assignment("task", script="actions/env.sh", parent_id="wf-7", link=link(-1)),
        assignment("item", script="actions/env.sh", parent_id="wf-7", link=link(4)),
        assignment("top", script="actions/env.sh"),
    )
    task = await attune_env_of(cluster, "task")
    assert {k: v for k, v in task.items() if k in WORKFLOW_VARIABLES} == {
        "ATTUNE_PARENT_ID": "wf-7",
        "ATTUNE_WORKFLOW_EXECUTION_ID": "wf-7",
        "ATTUNE_TASK_NAME": "deploy",
        "ATTUNE_TASK_RUN": "2",
        "ATTUNE_TASK_ATTEMPT": "3",
    }
    assert task["ATTUNE_EXECUTION_ID"] == "task" and task["ATTUNE_PARAM_WHO"] == "world"
    item = await attune_env_of(cluster, "item")
    assert item["ATTUNE_TASK_ITEM_INDEX"] == "4" and item["ATTUNE_TASK_NAME"] == "deploy"
    top = await attune_env_of(cluster, "top")
    assert top["ATTUNE_EXECUTION_ID"] == "top" and top["ATTUNE_ACTION_REF"] == "demo.hello"
    assert WORKFLOW_VARIABLES.isdisjoint(top), "a top-level execution belongs to no workflow"
