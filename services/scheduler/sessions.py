"""Connected workers as the dispatcher sees them: what each runs, how full it is, its outbox."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from attune.internal.worker.v1 import worker_pb2


@dataclass(eq=False, kw_only=True)
class WorkerSession:
    """One worker's live stream.

    `in_flight` holds every execution occupying one of its slots: those assigned on this
    stream and those it listed in its Hello after a reconnect. `assigned` holds what went down
    this stream and `cancels_sent` the executions whose cancel did (relay.py sends the others),
    both until released: with `held`, every execution the worker may be running. `outbox` feeds
    the response stream; None ends it.
    """

    worker_id: str
    hostname: str
    runtimes: frozenset[str]
    capacity: int
    held: frozenset[str]  # Hello.execution_ids
    in_flight: set[str] = field(default_factory=set)
    assigned: set[str] = field(default_factory=set)
    cancels_sent: set[str] = field(default_factory=set)
    outbox: asyncio.Queue[worker_pb2.ConnectResponse | None] = field(default_factory=asyncio.Queue)
    connected_at: float = field(default_factory=time.time)
    lease_generation: int = 0  # of its worker's lease, taken at connect (leases.py)
    last_seen: float = field(default_factory=time.monotonic)
    closed: bool = False
    leaving: bool = False  # said Leaving: gets no more work, its stream stays for its output

    @property
    def free(self) -> int:
        """Slots left."""
        return self.capacity - len(self.in_flight)

    @property
    def load(self) -> float:
        """Share of the slots in use (least loaded is picked first)."""
        return len(self.in_flight) / self.capacity if self.capacity > 0 else 1.0

    def send(self, message: worker_pb2.ConnectResponse) -> None:
        """Queues a message for the worker (dropped once the stream has ended)."""
        if not self.closed:
            self.outbox.put_nowait(message)

    def close(self) -> None:
        """Ends the response stream."""
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(None)
