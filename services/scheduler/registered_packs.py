"""Packs as clients browse and delete them (ListPacks, GetPack, DeletePack), and the pages of
ListActions.

Lists of the registry are ordered by ref and paged by it: a page token carries the last ref and
is bound to the list and its filter (`pages.py`), so a token of ListActions for one pack is
refused with another. Both tables are small next to the history; `actions.ref` is unique and so
indexed, `packs.ref` is the primary key.

Deleting a pack removes its row, every action in its namespace (those its files declare and
those CreateAction added) and every stored version of its files, in one transaction. It is
refused while an execution of one of those actions has not ended, unless forced; forcing cancels
nothing — an execution already on a worker runs from the files that worker fetched, while one
not yet dispatched finds its action gone and fails. Executions keep their action_ref as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.grpcutil.convert import timestamp
from attune.grpcutil.errors import FailedPrecondition, NotFound, Violation
from attune.registry.v1 import registry_pb2
from attune.states import ACTIVE
from attune.storage.schema import actions, executions, pack_files, packs
from attune_services.scheduler.actions import ActionRecord
from attune_services.scheduler.pages import REF_KEY, key_after, page_token

DEFAULT_PAGE_SIZE = 100
PACKS_LISTING = "packs"
ACTIONS_LISTING = "actions"


def pack_view(row: Mapping[Any, Any]) -> registry_pb2.Pack:
    """A `Pack` message from a row of `packs`."""
    return registry_pb2.Pack(
        ref=row["ref"],
        label=row["label"],
        version=row["version"],
        description=row["description"],
        digest=row["digest"],
        registered_by=row["registered_by"] or "",
        registered_at=timestamp(row["registered_at"]),
    )


async def packs_page(conn: AsyncConnection, *, size: int, token: str) -> registry_pb2.ListPacksResponse:
    """One page of packs ordered by ref, after the token's ref."""
    after = key_after(token, PACKS_LISTING, {}, key=REF_KEY)
    query = sa.select(packs).order_by(packs.c.ref).limit(size + 1)
    if after:
        query = query.where(packs.c.ref > after)
    rows = (await conn.execute(query)).mappings().all()
    page = rows[:size]
    last = page[-1]["ref"] if len(rows) > size else ""
    return registry_pb2.ListPacksResponse(
        packs=[pack_view(r) for r in page], next_page_token=page_token(last, PACKS_LISTING, {})
    )


async def actions_page(conn: AsyncConnection, *, pack: str, size: int, token: str) -> registry_pb2.ListActionsResponse:
    """One page of actions (of `pack`, when given) ordered by ref, after the token's ref."""
    filters = {"pack": pack}
    after = key_after(token, ACTIONS_LISTING, filters, key=REF_KEY)
    query = sa.select(actions).order_by(actions.c.ref).limit(size + 1)
    if pack:
        query = query.where(actions.c.pack == pack)
    if after:
        query = query.where(actions.c.ref > after)
    rows = (await conn.execute(query)).mappings().all()
    page = rows[:size]
    last = page[-1]["ref"] if len(rows) > size else ""
    return registry_pb2.ListActionsResponse(
        actions=[ActionRecord.from_row(r).to_proto() for r in page],
        next_page_token=page_token(last, ACTIONS_LISTING, filters),
    )


async def pack_with_actions(conn: AsyncConnection, ref: str) -> registry_pb2.GetPackResponse:
    """The pack named `ref` with its actions ordered by ref; NotFound when it is not registered."""
    row = (await conn.execute(sa.select(packs).where(packs.c.ref == ref))).mappings().first()
    if row is None:
        raise NotFound(f"no pack {ref!r}")
    rows = (await conn.execute(sa.select(actions).where(actions.c.pack == ref).order_by(actions.c.ref))).mappings()
    return registry_pb2.GetPackResponse(
        pack=pack_view(row), actions=[ActionRecord.from_row(r).to_proto() for r in rows]
    )


async def delete_pack(conn: AsyncConnection, ref: str, *, force: bool) -> registry_pb2.DeletePackResponse:
    """Deletes the pack, its actions and its files in the caller's transaction (see the module's
    docstring); NotFound when it is not registered, FailedPrecondition naming `force` while
    executions of its actions have not ended and `force` is not set."""
    if (await conn.execute(sa.select(packs.c.ref).where(packs.c.ref == ref))).first() is None:
        raise NotFound(f"no pack {ref!r}")
    in_pack = sa.select(actions.c.ref).where(actions.c.pack == ref).order_by(actions.c.ref)
    refs = list((await conn.execute(in_pack)).scalars())
    active = 0
    if refs:
        counted = sa.select(sa.func.count()).where(
            executions.c.action_ref.in_(refs), executions.c.state.in_([str(s) for s in ACTIVE])
        )
        active = int((await conn.execute(counted)).scalar_one())
    if active and not force:
        description = (
            f"{active} execution(s) of its actions have not ended: wait for them, cancel them, or delete with force"
        )
        raise FailedPrecondition(f"pack {ref!r} is in use: {description}", [Violation("force", description)])
    await conn.execute(actions.delete().where(actions.c.pack == ref))
    await conn.execute(pack_files.delete().where(pack_files.c.pack_ref == ref))
    await conn.execute(packs.delete().where(packs.c.ref == ref))
    return registry_pb2.DeletePackResponse(ref=ref, deleted_action_refs=refs, active_executions=active)
