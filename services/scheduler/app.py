"""The scheduler service: the front door (docs/architecture.md, Services).

Serves the public API (the registry, executions, and a WorkflowService forwarded to the
coordinator) and the internal services the other services call (the workers' stream and pack
files, the coordinator's child requests). It owns the states scheduling, scheduled, running and
canceling; terminal states are submitted to the completion service; workflow executions are
handed to the coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.ids import new_id
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.internal.packs.v1 import packs_pb2, packs_pb2_grpc
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.security.sealing import sealer_from_settings
from attune.states import ExecutionState
from attune.storage import Database
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.scheduler.actions import ActionCache
from attune_services.scheduler.asks import Answers
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.child_executions import ChildExecutionServicer
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.executions_service import ExecutionServicer
from attune_services.scheduler.giveups import CompletionClient, ResultSubmitter
from attune_services.scheduler.handoff import WorkflowHandoff
from attune_services.scheduler.leases import WorkerLeases
from attune_services.scheduler.logs import LogWakes, LogWriter
from attune_services.scheduler.pack_files import PackFilesServicer
from attune_services.scheduler.pauses import Pauses
from attune_services.scheduler.registry import RegistryServicer
from attune_services.scheduler.relay import ReplicaRelay
from attune_services.scheduler.request_log import RequestLog
from attune_services.scheduler.requests import ExecutionRequests, ParameterLimits, Row
from attune_services.scheduler.retention import Retention
from attune_services.scheduler.sweeper import Sweeper, sweep_interval
from attune_services.scheduler.tokens import TokenStore, TokenVerifier
from attune_services.scheduler.tokens_service import TokenServicer
from attune_services.scheduler.watchers import CompletedFeed, ExecutionWatchers
from attune_services.scheduler.workers import WorkerServicer
from attune_services.scheduler.workflow_forward import WorkflowForwardServicer


class SchedulerApp:
    """Implements the ServiceApp protocol for the scheduler."""

    service_names: Sequence[str] = (
        registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
        execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
        workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
        packs_pb2.DESCRIPTOR.services_by_name["PackFilesService"].full_name,
        child_pb2.DESCRIPTOR.services_by_name["ChildExecutionService"].full_name,
        worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
        auth_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name,
    )

    def __init__(self, settings: Settings, *, submitter: ResultSubmitter | None = None) -> None:
        self.settings = settings
        self.scheduler_id = f"scheduler-{new_id()[-8:]}"
        self.db = Database(settings.database_url)
        # Held until the registry changes; another replica's write is seen within a second.
        self.cache = ActionCache(self.db, poll=min(1.0, settings.heartbeat_interval))
        self._coordinator_channel: grpc.aio.Channel | None = None
        self._completion = CompletionClient(settings) if submitter is None else None
        # Without a submitter, _completion is a CompletionClient, which mypy cannot tell from the line above.
        self.submitter: ResultSubmitter = submitter or self._completion  # type: ignore[assignment]
        self.watchers = ExecutionWatchers(settings)
        self._feed = CompletedFeed(settings, self.watchers)
        # Secret parameters are sealed on insert and opened only in memory, to dispatch them.
        self.sealer = sealer_from_settings(settings)
        self.dispatcher = Dispatcher(
            self.db, self.cache, on_changed=self.watchers.wake, sealer=self.sealer, submitter=self.submitter
        )
        # Worker liveness every replica agrees on; cancels and waiting rows from other replicas.
        self.leases = WorkerLeases(self.db, scheduler_id=self.scheduler_id, grace=settings.worker_grace)
        self._relay = ReplicaRelay(db=self.db, dispatcher=self.dispatcher, interval=sweep_interval(settings))
        self.requests = ExecutionRequests(
            self.db,
            self.cache,
            self._route,
            slots=self.dispatcher,
            sealer=self.sealer,
            limits=ParameterLimits.from_settings(settings),
        )
        self.request_log = RequestLog(self.db)
        self.tokens = TokenStore(self.db)
        # What the bootstrap's authorization interceptor asks about bearer tokens (TLS on only).
        self.token_verifier = TokenVerifier(self.tokens)
        self._handoff: WorkflowHandoff | None = None
        self.canceller: Canceller | None = None  # made in register(), with the coordinator's stub
        self._sweeper: Sweeper | None = None
        self._retention = Retention(self.db, settings)  # ATTUNE_RETENTION: purges old history
        # Live output from the workers, stored in batches; log watches woken (logs.py).
        self.log_wakes = LogWakes()
        self.log_writer = LogWriter(self.db, self.log_wakes)

    def _coordinator(self) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        if self._coordinator_channel is None:
            self._coordinator_channel = open_channel(self.settings.coordinator_address, self.settings)
        return coordinator_pb2_grpc.CoordinatorServiceStub(self._coordinator_channel)

    @property
    def handoff(self) -> WorkflowHandoff:
        """Hands workflow executions to the coordinator."""
        if self._handoff is None:
            self._handoff = WorkflowHandoff(
                db=self.db,
                settings=self.settings,
                cache=self.cache,
                coordinator=self._coordinator(),
                submitter=self.submitter,
                on_changed=self.watchers.wake,
            )
        return self._handoff

    def _route(self, rows: Sequence[Row]) -> None:
        """New executions: workflows to the coordinator, everything else to the workers."""
        workflows = [r for r in rows if r["runner_type"] == "workflow"]
        if workflows:
            self.handoff.enqueue(workflows)
        scheduled = [r for r in rows if r["state"] == ExecutionState.SCHEDULED]
        if scheduled:
            self.dispatcher.assign_reserved(scheduled)
        asks = sum(1 for r in rows if r["state"] == ExecutionState.PENDING)  # they wait for an answer (asks.py)
        if len(workflows) + len(scheduled) + asks < len(rows):
            self.dispatcher.enqueue(
                r
                for r in rows
                if r["runner_type"] != "workflow"
                and r["state"] not in (ExecutionState.SCHEDULED, ExecutionState.PENDING)
            )

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicers."""
        self.canceller = canceller = Canceller(
            db=self.db,
            settings=self.settings,
            dispatcher=self.dispatcher,
            submitter=self.submitter,
            coordinator=self._coordinator(),
            on_changed=self.watchers.wake,
        )
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(
            RegistryServicer(self.db, self.cache, self.request_log, self.settings), server
        )
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(
            ExecutionServicer(
                db=self.db,
                settings=self.settings,
                requests=self.requests,
                canceller=canceller,
                watchers=self.watchers,
                request_log=self.request_log,
                log_wakes=self.log_wakes,
                answers=Answers(db=self.db, submitter=self.submitter),
                pauses=Pauses(
                    db=self.db, settings=self.settings, coordinator=self._coordinator(), on_changed=self.watchers.wake
                ),
            ),
            server,
        )
        packs_pb2_grpc.add_PackFilesServiceServicer_to_server(PackFilesServicer(self.db), server)
        child_pb2_grpc.add_ChildExecutionServiceServicer_to_server(
            ChildExecutionServicer(self.requests, canceller), server
        )
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(
            WorkerServicer(self.db, self.dispatcher, self.scheduler_id, self.leases, self.log_writer), server
        )
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowForwardServicer(
                db=self.db, settings=self.settings, coordinator=self._coordinator(), canceller=canceller
            ),
            server,
        )
        auth_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(self.tokens, self.token_verifier), server)

    async def start(self) -> None:
        """Ensures the bootstrap admin token, then starts dispatch, the workflow hand-off, the sweep
        (which recovers waiting rows) and the completed feed that wakes watches."""
        if self.settings.admin_token_file:
            # Before health says SERVING, so whoever waited for it can use the token at once.
            await self.tokens.ensure_bootstrap(Path(self.settings.admin_token_file))
        await self.cache.start()
        self.dispatcher.start()
        self._feed.start()
        self.handoff.start()
        self._sweeper = Sweeper(
            db=self.db,
            settings=self.settings,
            dispatcher=self.dispatcher,
            submitter=self.submitter,
            enqueue_workflows=self.handoff.enqueue,
            request_log=self.request_log,
            leases=self.leases,
            scheduler_id=self.scheduler_id,
        )
        self._sweeper.start()
        self._relay.start()
        self._retention.start()

    async def drain(self) -> None:
        """Stops dispatching and flushes the committers; every state is already in the database."""
        await self._retention.stop()
        if self._sweeper is not None:
            await self._sweeper.stop()
        await self._relay.stop()
        if self.canceller is not None:
            await self.canceller.close()
        await self.requests.close()
        await self.dispatcher.stop()
        await self.handoff.stop()
        await self.log_writer.stop()  # what it has not acknowledged, the workers send again

    async def close(self) -> None:
        """Closes channels and the pool."""
        await self._feed.stop()
        await self.cache.stop()
        if self._completion is not None:
            await self._completion.close()
        if self._coordinator_channel is not None:
            await self._coordinator_channel.close()
        await self.db.close()
