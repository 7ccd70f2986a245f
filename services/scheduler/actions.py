"""Registered actions as the scheduler holds them: the row shape, its proto view, and the
in-memory cache the execution-request hot path reads instead of the database."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from attune.grpcutil.convert import duration, struct_from_dict, timestamp
from attune.packs import ConcurrencyPolicy
from attune.registry.v1 import registry_pb2
from attune.security import caller
from attune.storage import Database
from attune.storage.schema import actions


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


@dataclass(frozen=True, slots=True)
class _CachedAction:
    """A cache entry: the action as read at `loaded_at` (monotonic), None when not registered."""

    loaded_at: float
    action: ActionRecord | None


class ActionCache:
    """Actions by ref, read through from the database.

    Writes on this replica call `invalidate()`; entries also expire after `ttl` seconds so that a
    change made through another replica is seen soon after.
    """

    def __init__(self, db: Database, *, ttl: float) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[str, _CachedAction] = {}

    async def get(self, ref: str) -> ActionRecord | None:
        """The action named `ref`, or None when it is not registered."""
        now = time.monotonic()
        hit = self._entries.get(ref)
        if hit is not None and now - hit.loaded_at < self._ttl:
            return hit.action
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(actions).where(actions.c.ref == ref))).mappings().first()
        record = ActionRecord.from_row(row) if row is not None else None
        self._entries[ref] = _CachedAction(now, record)
        return record

    async def get_many(self, refs: set[str]) -> dict[str, ActionRecord]:
        """Registered actions among `refs` (one query for all misses)."""
        now = time.monotonic()
        found: dict[str, ActionRecord] = {}
        missing: list[str] = []
        for ref in refs:
            hit = self._entries.get(ref)
            if hit is not None and now - hit.loaded_at < self._ttl:
                if hit.action is not None:
                    found[ref] = hit.action
            else:
                missing.append(ref)
        if missing:
            async with self._db.read() as conn:
                rows = (await conn.execute(sa.select(actions).where(actions.c.ref.in_(missing)))).mappings()
                loaded = {row["ref"]: ActionRecord.from_row(row) for row in rows}
            for ref in missing:
                self._entries[ref] = _CachedAction(now, loaded.get(ref))
            found.update(loaded)
        return found

    def invalidate(self) -> None:
        """Forgets every entry (after any registry write)."""
        self._entries.clear()
