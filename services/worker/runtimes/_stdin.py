"""The parameters as one JSON object on the child's stdin, then end of file.

The JSON is written into a plain pipe *before* the spawn and the read end becomes the child's
stdin: for the usual parameters (smaller than the pipe's 64 KiB buffer) there is no stdin
transport to connect and nothing left to do after the spawn. Larger ones are fed the rest
through an asyncio pipe transport as the child reads.
"""

from __future__ import annotations

import asyncio
import os


class ParameterPipe:
    """Owns both ends of the stdin pipe until the child has its copy, then the write end."""

    def __init__(self, data: bytes) -> None:
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            written = os.write(write_fd, data) if data else 0
        except BlockingIOError:  # a pipe shrunk by pipe-user-pages-soft
            written = 0
        self._rest = data[written:]
        self._write_fd: int | None = write_fd
        self._feeder: asyncio.WriteTransport | None = None
        if not self._rest:
            self._close_write_end()

    async def spawned(self) -> None:
        """The child holds its copy of the read end now; feed it whatever did not fit."""
        os.close(self.read_fd)
        if self._write_fd is None:
            return
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(self._write_fd, "wb", buffering=0)
        self._write_fd = None  # owned by the transport from here on
        self._feeder, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)
        self._feeder.write(self._rest)
        self._feeder.close()  # after the buffer drains; a child that exits first ends it (EPIPE)

    def discard(self) -> None:
        """The spawn failed, or the run is over: release what is still open."""
        # Data still buffered: a process of the run's group kept stdin open without reading.
        # (With an empty buffer the transport is closed or closing already; aborting it again
        # would make asyncio run its connection_lost twice.)
        if self._feeder is not None and self._feeder.get_write_buffer_size():
            self._feeder.abort()
            self._feeder = None
        self._close_write_end()

    def close_read_end(self) -> None:
        os.close(self.read_fd)

    def _close_write_end(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
