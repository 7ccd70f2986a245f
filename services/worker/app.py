"""The worker process: a session with the scheduler, runs, and results to the completion service.

Data flow: Assignments (scheduler stream) → ExecutionRunner (pack cache, process) → Started
notices back to the scheduler; output as it is written → LogShipper (logs.py) → Logs on the
scheduler stream, held until acked; results → ResultSender (completion stream) → once acked,
Released notices to the scheduler. The worker's own gRPC server serves only health and reflection.

The worker holds no platform credential: it has no database, and any withheld variable it is given
(`WORKER_WITHHELD_VARIABLES`) is dropped at start. Under root, actions run as `ATTUNE_ACTION_USER`
(docs/operations.md, What an action can see). Every process a run starts ends with the run, and
with the worker if it dies (`ATTUNE_WORKER_CONTAINMENT`; docs/operations.md, Containment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import grpc

from attune import metrics
from attune.config import WORKER_WITHHELD_VARIABLES, Settings
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2_grpc
from attune.internal.packs.v1 import packs_pb2_grpc
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.packs import SLOT_FREE_RUNTIMES
from attune.security.tls import ClientAuth
from attune_services.worker.logs import LogShipper
from attune_services.worker.packs import PackCache
from attune_services.worker.results import ResultSender
from attune_services.worker.runs import SHUTDOWN_ERROR, ExecutionRunner
from attune_services.worker.runtimes import ActionUser, Containment, action_user, detect_runtimes, open_containment
from attune_services.worker.session import SchedulerSession

log = logging.getLogger(__name__)


def worker_id_of(settings: Settings) -> str:
    """`ATTUNE_WORKER_ID`, or `<hostname>-<pid>`."""
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


def without_credentials(settings: Settings) -> Settings:
    """Drops the withheld variables from this process's environment (and their settings), with a
    warning: a launcher should not have passed them. /proc/<pid>/environ still shows the
    environment the process started with; the user switch is what keeps actions from it."""
    defaults = {f.name: f.default for f in fields(Settings)}
    cleared: dict[str, object] = {}
    for variable in WORKER_WITHHELD_VARIABLES:
        if os.environ.pop(variable, None) is None:
            continue
        log.warning("%s is set in the worker's environment; the worker never uses it and drops it", variable)
        name = variable.removeprefix("ATTUNE_").lower()
        if name in defaults:
            cleared[name] = defaults[name]
    return settings.replace(**cleared) if cleared else settings


def pack_cache_root(settings: Settings, user: ActionUser | None) -> tuple[Path, bool]:
    """Where pack files are cached, and whether that folder is a temporary one of this process.

    Actions run in the cache, so their user must be able to reach it; when it cannot (the default
    cache under a root-only home), the worker caches in a fresh temporary folder instead and says
    so. A cache is only a cache: the files are fetched again after a restart."""
    root = settings.pack_cache()
    if user is None:
        return root, False
    with contextlib.suppress(OSError):  # a folder that cannot be made is unreachable too
        root.mkdir(parents=True, exist_ok=True)
    if user.can_reach(root):
        return root, False
    fallback = Path(tempfile.mkdtemp(prefix="attune-packs-"))
    fallback.chmod(0o755)
    log.warning(
        "pack cache %s is not reachable by the action user %s (uid %d); caching in %s for this process",
        root,
        user.name,
        user.uid,
        fallback,
    )
    return fallback, True


def runtimes_of(settings: Settings, user: ActionUser | None = None) -> dict[str, str]:
    """The runtimes found on this host (that `user` can execute), restricted to
    `ATTUNE_WORKER_RUNTIMES` when set."""
    found = detect_runtimes(user)
    wanted = {name.strip() for name in settings.worker_runtimes.split(",") if name.strip()}
    if not wanted:
        return found
    missing = wanted - found.keys()
    if missing:
        log.warning(
            "ATTUNE_WORKER_RUNTIMES names runtimes not found on this host: %s (found: %s)",
            ", ".join(sorted(missing)),
            ", ".join(sorted(found)),
        )
    return {name: path for name, path in found.items() if name in wanted}


class WorkerApp:
    """attune-worker: runs actions assigned by the scheduler (docs/architecture.md, Services)."""

    service_names: Sequence[str] = ()
    # It serves health only, which anyone may check: no client certificate is asked for.
    client_auth = ClientAuth.NONE

    def __init__(self, settings: Settings, *, containment: Containment | None = None) -> None:
        """`containment`: how runs are kept together; by default the one `ATTUNE_WORKER_CONTAINMENT`
        names, for a process that is the worker only (a test running a worker in its own process
        passes a non-exclusive one, see `open_containment`)."""
        settings = without_credentials(settings)
        self.settings = settings
        self.worker_id = worker_id_of(settings)
        self.hostname = socket.gethostname()
        # Raises ActionUserError (naming the variable) when the user cannot be used.
        self.action_user = action_user(settings.action_user)
        self.interpreters = runtimes_of(settings, self.action_user)
        self.pack_root, self._pack_root_is_temporary = pack_cache_root(settings, self.action_user)
        # Raises ContainmentError (naming the variable) when the mode asked for is not possible here.
        self.containment = containment or open_containment(settings.worker_containment, exclusive=True)
        self._scheduler_channel: grpc.aio.Channel | None = None
        self._completion_channel: grpc.aio.Channel | None = None
        self.session: SchedulerSession | None = None
        self.results: ResultSender | None = None
        self.runner: ExecutionRunner | None = None
        self._accepting = True
        # Assigned on the current session and holding no slot there (see `_acked`).
        self._slot_free: set[str] = set()
        metrics.WORKER_SLOTS.watch(self._slots)
        metrics.WORKER_SLOTS_BUSY.watch(self._busy_slots)

    def _slots(self) -> dict[tuple[str, ...], float]:
        return {(): float(self.settings.worker_capacity)}

    def _busy_slots(self) -> dict[tuple[str, ...], float]:
        """Executions holding a slot: running, or with a result not yet acked (read when scraped)."""
        held = set(self.runner.running_ids() if self.runner else ())
        held.update(self.results.unacked_ids() if self.results else ())
        return {(): float(len(held - self._slot_free))}

    @property
    def drain_timeout(self) -> float:
        """Running processes get `shutdown_grace`, then are cancelled (`kill_grace`), and their
        results get another `shutdown_grace` to be acked."""
        return 2 * self.settings.shutdown_grace + self.settings.kill_grace

    def register(self, server: grpc.aio.Server) -> None:
        """Nothing to add: the worker serves health and reflection only."""

    async def start(self) -> None:
        """Opens the channels and the two streams."""
        settings = self.settings
        self._scheduler_channel = open_channel(settings.scheduler_address, settings)
        self._completion_channel = open_channel(settings.completion_address, settings)
        packs = PackCache(
            self.pack_root,
            packs_pb2_grpc.PackFilesServiceStub(self._scheduler_channel),
            retry_interval=settings.retry_interval,
        )
        self.results = ResultSender(
            completion_pb2_grpc.CompletionServiceStub(self._completion_channel), settings, on_acked=self._acked
        )
        # Live output: held until the scheduler has stored it, sent on the session (logs.py).
        self.logs = LogShipper(buffer_bytes=settings.worker_log_buffer_bytes)
        self.session = SchedulerSession(
            worker_pb2_grpc.WorkerServiceStub(self._scheduler_channel),
            settings,
            hello=self._hello,
            running=lambda: self.runner.started() if self.runner else [],
            on_assignments=self._assigned,
            on_cancellations=lambda ids: self.runner.cancel(ids) if self.runner else None,
            logs=self.logs,
        )
        self.logs.wake = self.session.wake
        self.runner = ExecutionRunner(
            settings,
            worker_id=self.worker_id,
            interpreters=self.interpreters,
            packs=packs,
            on_started=self.session.started,
            on_result=self.results.add,
            containment=self.containment,
            user=self.action_user,
            logs=self.logs,
        )
        self.results.start()
        self.session.start()
        if settings.shutdown_grace + settings.kill_grace >= settings.worker_grace:
            log.warning(
                "ATTUNE_SHUTDOWN_GRACE (%gs) + ATTUNE_KILL_GRACE (%gs) is not below ATTUNE_WORKER_GRACE (%gs): "
                "on SIGTERM the scheduler may abandon an action still running at the end of the grace "
                "before its cancel is reported",
                settings.shutdown_grace,
                settings.kill_grace,
                settings.worker_grace,
            )
        log.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "runtimes": sorted(self.interpreters),
                "capacity": settings.worker_capacity,
                "action_user": self.action_user.name if self.action_user else None,
                "containment": f"{self.containment.kind}: {self.containment.description}",
            },
        )

    async def wait_ready(self) -> None:
        """Ready (health SERVING) once the scheduler has welcomed this worker."""
        assert self.session is not None
        await self.session.welcomed.wait()

    def _hello(self) -> worker_pb2.Hello:
        held = set(self.runner.running_ids() if self.runner else ())
        held.update(self.results.unacked_ids() if self.results else ())
        self._slot_free -= held  # listed in a Hello, they take a slot on the new session
        return worker_pb2.Hello(
            worker_id=self.worker_id,
            hostname=self.hostname,
            runtimes=sorted(self.interpreters),
            capacity=self.settings.worker_capacity,
            execution_ids=sorted(held),
        )

    def _assigned(self, assignments: Sequence[worker_pb2.Assignment]) -> None:
        assert self.runner is not None and self.results is not None
        if not self._accepting:
            log.info("draining: %d assignments sent before the scheduler saw us leave are run", len(assignments))
        unacked = self.results.unacked_ids()
        self._slot_free.update(a.execution_id for a in assignments if a.runtime in SLOT_FREE_RUNTIMES)
        self.runner.accept(assignments, is_held=lambda i: i in unacked)

    def _acked(self, execution_ids: list[str]) -> None:
        """Results durable at the completion service: their slots go back to the scheduler. A
        no-op holds no slot there, so its release is not urgent: it rides on the next message
        (or heartbeat) instead of costing a message of its own per no-op (one per step of a
        chain of no-ops)."""
        if self.session is None:
            return
        urgent: list[str] = []
        deferred: list[str] = []
        for execution_id in execution_ids:
            (deferred if execution_id in self._slot_free else urgent).append(execution_id)
        self._slot_free.difference_update(deferred)
        if deferred:
            self.session.released(deferred, urgent=False)
        if urgent:
            self.session.released(urgent)

    async def drain(self) -> None:
        """Leaves the scheduler (no new work), lets runs finish within `shutdown_grace`, cancels
        the rest (they end `cancelled`, "worker shut down"), and waits until every result is acked
        by the completion service: nothing this worker ran is left `running` for a sweeper to
        abandon later. The grace counts from SIGTERM, so leaving is part of it."""
        assert self.session is not None and self.runner is not None and self.results is not None
        self._accepting = False
        grace = self.settings.shutdown_grace
        running = len(self.runner.running_ids())
        log.info("draining: no new work; %d runs get %.1fs to finish", running, grace)
        try:
            async with asyncio.timeout(grace):
                await self.session.leave(timeout=min(grace, 1.0))
                await self.runner.wait_idle()
        except TimeoutError:
            left = self.runner.running_ids()
            log.warning("%d runs still going after %.1fs; cancelling them (%s)", len(left), grace, SHUTDOWN_ERROR)
            self.runner.shut_down()
            await self.runner.wait_idle()
        unacked = len(list(self.results.unacked_ids()))
        if unacked:
            log.info("waiting for the completion service to acknowledge %d results", unacked)
        await self.results.wait_all_acked()
        if not await self.logs.all_delivered(timeout=grace):
            log.warning("output of %d runs not stored after %.1fs: it is lost", len(self.logs.execution_ids()), grace)
        log.info("drained: every result acknowledged")

    async def close(self) -> None:
        """Stops the streams and closes the channels."""
        if self.runner is not None and self.runner.running_ids():
            self.runner.shut_down()  # drain was cut short: do not leave processes behind
            try:
                async with asyncio.timeout(self.settings.kill_grace + 1.0):
                    await self.runner.wait_idle()
            except TimeoutError:
                log.error("runs %s did not end", self.runner.running_ids())
        self.containment.close()  # whatever a run left behind ends with the worker
        if self.session is not None:
            await self.session.close()
        if self.results is not None:
            await self.results.close()
        for channel in (self._scheduler_channel, self._completion_channel):
            if channel is not None:
                await channel.close()
        if self._pack_root_is_temporary:
            shutil.rmtree(self.pack_root, ignore_errors=True)
