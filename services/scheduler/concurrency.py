"""Concurrency policies at dispatch: which waiting executions of a key may take a slot now.

An action's policy (`concurrency: {limit, key, on_limit}`, attune.packs) allows `limit`
executions of one key to hold a slot at once. The slots are not kept anywhere but in the
executions themselves: a slot is held by each execution of the key that was admitted and has not
ended. Admission marks the row: an action's claim moves it to `scheduled` (setting
`scheduled_at`); a workflow, which stays `scheduling` while it is handed to the coordinator, gets
`scheduled_at` in the admitting transaction (handoff.py). So a slot is released the moment the
completion service writes a terminal state, and nothing leaks when a scheduler replica dies.

`admit` runs inside the dispatch claim's write transaction, before the compare-and-set, once per
key: it takes the key's lock (PostgreSQL: a transaction-scoped advisory lock; SQLite serializes
every write transaction already), counts the holders, and admits at most the free slots. With
`on_limit: queue` only the oldest waiting executions of the key may take them, whichever replica
holds them in memory, so the queue is in request order across replicas; the others stay in
`scheduling`. With `on_limit: cancel` the executions over the limit are refused: the dispatcher
hands them to the completion service as `cancelled`, naming the limit and the key.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.packs import ConcurrencyPolicy
from attune.states import TERMINAL, ExecutionState
from attune.storage.schema import executions

#: How often executions waiting for a slot are tried again without a wake (a slot may free through
#: another replica, which wakes nothing here).
RETRY_INTERVAL = 0.2


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A waiting execution of an action with a policy."""

    id: str
    action_ref: str
    key: str


@dataclass(kw_only=True)
class Admission:
    """What `admit` decided: ids that may be claimed, ids that wait, ids refused with the reason."""

    admitted: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)

    def keeps_back(self, execution_id: str) -> bool:
        """True when the execution may not take a slot now (it waits, or it is refused)."""
        return execution_id in self.waiting or execution_id in self.refused


_NOT_YET = (ExecutionState.REQUESTED, ExecutionState.SCHEDULING, ExecutionState.CANCELING)


def holding_slot() -> sa.ColumnElement[bool]:
    """Executions that hold a slot of their key: admitted (past `scheduling`, or marked by
    `scheduled_at`) and not ended; `canceling` holds one only once admitted."""
    return sa.and_(
        executions.c.state.not_in(sorted(TERMINAL)),
        sa.or_(executions.c.state.not_in(_NOT_YET), executions.c.scheduled_at.is_not(None)),
    )


def waiting_for_slot() -> sa.ColumnElement[bool]:
    """Executions that wait for a slot of their key (not admitted yet)."""
    return sa.and_(executions.c.state == ExecutionState.SCHEDULING, executions.c.scheduled_at.is_(None))


def lock_id(action_ref: str, key: str) -> int:
    """The advisory lock of one key (a signed 64-bit number, as PostgreSQL takes it)."""
    digest = hashlib.sha256(f"attune.concurrency\0{action_ref}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def admit(
    conn: AsyncConnection,
    candidates: Sequence[Candidate],
    policies: Mapping[str, ConcurrencyPolicy],
    *,
    is_sqlite: bool,
) -> Admission:
    """Decides, under each key's lock, which candidates take a slot (see the module docstring).
    Candidates whose action has no policy (any more) are admitted."""
    admission = Admission()
    groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if candidate.action_ref in policies:
            groups[(candidate.action_ref, candidate.key)].append(candidate)
        else:
            admission.admitted.add(candidate.id)
    for (action_ref, key), members in sorted(groups.items()):  # one lock order for every replica
        policy = policies[action_ref]
        if not is_sqlite:
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id(action_ref, key))))
        of_key = sa.and_(executions.c.action_ref == action_ref, executions.c.concurrency_key == key)
        held = (
            await conn.execute(sa.select(sa.func.count()).select_from(executions).where(of_key, holding_slot()))
        ).scalar_one()
        free = max(0, policy.limit - held)
        members.sort(key=lambda c: c.id)  # ids are time-ordered: request order
        if policy.queues:
            first = (
                set(
                    (
                        await conn.execute(
                            sa.select(executions.c.id)
                            .where(of_key, waiting_for_slot())
                            .order_by(executions.c.id)
                            .limit(free)
                        )
                    ).scalars()
                )
                if free
                else set()
            )
            for candidate in members:
                (admission.admitted if candidate.id in first else admission.waiting).add(candidate.id)
        else:
            for candidate in members[:free]:
                admission.admitted.add(candidate.id)
            reason = f"concurrency limit of {action_ref} reached: {policy.limit} running with key {key!r}"
            for candidate in members[free:]:
                admission.refused[candidate.id] = reason
    return admission
