"""GetExecutionResult: an execution's whole result, streamed in chunks that each fit in a message.

Views carry a large result as a preview only (views.py); this is how a client reads all of it.
The result is read in one statement and sliced: it is immutable once stored (the completion
service's compare-and-set writes it once), and at most ATTUNE_MAX_WORKFLOW_RESULT_BYTES (a
workflow's) or ATTUNE_MAX_RESULT_BYTES (an action's), so one call holds at most that much.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.errors import NotFound, quoted
from attune.storage import Database
from attune.storage.schema import executions

#: The most bytes of result one message carries.
CHUNK_BYTES = 1024 * 1024


def chunk_bytes(max_message_bytes: int) -> int:
    """Bytes of result per message: CHUNK_BYTES, or less under a small message limit."""
    return max(1, min(CHUNK_BYTES, max_message_bytes // 2))


async def result_chunks(
    db: Database, execution_id: str, *, max_message_bytes: int
) -> AsyncIterator[execution_pb2.GetExecutionResultResponse]:
    """The chunks of the execution's result in order; none without a result; NotFound for no execution."""
    query = sa.select(executions.c.result).where(executions.c.id == execution_id)
    async with db.read() as conn:
        found = (await conn.execute(query)).first()
    if found is None:
        raise NotFound(f"no execution {quoted(execution_id)}")
    data = (found.result or "").encode()
    size = chunk_bytes(max_message_bytes)
    for offset in range(0, len(data), size):
        yield execution_pb2.GetExecutionResultResponse(
            data=data[offset : offset + size], offset=offset, total_bytes=len(data)
        )
