"""Capture of a child's stdout/stderr with a per-stream cap, and notice of its end.

A protocol rather than `asyncio.subprocess.Process` streams: the event loop hands each chunk
straight to `pipe_data_received`, so there is no reader task per stream and nothing to await
per chunk. Past the cap we keep reading and only count, so the child never blocks on a full pipe.
Each chunk also goes, as read, to the run's `OutputSink` (live output), which may pause reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from ._model import OutputSink

_STDOUT: Final = 1
_STDERR: Final = 2

# A script may leave a background child holding our pipes after it exits; we read what that
# child writes for this long after the script's exit, then stop waiting for it.
PIPE_DRAIN_S: Final = 0.5


class CappedCapture(asyncio.SubprocessProtocol):
    """Collects up to `limit` bytes per stream; `done` resolves when the child has exited and
    both streams are closed (or the drain window after exit has passed)."""

    def __init__(self, limit: int, done: asyncio.Future[None], output: OutputSink | None = None) -> None:
        self._limit = limit
        self._output = output
        self._done = done
        self._transport: asyncio.SubprocessTransport | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdout_dropped = 0
        self.stderr_dropped = 0
        self._drain_timer: asyncio.TimerHandle | None = None
        self.on_exit: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transport quacks like asyncio.SubprocessTransport without subclassing it.
        self._transport = cast(asyncio.SubprocessTransport, transport)
        if self._output is not None:
            self._output.hold_with(lambda: self._reading(False), lambda: self._reading(True))

    def _reading(self, on: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        for fd in (_STDOUT, _STDERR):
            pipe = transport.get_pipe_transport(fd)
            if pipe is None or pipe.is_closing():
                continue
            # uvloop's pipe transports quack like asyncio.ReadTransport without subclassing it.
            reader = cast(asyncio.ReadTransport, pipe)
            if on:
                reader.resume_reading()
            else:
                reader.pause_reading()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self._output is not None:
            self._output.write("stdout" if fd == _STDOUT else "stderr", data)
        buffer = self.stdout if fd == _STDOUT else self.stderr
        room = self._limit - len(buffer)
        if len(data) <= room:
            buffer += data
            return
        if room > 0:
            buffer += data[:room]
        dropped = len(data) - max(room, 0)
        if fd == _STDOUT:
            self.stdout_dropped += dropped
        else:
            self.stderr_dropped += dropped

    def process_exited(self) -> None:
        loop = self._done.get_loop()
        self._drain_timer = loop.call_later(PIPE_DRAIN_S, self._stop_draining)
        if self.on_exit is not None:
            self.on_exit()

    def _stop_draining(self) -> None:
        transport = self._transport
        if self._done.done() or transport is None:
            return
        for fd in (_STDOUT, _STDERR):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()  # -> pipe_connection_lost -> connection_lost -> done

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio calls this once the process has exited and every pipe is closed.
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self._output is not None:
            self._output.close()
            self._output = None
        if not self._done.done():
            self._done.set_result(None)

    def text(self, fd: int) -> str:
        """The captured stream decoded, with a marker saying how much was dropped."""
        if fd == _STDOUT:
            data, dropped = self.stdout, self.stdout_dropped
        else:
            data, dropped = self.stderr, self.stderr_dropped
        text = data.decode("utf-8", "replace")
        return f"{text}\n[... truncated {dropped} bytes]" if dropped else text
