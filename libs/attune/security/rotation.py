"""`attune secrets rotate`: every stored sealed value re-sealed under the newest key.

The columns that can hold sealed values (docs/architecture.md, Secrets): `executions.parameters`,
`workflow_state_entries.value` and `task_runs.request`. Only rows whose text contains the envelope
marker are read, a page at a time; each is rewritten with a compare-and-set on its old text, so a
service that changed the row meanwhile (sealing with the newest key itself, as every service holds
the same ring) wins and the row is left alone. Run it after giving every service the new key
first in its ring, and drop the old key only after it reports nothing left under it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from attune.security.sealing import SEALED, Sealer
from attune.storage import Database
from attune.storage.schema import executions, task_runs, workflow_state_entries

PAGE = 500
_MARKER = f'%"{SEALED}"%'


@dataclass(frozen=True)
class SealedColumn:
    """A JSON text column that may hold sealed values, and its table's primary key."""

    table: sa.Table
    column: str

    @property
    def key(self) -> Sequence[sa.Column[Any]]:
        return list(self.table.primary_key.columns)

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(executions, "parameters"),
    SealedColumn(workflow_state_entries, "value"),
    SealedColumn(task_runs, "request"),
)


@dataclass
class RotationReport:
    """What a rotation did, per column: values re-sealed, and rows skipped because a service
    rewrote them meanwhile."""

    resealed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.resealed.values())


async def rotate(db: Database, sealer: Sealer) -> RotationReport:
    """Re-seals every stored sealed value not sealed under `sealer`'s newest key; SecretKeyError
    (naming the key id) when one was sealed under a key the ring does not hold."""
    report = RotationReport()
    for target in SEALED_COLUMNS:
        report.resealed[target.name], report.skipped[target.name] = await _rotate_column(db, sealer, target)
    return report


async def _rotate_column(db: Database, sealer: Sealer, target: SealedColumn) -> tuple[int, int]:
    column = target.table.c[target.column]
    key = target.key
    resealed = skipped = 0
    after: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*key, column).where(column.like(_MARKER)).order_by(*key).limit(PAGE)
        if after is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
        async with db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return resealed, skipped
        for row in rows:
            text = row[-1]
            value, count = sealer.reseal(json.loads(text))
            if not count:
                continue
            new_text = json.dumps(value, separators=(",", ":"))
            where = [c == row[i] for i, c in enumerate(key)]
            async with db.write() as conn:
                changed = (
                    await conn.execute(
                        sa.update(target.table).where(*where, column == text).values({target.column: new_text})
                    )
                ).rowcount
            if changed:
                resealed += count
            else:
                skipped += 1
        after = tuple(rows[-1][: len(key)])
