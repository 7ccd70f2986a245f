"""One execution's row by id, as the RPCs that act on an execution (respond, pause, resume,
re-run) read it before deciding."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from attune.grpcutil.errors import NotFound, quoted
from attune.storage import Database
from attune.storage.schema import executions


async def execution_row(db: Database, execution_id: str) -> dict[str, Any]:
    """The execution's row; NotFound naming the id when there is none."""
    async with db.read() as conn:
        found = (await conn.execute(sa.select(executions).where(executions.c.id == execution_id))).mappings().first()
    if found is None:
        raise NotFound(f"no execution {quoted(execution_id)}")
    return dict(found)
