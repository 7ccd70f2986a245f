"""Registered actions as the scheduler holds them: the row shape, its proto view, and the
in-memory cache the execution-request hot path reads instead of the database."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.background import BackgroundTask
from attune.grpcutil.convert import duration, struct_from_dict, timestamp
from attune.packs import ConcurrencyPolicy
from attune.registry.v1 import registry_pb2
from attune.security import caller
from attune.storage import Database
from attune.storage.schema import actions, registry_generation

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ActionRecord:
    """One row of the `actions` table, JSON columns decoded."""

    id: str
    ref: str
    pack: str
    name: str
    label: str
    description: str
    enabled: bool
    runner_type: str
    entry_point: str | None
    parameters: dict[str, dict[str, Any]]
    output: dict[str, Any]
    timeout: float | None
    tags: list[str]
    workflow_file: str | None
    workflow_yaml: str | None
    pack_digest: str | None
    created_at: float
    updated_at: float
    #: The token name of the client that last created or changed it; empty with security off.
    updated_by: str = ""
    #: Its concurrency policy (services/scheduler/concurrency.py); None when it has none.
    concurrency: ConcurrencyPolicy | None = None

    @property
    def is_workflow(self) -> bool:
        """Workflow actions go to the coordinator, never to a worker."""
        return self.runner_type == "workflow"

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ActionRecord:
        """Decodes a row of `actions`."""
        return cls(
            id=row["id"],
            ref=row["ref"],
            pack=row["pack"],
            name=row["name"],
            label=row["label"],
            description=row["description"],
            enabled=bool(row["enabled"]),
            runner_type=row["runner_type"],
            entry_point=row["entry_point"],
            parameters=json.loads(row["parameters"] or "{}"),
            output=json.loads(row["output"] or "{}"),
            timeout=row["timeout"],
            tags=json.loads(row["tags"] or "[]"),
            workflow_file=row["workflow_file"],
            workflow_yaml=row["workflow_yaml"],
            pack_digest=row["pack_digest"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"] or "",
            concurrency=ConcurrencyPolicy.from_json(row["concurrency"]),
        )

    def to_proto(self, *, with_definition: bool = False) -> registry_pb2.Action:
        """The API view of the action; `with_definition` fills a workflow's YAML (GetAction and
        the responses of CreateAction and UpdateAction, not the lists: a page of workflows
        would carry every document)."""
        return registry_pb2.Action(
            id=self.id,
            ref=self.ref,
            pack=self.pack,
            name=self.name,
            label=self.label,
            description=self.description,
            enabled=self.enabled,
            runner_type=self.runner_type,
            entry_point=self.entry_point or "",
            parameters=struct_from_dict(self.parameters),
            output=struct_from_dict(self.output),
            timeout_seconds=self.timeout or 0.0,
            timeout=duration(self.timeout),
            tags=self.tags,
            workflow_file=self.workflow_file or "",
            pack_digest=self.pack_digest or "",
            created_at=timestamp(self.created_at),
            updated_at=timestamp(self.updated_at),
            updated_by=self.updated_by,
            concurrency=(
                registry_pb2.ConcurrencyPolicy(
                    limit=self.concurrency.limit, key=self.concurrency.key, on_limit=self.concurrency.on_limit
                )
                if self.concurrency is not None
                else None
            ),
            definition=(self.workflow_yaml or "") if with_definition and self.is_workflow else "",
        )


def action_row_values(
    *,
    ref: str,
    pack: str,
    name: str,
    label: str,
    description: str,
    enabled: bool,
    runner_type: str,
    entry_point: str | None,
    parameters: Mapping[str, Any],
    output: Mapping[str, Any],
    timeout: float | None,
    tags: list[str],
    workflow_file: str | None,
    workflow_yaml: str | None,
    pack_digest: str | None,
) -> dict[str, Any]:
    """The mutable column values of an action row (JSON columns encoded), attributed to the client
    making the current call (every create and change of an action goes through here)."""
    return {
        "ref": ref,
        "pack": pack,
        "name": name,
        "label": label,
        "description": description,
        "enabled": enabled,
        "runner_type": runner_type,
        "entry_point": entry_point,
        "parameters": json.dumps(dict(parameters)),
        "output": json.dumps(dict(output)),
        "timeout": timeout,
        "tags": json.dumps(list(tags)),
        "workflow_file": workflow_file,
        "workflow_yaml": workflow_yaml,
        "pack_digest": pack_digest,
        "updated_by": caller.token_name(),
    }


class ActionCache:
    """Actions by ref, read through from the database and held until the registry changes.

    Nothing expires on a clock: every registry write adds one to `registry_generation` in its
    transaction (`bump_registry_generation`) and calls `invalidate()` on the replica that made
    it, and `start()` runs a loop that reads the generation every `poll` seconds, so a write
    through another replica is seen within that. Concurrent misses share one read (single
    flight): a 10,000-wide fan-out of an action not yet cached reads it once, not per child.
    """

    def __init__(self, db: Database, *, poll: float) -> None:
        self._db = db
        self._poll = poll
        self._entries: dict[str, ActionRecord | None] = {}
        # Reads in flight by ref; a read started before an invalidation stores nothing (`_epoch`).
        self._loading: dict[str, asyncio.Task[dict[str, ActionRecord | None]]] = {}
        self._epoch = 0
        self._generation: int | None = None
        self._stopping = asyncio.Event()
        self._watch = BackgroundTask("action-cache-generation", self._watch_generation)

    async def start(self) -> None:
        """Reads the registry generation once, then every `poll` seconds (another replica's writes)."""
        await self._check_generation()
        self._watch.start()

    async def stop(self) -> None:
        """Stops the generation loop once its read in progress is done: a read cancelled midway
        has SQLAlchemy terminate its connection, and on SQLite that close could wait on the other
        services' writes in the same file for longer than a stop may take."""
        self._stopping.set()
        await self._watch.stop(grace=STOP_GRACE_S)

    async def get(self, ref: str) -> ActionRecord | None:
        """The action named `ref`, or None when it is not registered."""
        if ref in self._entries:  # the request path's usual case: no set, no dict made
            return self._entries[ref]
        return (await self.get_many({ref})).get(ref)

    async def get_many(self, refs: set[str]) -> dict[str, ActionRecord]:
        """Registered actions among `refs`: one query for the misses no other caller is reading."""
        found: dict[str, ActionRecord] = {}
        reads: set[asyncio.Task[dict[str, ActionRecord | None]]] = set()
        missing: list[str] = []
        for ref in refs:
            if ref in self._entries:
                if (hit := self._entries[ref]) is not None:
                    found[ref] = hit
            elif (reading := self._loading.get(ref)) is not None:
                reads.add(reading)
            else:
                missing.append(ref)
        if missing:
            read = asyncio.create_task(self._read(missing, self._epoch), name="action-cache-read")
            read.add_done_callback(_retrieve)
            for ref in missing:
                self._loading[ref] = read
            reads.add(read)
        for read in reads:
            # Shielded: a caller cancelled while waiting leaves the read to the others.
            loaded = await asyncio.shield(read)
            found.update((ref, action) for ref, action in loaded.items() if ref in refs and action is not None)
        return found

    def invalidate(self) -> None:
        """Forgets every entry, and lets reads in flight store nothing (after any registry write)."""
        self._entries.clear()
        self._loading.clear()
        self._epoch += 1

    async def _read(self, refs: list[str], epoch: int) -> dict[str, ActionRecord | None]:
        me = asyncio.current_task()
        try:
            async with self._db.read() as conn:
                rows = (await conn.execute(sa.select(actions).where(actions.c.ref.in_(refs)))).mappings()
                loaded: dict[str, ActionRecord | None] = dict.fromkeys(refs)
                loaded.update((row["ref"], ActionRecord.from_row(row)) for row in rows)
            if epoch == self._epoch:
                self._entries.update(loaded)
            return loaded
        finally:
            for ref in refs:
                if self._loading.get(ref) is me:
                    del self._loading[ref]

    async def _watch_generation(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(self._poll):
                    await self._stopping.wait()
            except TimeoutError:
                await self._check_generation()

    async def _check_generation(self) -> None:
        """Forgets every entry when the generation has moved since the last read (or on the first
        read: entries may have been loaded before it)."""
        try:
            async with self._db.read() as conn:
                generation = (await conn.execute(_GENERATION)).scalar_one_or_none()
        except Exception as err:  # the database is away: requests will say so; try again
            log.debug("action cache: reading the registry generation failed: %s", err)
            return
        if generation != self._generation:
            self.invalidate()
            self._generation = generation


#: How long stop() lets a read of the generation in progress finish before it cancels it.
STOP_GRACE_S = 5.0

_GENERATION = sa.select(registry_generation.c.generation).where(registry_generation.c.id == 1)


async def bump_registry_generation(conn: AsyncConnection) -> None:
    """Counts a registry write, in its transaction, so every replica's cache forgets its entries."""
    await conn.execute(
        registry_generation.update()
        .where(registry_generation.c.id == 1)
        .values(generation=registry_generation.c.generation + 1)
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks a read's error retrieved when every caller waiting for it was cancelled."""
    if not task.cancelled():
        task.exception()
