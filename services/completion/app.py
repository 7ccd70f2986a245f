"""The completion service process: the servicer, the result store and the outcome forwarder."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from attune.config import Settings
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.results import workflow_result_message_bytes
from attune.storage import Database
from attune.storage.leases import ReplicaLease
from attune.telemetry import exporting
from attune_services.completion.feed import CompletionFeed
from attune_services.completion.forwarder import LEASE_KIND, OutcomeForwarder
from attune_services.completion.servicer import CompletionServicer
from attune_services.completion.spans import ExecutionSpans
from attune_services.completion.store import ResultStore

SERVICE_NAME = completion_pb2.DESCRIPTOR.services_by_name["CompletionService"].full_name


class CompletionApp:
    """attune-completion: the only writer of terminal states and results (docs/architecture.md, Services)."""

    service_names: Sequence[str] = (SERVICE_NAME,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        # This replica's lease: its id marks the outbox rows it forwards, which no other replica
        # takes over while the lease is renewed (forwarder.py).
        self.lease = ReplicaLease.of_replica(self.db, LEASE_KIND, settings)
        self.forwarder = OutcomeForwarder(self.db, settings, lease=self.lease)
        self.feed = CompletionFeed()
        self.store = ResultStore(
            self.db, on_outbox=self.forwarder.notify, on_completed=self.feed.publish, owner=self.lease.id
        )
        # Each execution's span is written once it ends, here (spans.py); only when spans go somewhere.
        self.spans = ExecutionSpans(self.db) if exporting() else None
        self._servicer = CompletionServicer(self.store, settings, feed=self.feed, spans=self.spans)
        # Its server receives a workflow's result whole, up to ATTUNE_MAX_WORKFLOW_RESULT_BYTES.
        self.max_receive_bytes = workflow_result_message_bytes(
            settings.max_message_bytes, settings.max_workflow_result_bytes
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Adds CompletionService."""
        completion_pb2_grpc.add_CompletionServiceServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Starts renewing its lease and forwarding workflow outcomes (including rows left by an
        earlier run or a replica without a live lease). Nothing waits for the database here: a
        service on a database that is away or not migrated starts and says NOT_SERVING, and the
        forwarder sends once the lease is taken."""
        self.lease.start()
        self.forwarder.start()

    async def drain(self) -> None:
        """Writes the queued results, acks them and ends the result streams, then waits for their
        outcomes to reach the coordinator."""
        await self.store.close()
        await self._servicer.end_streams()
        self.feed.close()
        if self.spans is not None:
            await self.spans.drain()
        await self.forwarder.drain()

    async def close(self) -> None:
        """Stops the forwarder, releases the lease (a restart or a peer takes over the rows left at
        once) and the database pool."""
        await self.forwarder.close()
        await self.lease.close()
        await self.db.close()
