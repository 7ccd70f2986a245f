"""Live output: what running actions write, batched into chunks and held until the scheduler has
stored them (docs/operations.md, Live output).

`RunLog` is one run's `OutputSink`. Bytes the capture reads are kept per stream until the first
of: `FLUSH_INTERVAL_S` after the first byte of the batch (a timer armed only once a byte
arrived: a run that prints nothing costs nothing), `CHUNK_BYTES` pending, or the end of the run.
Each flush makes `LogChunk`s numbered 1, 2, 3, ... per execution. Past the execution's limit
(ATTUNE_LOG_LIMIT_BYTES, both streams together) the rest is dropped and one marker line says where;
it is read no faster than DROP_RATE_BYTES_PER_S.

When the run's pipes close, a last, empty chunk of stream `END_STREAM` says that its output is
complete: a watch of an ended execution ends once it has read it (the result does not wait for
the output to be stored, so the end may be seen first).

`LogShipper` holds every chunk until the scheduler acknowledges it (`LogAck`: all chunks of an
execution up to a seq are stored); the session sends new chunks as they come and, after a
reconnect, every unacknowledged one again (the scheduler stores by (execution_id, seq), so a
chunk stored twice is stored once). Memory is bounded: per run by the limit, in total by
ATTUNE_WORKER_LOG_BUFFER_BYTES, past which every run's pipes are paused until acks free room.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from attune.internal.worker.v1 import worker_pb2
from attune.security.masking import MASK, SecretValues

#: A batch is sent this long after its first byte was read, at the latest.
FLUSH_INTERVAL_S: Final = 0.15
#: A batch is sent as soon as this much is pending (and a chunk never holds more).
CHUNK_BYTES: Final = 64 * 1024
#: Output past the limit is only counted, and read no faster than this: a run printing far more
#: than it may keep waits on its writes rather than costing the worker a core to discard it.
DROP_RATE_BYTES_PER_S: Final = 16 * 1024 * 1024
#: The stream of the last chunk of a run's output: empty, it says the output is complete.
END_STREAM: Final = "end"


def cut_marker(limit: int) -> bytes:
    """The line that replaces what is dropped past the limit."""
    return f"[attune: output cut here: over ATTUNE_LOG_LIMIT_BYTES ({limit} bytes)]\n".encode()


@dataclass(eq=False)
class _Pending:
    stream: str
    since: float  # time.time() of its first byte
    data: bytearray = field(default_factory=bytearray)


class RunLog:
    """One run's output on its way to the shipper (an `OutputSink`)."""

    def __init__(
        self,
        shipper: LogShipper,
        execution_id: str,
        *,
        limit: int,
        secrets: SecretValues | None = None,
        flush_interval: float = FLUSH_INTERVAL_S,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._shipper = shipper
        self.execution_id = execution_id
        self._limit = max(0, limit)
        self._secrets = secrets or None
        self._interval = flush_interval
        self._chunk_bytes = max(1, chunk_bytes)
        self._pending: dict[str, _Pending] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._kept = 0  # bytes taken within the limit
        self.dropped = 0  # bytes past the limit
        self._ends: dict[str, bytes] = {}  # the last byte sent of each stream
        self._seq = 0
        self.closed = False

    def write(self, stream: str, data: bytes) -> None:
        """Takes what the process wrote (see `OutputSink`)."""
        if self.closed or not data:
            return
        room = self._limit - self._kept
        if room <= 0:
            self.dropped += len(data)
            self._shipper.slow_down(self.execution_id, len(data) / DROP_RATE_BYTES_PER_S)
            return
        cut = len(data) > room
        if cut:
            self.dropped += len(data) - room
            data = data[:room]
        self._kept += len(data)
        pending = self._pending.get(stream)
        if pending is None:
            pending = self._pending[stream] = _Pending(stream, time.time())
            if self._timer is None and not cut:
                self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)
        pending.data += data
        if cut:
            self.flush()
            newline = b"" if self._ends.get(stream, b"\n") == b"\n" else b"\n"
            self._emit(stream, time.time(), newline + cut_marker(self._limit))
        elif len(pending.data) >= self._chunk_bytes:
            self.flush()

    def hold_with(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Registers how to pause this run's pipes (see `OutputSink`)."""
        self._shipper.hold_with(self.execution_id, pause, resume)

    def flush(self) -> None:
        """Turns what is pending into chunks, oldest stream first."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in sorted(self._pending.values(), key=lambda p: p.since):
            data = bytes(pending.data)
            self._ends[pending.stream] = data[-1:]
            if self._secrets is not None:
                data = _masked(data, self._secrets)
            for start in range(0, len(data), self._chunk_bytes):
                self._emit(pending.stream, pending.since, data[start : start + self._chunk_bytes])
        self._pending.clear()

    def close(self) -> None:
        """The run's pipes are closed: sends what is pending and the end; nothing more is taken."""
        if self.closed:
            return
        self.flush()
        self._emit(END_STREAM, time.time(), b"")
        self.closed = True
        self._shipper.closed(self.execution_id)

    def _emit(self, stream: str, written_at: float, data: bytes) -> None:
        self._seq += 1
        self._shipper.add(
            worker_pb2.LogChunk(
                execution_id=self.execution_id, seq=self._seq, stream=stream, written_at=written_at, data=data
            )
        )


def _masked(data: bytes, secrets: SecretValues) -> bytes:
    """`data` with every secret value replaced by the mask (a secret split across two batches is
    not seen: docs/operations.md, Live output)."""
    for secret in secrets.texts:
        encoded = secret.encode()
        if encoded in data:
            data = data.replace(encoded, MASK.encode())
    return data


@dataclass(eq=False)
class _Held:
    """One execution's chunks not acknowledged yet."""

    chunks: deque[worker_pb2.LogChunk] = field(default_factory=deque)
    closed: bool = False
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    pause: Callable[[], None] | None = None
    resume: Callable[[], None] | None = None
    resume_timer: asyncio.TimerHandle | None = None  # while slowed down (past its limit)


class LogShipper:
    """Every run's chunks until acknowledged; what the session sends next (see the module docstring)."""

    def __init__(self, *, buffer_bytes: int, wake: Callable[[], None] = lambda: None) -> None:
        self._budget = max(1, buffer_bytes)
        self.wake = wake
        self._held: dict[str, _Held] = {}
        self._outgoing: deque[worker_pb2.LogChunk] = deque()
        self.held_bytes = 0
        self.paused = False

    def open(self, execution_id: str, *, limit: int, secrets: SecretValues | None = None) -> RunLog:
        """A sink for one run's output."""
        self._held.setdefault(execution_id, _Held())
        return RunLog(self, execution_id, limit=limit, secrets=secrets)

    def hold_with(self, execution_id: str, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """How to pause one run's pipes; paused at once when the buffer is full already."""
        held = self._held.get(execution_id)
        if held is None:
            return
        held.pause, held.resume = pause, resume
        if self.paused:
            pause()

    def add(self, chunk: worker_pb2.LogChunk) -> None:
        """A new chunk: held, and sent with the session's next message."""
        held = self._held.setdefault(chunk.execution_id, _Held())
        held.chunks.append(chunk)
        self._outgoing.append(chunk)
        self.held_bytes += len(chunk.data)
        if not self.paused and self.held_bytes > self._budget:
            self.paused = True
            for other in self._held.values():
                if other.pause is not None and not other.closed:
                    other.pause()
        self.wake()

    def slow_down(self, execution_id: str, seconds: float) -> None:
        """Pauses one run's pipes for `seconds` (output past its limit, see DROP_RATE_BYTES_PER_S)."""
        held = self._held.get(execution_id)
        if held is None or held.pause is None or held.resume_timer is not None:
            return
        held.pause()

        def resume() -> None:
            held.resume_timer = None
            if held.resume is not None and not held.closed and not self.paused:
                held.resume()

        held.resume_timer = asyncio.get_running_loop().call_later(seconds, resume)

    def closed(self, execution_id: str) -> None:
        """No more chunks will come for this execution."""
        held = self._held.get(execution_id)
        if held is None:
            return
        held.closed = True
        held.pause = held.resume = None
        if held.resume_timer is not None:
            held.resume_timer.cancel()
            held.resume_timer = None
        self._settle(execution_id, held)

    async def delivered(self, execution_id: str, timeout: float) -> bool:
        """Waits until every chunk of a closed run is acknowledged (True), or `timeout` (False)."""
        held = self._held.get(execution_id)
        if held is None or held.delivered.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await held.delivered.wait()
        except TimeoutError:
            return False
        return True

    async def all_delivered(self, timeout: float) -> bool:
        """Waits until every closed run's chunks are acknowledged (True), or `timeout` (False)."""
        try:
            async with asyncio.timeout(timeout):
                while held := next((h for h in self._held.values() if h.closed), None):
                    await held.delivered.wait()
        except TimeoutError:
            return False
        return True

    def has_outgoing(self) -> bool:
        """True when chunks wait to be sent."""
        return bool(self._outgoing)

    def take(self, max_bytes: int) -> list[worker_pb2.LogChunk]:
        """The next chunks to send, at least one, about `max_bytes` at most."""
        taken: list[worker_pb2.LogChunk] = []
        size = 0
        while self._outgoing and (not taken or size + len(self._outgoing[0].data) <= max_bytes):
            chunk = self._outgoing.popleft()
            size += len(chunk.data) + 64
            taken.append(chunk)
        return taken

    def resend_all(self) -> None:
        """A new session: every chunk not acknowledged goes again, in order."""
        self._outgoing = deque(c for held in self._held.values() for c in held.chunks)

    def acked(self, acks: Iterable[worker_pb2.LogAck]) -> None:
        """Chunks the scheduler stored: no longer held."""
        for ack in acks:
            held = self._held.get(ack.execution_id)
            if held is None:
                continue
            while held.chunks and held.chunks[0].seq <= ack.seq:
                self.held_bytes -= len(held.chunks.popleft().data)
            self._settle(ack.execution_id, held)
        self._maybe_resume()
        if not self._held:
            self.wake()  # a leaving session half-closes once everything is stored

    def idle(self) -> bool:
        """Nothing to send and nothing held: every run's output is stored."""
        return not self._outgoing and not self._held

    def execution_ids(self) -> Sequence[str]:
        """Executions with chunks held."""
        return [i for i, held in self._held.items() if held.chunks]

    def _settle(self, execution_id: str, held: _Held) -> None:
        if held.closed and not held.chunks:
            held.delivered.set()
            del self._held[execution_id]

    def _maybe_resume(self) -> None:
        if self.paused and self.held_bytes <= self._budget // 2:
            self.paused = False
            for held in self._held.values():
                if held.resume is not None and not held.closed and held.resume_timer is None:
                    held.resume()
