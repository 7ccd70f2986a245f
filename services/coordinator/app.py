"""The workflow-coordinator service: owns workflow records and graph evaluation (docs/architecture.md, Services).

Wiring only: the database, the clients of the scheduler and the completion service, the
definition cache, `Workflows` (events through the engine, persisted), the `Carrier` (commands
carried out after commit), the `TimerLoop` and the gRPC servicer.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.results import workflow_result_message_bytes
from attune.security.sealing import sealer_from_settings
from attune.storage import Database, retry_while_unavailable
from attune.storage.leases import ReplicaLease
from attune_services.coordinator.carrier import LEASE_KIND, Carrier
from attune_services.coordinator.definitions import DefinitionCache
from attune_services.coordinator.servicer import CoordinatorServicer
from attune_services.coordinator.timers import TimerLoop
from attune_services.coordinator.workflows import Workflows


class CoordinatorApp:
    """A ServiceApp serving attune.internal.workflow.v1.CoordinatorService."""

    service_names: Sequence[str] = (coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self._scheduler_channel = open_channel(settings.scheduler_address, settings)
        # It sends a workflow's result whole, up to ATTUNE_MAX_WORKFLOW_RESULT_BYTES (attune.results).
        self._completion_channel = open_channel(
            settings.completion_address,
            settings,
            max_send_bytes=workflow_result_message_bytes(
                settings.max_message_bytes, settings.max_workflow_result_bytes
            ),
        )
        # Opens workflows' secret parameters in memory; seals the stored entries that hold them.
        sealer = sealer_from_settings(settings)
        # This replica's lease: its id marks the commands it commits, which no other replica
        # takes over while the lease is renewed (carrier.py).
        self.lease = ReplicaLease.of_replica(self.db, LEASE_KIND, settings)
        self.carrier = Carrier(
            db=self.db,
            settings=settings,
            lease=self.lease,
            children=child_pb2_grpc.ChildExecutionServiceStub(self._scheduler_channel),
            completion=completion_pb2_grpc.CompletionServiceStub(self._completion_channel),
            sealer=sealer,
        )
        self.workflows = Workflows(
            db=self.db,
            settings=settings,
            definitions=DefinitionCache(self.db),
            carrier=self.carrier,
            sealer=sealer,
            owner=self.lease.id,
        )
        self.timers = TimerLoop(db=self.db, settings=settings, fire=self.workflows.fire_timer)
        self.workflows.on_timer_set = self.timers.wake
        self._servicer = CoordinatorServicer(db=self.db, workflows=self.workflows, max_page_size=settings.max_page_size)

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the CoordinatorService servicer."""
        coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Takes its lease, recovers committed-but-not-carried-out commands of replicas without a
        live lease, then starts the loops, among them the lease renewal and the recovery sweep
        (what other replicas committed and died before carrying out, once their lease expires).
        The first reads wait for a database that is not reachable yet (or an SQLite file another
        process is closing) instead of failing the start."""
        await retry_while_unavailable(self.lease.renew, what="taking the coordinator lease")
        await retry_while_unavailable(self.carrier.recover, what="recovering commands")
        self.lease.start()
        self.carrier.start()
        self.timers.start()

    async def drain(self) -> None:
        """Stops firing timers and finishes applying in-flight events; the rest is in the DB."""
        await self.timers.close()
        await self.carrier.close()
        await self.workflows.drain()
        await self.lease.close()  # released: a restart or a peer resumes what is left at once

    async def close(self) -> None:
        """Stops the loops and releases channels and the connection pool."""
        await self.timers.close()
        await self.carrier.close()
        await self.lease.close()
        await self._scheduler_channel.close()
        await self._completion_channel.close()
        await self.db.close()
