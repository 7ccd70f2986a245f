"""RegistryService: packs with their files, and actions (docs/architecture.md, Services;
docs/workflows.md, Packs and workflow files).

A pack is validated as a whole by `attune.packs` and stored in one transaction: the pack row, its
files by digest (every version kept, so workers running an older digest can still fetch them from
`pack_files.py`) and
each of its actions (updated in place, keeping its id). The same transaction deletes the actions
an earlier registration of the pack stored that its files no longer declare (`from_pack_files`);
actions created through CreateAction in the pack's namespace are kept. An action's ref, pack and
name never change after creation.

RegisterPack and UpdateAction with a request_id store their response in the request log in the
transaction of their change, so a retry returns it and changes nothing (see `request_log.py`).
CreateAction keeps its request_id on the action it creates: a retry returns that action, the same
request_id with a different request is refused with FAILED_PRECONDITION (`_creation_differences`).

Limits (docs/operations.md, Limits) come first: a pack's files as sent (number, sizes, paths that
must stay inside the pack) are checked before anything is read, parsed or stored, and every name
and text a pack declares for a column is checked against it, so a refusal is INVALID_ARGUMENT
naming the file or field and the limit, never a database error. (The request's own fields,
`request_id`, `ref`, `pack`, `name`, are held to their limits by the server's request guard.)
Parsing a pack runs in a thread: a large one must not stall the scheduler's event loop.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.config import Settings
from attune.grpcutil.convert import dict_from_struct, timeout_of
from attune.grpcutil.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Violation,
    invalid_field,
    rpc_errors,
)
from attune.grpcutil.server import RpcContext
from attune.ids import new_id
from attune.packs import (
    RUNNER_TYPES,
    PackBundle,
    PackError,
    PackLimits,
    PackProblem,
    YamlProblem,
    check_parameter_schema,
    check_upload,
    load_pack_files,
    load_yaml,
)
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.security import caller
from attune.storage import Database, is_unique_violation
from attune.storage.schema import actions, pack_files, packs
from attune_services.scheduler.action_updates import mask_paths, updated_action
from attune_services.scheduler.actions import (
    ActionCache,
    ActionRecord,
    action_row_values,
    bump_registry_generation,
)
from attune_services.scheduler.registered_packs import (
    DEFAULT_PAGE_SIZE,
    actions_page,
    delete_pack,
    pack_with_actions,
    packs_page,
)
from attune_services.scheduler.request_log import RequestLog, logged_request, reused_request_id
from attune_services.scheduler.workflow_validation import ActionFields, WorkflowFinding, check_definition

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_RPC = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].methods_by_name


class _RegisteredAction(NamedTuple):
    """What validating a pack needs to know of an action already in the registry."""

    ref: str
    pack: str
    from_pack_files: bool


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Serves attune.registry.v1.RegistryService from the registry tables."""

    def __init__(self, db: Database, cache: ActionCache, request_log: RequestLog, settings: Settings) -> None:
        self._db = db
        self._cache = cache
        self._request_log = request_log
        self._limits = PackLimits.from_settings(settings)
        self._max_page_size = settings.max_page_size

    # --- packs ---------------------------------------------------------------------------------

    @rpc_errors
    async def RegisterPack(
        self, request: registry_pb2.RegisterPackRequest, context: RpcContext
    ) -> registry_pb2.RegisterPackResponse:
        """Validates the pack's files as a whole, then, in one transaction, stores pack, files and
        actions and deletes the actions an earlier registration stored that the files no longer declare.
        A retried request_id returns the original response and registers nothing. Files beyond the
        limits (number, sizes, paths leaving the pack) are refused before anything else is done."""
        upload = [(f.path, f.content) for f in request.files]
        if not upload:
            raise InvalidArgument("no files given", [Violation("files", "a pack needs at least pack.yaml")])
        if problems := check_upload(upload, self._limits):
            raise _refusal(problems)
        logged = logged_request(_RPC["RegisterPack"], request, registry_pb2.RegisterPackResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        files = dict(upload)
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(actions.c.ref, actions.c.pack, actions.c.from_pack_files))
            registered = [_RegisteredAction(r.ref, r.pack, bool(r.from_pack_files)) for r in rows]
        bundle = await asyncio.to_thread(_validated_bundle, files, registered, self._limits)

        async def register(conn: AsyncConnection) -> registry_pb2.RegisterPackResponse:
            removed = await _delete_undeclared_actions(conn, bundle)
            stored = await _store_bundle(conn, bundle)
            await bump_registry_generation(conn)
            return registry_pb2.RegisterPackResponse(
                pack=registry_pb2.Pack(
                    ref=bundle.ref,
                    label=bundle.label,
                    version=bundle.version,
                    description=bundle.description,
                    digest=bundle.digest,
                    registered_by=caller.token_name(),
                ),
                actions=[a.to_proto() for a in stored],
                removed_action_refs=removed,
            )

        response = await self._request_log.write(logged, register)
        self._cache.invalidate()
        return response

    @rpc_errors
    async def ListPacks(
        self, request: registry_pb2.ListPacksRequest, context: RpcContext
    ) -> registry_pb2.ListPacksResponse:
        """Packs ordered by ref, a page at a time (`registered_packs.py`)."""
        async with self._db.read() as conn:
            return await packs_page(conn, size=self._page_size(request.page_size), token=request.page_token)

    @rpc_errors
    async def GetPack(self, request: registry_pb2.GetPackRequest, context: RpcContext) -> registry_pb2.GetPackResponse:
        """One pack with its actions."""
        if not request.ref:
            raise invalid_field("ref", "is required")
        async with self._db.read() as conn:
            return await pack_with_actions(conn, request.ref)

    @rpc_errors
    async def DeletePack(
        self, request: registry_pb2.DeletePackRequest, context: RpcContext
    ) -> registry_pb2.DeletePackResponse:
        """Deletes the pack, its actions and its files; refused while executions of its actions
        are active unless forced (`registered_packs.py`). A retried request_id returns the
        original response and deletes nothing again."""
        if not request.ref:
            raise invalid_field("ref", "is required")
        logged = logged_request(_RPC["DeletePack"], request, registry_pb2.DeletePackResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original

        async def delete(conn: AsyncConnection) -> registry_pb2.DeletePackResponse:
            deleted = await delete_pack(conn, request.ref, force=request.force)
            await bump_registry_generation(conn)
            return deleted

        response = await self._request_log.write(logged, delete)
        self._cache.invalidate()
        return response

    @rpc_errors
    async def ValidateWorkflow(
        self, request: registry_pb2.ValidateWorkflowRequest, context: RpcContext
    ) -> registry_pb2.ValidateWorkflowResponse:
        """Validates a definition as registering it in `request.pack` would, and returns every
        problem located, the parsed document and its graph (`workflow_validation.py`); raises only
        for a definition beyond the YAML limits."""
        async with self._db.read() as conn:
            known = list((await conn.execute(sa.select(actions.c.ref))).scalars())
            pack_registered = (
                not request.pack
                or (await conn.execute(sa.select(packs.c.ref).where(packs.c.ref == request.pack))).first() is not None
            )
        check = await asyncio.to_thread(
            check_definition, request.definition, known_action_refs=known, limits=self._limits, field="definition"
        )
        response = check.to_response()
        if not pack_registered:
            unknown_pack = WorkflowFinding("", "", f"pack {request.pack!r} is not registered: register it first")
            response.problems.insert(0, unknown_pack.to_proto())
        return response

    def _page_size(self, requested: int) -> int:
        return min(requested or DEFAULT_PAGE_SIZE, self._max_page_size)

    # --- actions -------------------------------------------------------------------------------

    @rpc_errors
    async def CreateAction(
        self, request: registry_pb2.CreateActionRequest, context: RpcContext
    ) -> registry_pb2.CreateActionResponse:
        """Creates one action in a registered pack. A retried request_id returns the action it
        created (as it is now); the same request_id with a different request is refused with
        FAILED_PRECONDITION naming request_id, and nothing is created."""
        if request.request_id:
            existing = await self._select_one(actions.c.request_id == request.request_id)
            if existing is not None:
                return _created_before(request, existing)
        proposed = request.action
        if not proposed.pack or not _NAME.match(proposed.pack):
            raise InvalidArgument("action.pack is missing or invalid", [Violation("action.pack", "required")])
        if not _NAME.match(proposed.name):
            raise InvalidArgument(
                f"action.name {proposed.name!r} is invalid",
                [Violation("action.name", "letters, digits, _ and -")],
            )
        ref = f"{proposed.pack}.{proposed.name}"
        if len(ref) > self._limits.max_name_length:  # the request guard checked pack and name alone
            limit = self._limits.max_name_length
            raise _invalid(
                "action.name",
                f"makes the action's ref (pack.name) {len(ref):,} characters, over the limit of {limit:,} "
                "(ATTUNE_MAX_NAME_LENGTH)",
            )
        if proposed.ref and proposed.ref != ref:
            raise InvalidArgument(
                f"action.ref {proposed.ref!r} does not match pack and name",
                [Violation("action.ref", f"must be {ref!r}")],
            )
        now = time.time()
        raced: ActionRecord | None = None  # the action a concurrent request with this request_id created
        async with self._db.write() as conn:
            values = await _checked_values(conn, proposed, self._limits, ref=ref)
            row = {"id": new_id(), **values, "request_id": request.request_id or None, "from_pack_files": False}
            try:
                async with conn.begin_nested():
                    await conn.execute(actions.insert().values(**row, created_at=now, updated_at=now))
                    await bump_registry_generation(conn)
            except sa.exc.IntegrityError as err:
                if not is_unique_violation(err):
                    raise
                if request.request_id:
                    same_id = sa.select(actions).where(actions.c.request_id == request.request_id)
                    found = (await conn.execute(same_id)).mappings().first()
                    raced = ActionRecord.from_row(found) if found is not None else None
                if raced is None:
                    raise AlreadyExists(f"action {ref!r} already exists") from err
        if raced is not None:
            return _created_before(request, raced)
        self._cache.invalidate()
        created = await self._select_one(actions.c.ref == ref)
        assert created is not None
        return registry_pb2.CreateActionResponse(action=created.to_proto(with_definition=True))

    @rpc_errors
    async def UpdateAction(
        self, request: registry_pb2.UpdateActionRequest, context: RpcContext
    ) -> registry_pb2.UpdateActionResponse:
        """Changes the fields update_mask names, or, without a mask, replaces every mutable field
        (`action_updates.py`); a changed ref, pack or name is refused. A retried request_id
        returns the original response and changes nothing."""
        if not request.id and not request.action.ref:
            raise invalid_field("id", "is required (or action.ref)")
        mask_paths(request)  # an unknown field is refused before anything is read
        logged = logged_request(_RPC["UpdateAction"], request, registry_pb2.UpdateActionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        proposed = request.action
        where = actions.c.id == request.id if request.id else actions.c.ref == proposed.ref

        async def update(conn: AsyncConnection) -> registry_pb2.UpdateActionResponse:
            row = (await conn.execute(sa.select(actions).where(where))).mappings().first()
            if row is None:
                raise NotFound(f"no action {request.id or proposed.ref!r}")
            stored = ActionRecord.from_row(row)
            changed = [
                Violation(field, f"is immutable: {getattr(stored, field)!r} cannot become {new!r}")
                for field, new in (("ref", proposed.ref), ("pack", proposed.pack), ("name", proposed.name))
                if new and new != getattr(stored, field)
            ]
            if changed:
                names = ", ".join(v.field for v in changed)
                raise FailedPrecondition(f"action {stored.ref!r}: {names} cannot be changed", changed)
            values = await _checked_values(
                conn, updated_action(stored, request), self._limits, ref=stored.ref, stored=stored
            )
            await conn.execute(
                actions.update().where(actions.c.id == stored.id).values(**values, updated_at=time.time())
            )
            await bump_registry_generation(conn)
            updated = (await conn.execute(sa.select(actions).where(actions.c.id == stored.id))).mappings().one()
            as_updated = ActionRecord.from_row(updated).to_proto(with_definition=True)
            return registry_pb2.UpdateActionResponse(action=as_updated)

        response = await self._request_log.write(logged, update)
        self._cache.invalidate()
        return response

    @rpc_errors
    async def GetAction(
        self, request: registry_pb2.GetActionRequest, context: RpcContext
    ) -> registry_pb2.GetActionResponse:
        """One action by ref."""
        found = await self._select_one(actions.c.ref == _required_ref(request.ref))
        if found is None:
            raise NotFound(f"no action {request.ref!r}")
        return registry_pb2.GetActionResponse(action=found.to_proto(with_definition=True))

    @rpc_errors
    async def ListActions(
        self, request: registry_pb2.ListActionsRequest, context: RpcContext
    ) -> registry_pb2.ListActionsResponse:
        """Actions ordered by ref, optionally of one pack, a page at a time (`registered_packs.py`)."""
        async with self._db.read() as conn:
            return await actions_page(
                conn, pack=request.pack, size=self._page_size(request.page_size), token=request.page_token
            )

    @rpc_errors
    async def DeleteAction(
        self, request: registry_pb2.DeleteActionRequest, context: RpcContext
    ) -> registry_pb2.DeleteActionResponse:
        """Deletes an action by ref (executions keep their action_ref)."""
        ref = _required_ref(request.ref)
        async with self._db.write() as conn:
            result = await conn.execute(actions.delete().where(actions.c.ref == ref))
            await bump_registry_generation(conn)
        self._cache.invalidate()
        if result.rowcount == 0:
            raise NotFound(f"no action {request.ref!r}")
        return registry_pb2.DeleteActionResponse(ref=request.ref)

    async def _select_one(self, where: Any) -> ActionRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(actions).where(where))).mappings().first()
        return ActionRecord.from_row(row) if row is not None else None


def _required_ref(ref: str) -> str:
    """`ref` of a request, which must name an action."""
    if not ref:
        raise invalid_field("ref", "is required")
    return ref


def _created_before(
    request: registry_pb2.CreateActionRequest, stored: ActionRecord
) -> registry_pb2.CreateActionResponse:
    """The answer to a CreateAction whose request_id created `stored`: the action as it is now
    when the request is the same, else FailedPrecondition naming `request_id`."""
    differences = _creation_differences(request.action, stored)
    if differences:
        raise reused_request_id(request.request_id, fields=differences)
    return registry_pb2.CreateActionResponse(action=stored.to_proto(with_definition=True))


def _creation_differences(proposed: registry_pb2.Action, stored: ActionRecord) -> list[str]:
    """The fields of a CreateAction request that `stored`, the action its request_id created,
    does not have as CreateAction stores them. Its ref never changes, so pack and name are always
    compared; the other fields only while the action is as created (UpdateAction or its pack's
    files may have changed them since, and a retry of the original must still get it)."""
    differences = [
        f"action.{field}" for field in ("pack", "name") if getattr(proposed, field) != getattr(stored, field)
    ]
    if proposed.ref and proposed.ref != stored.ref:
        differences.append("action.ref")
    if differences or stored.updated_at != stored.created_at:
        return differences
    parameters, _ = check_parameter_schema(dict_from_struct(proposed.parameters, field="action.parameters"))
    as_stored = {
        "label": (proposed.label or proposed.name) == stored.label,
        "description": proposed.description == stored.description,
        "enabled": proposed.enabled == stored.enabled,
        "runner_type": proposed.runner_type == stored.runner_type,
        "entry_point": stored.runner_type == "workflow" or _names_path(proposed.entry_point, stored.entry_point),
        "parameters": parameters == stored.parameters,
        "output": dict_from_struct(proposed.output, field="action.output") == stored.output,
        "timeout_seconds": (timeout_of(proposed, prefix="action.") or None) == stored.timeout,
        "tags": list(proposed.tags) == stored.tags,
        # A definition takes the place of workflow_file (`_workflow_of`): then it is compared.
        "workflow_file": bool(proposed.definition) or _names_path(proposed.workflow_file, stored.workflow_file),
        "definition": not proposed.definition or proposed.definition == stored.workflow_yaml,
    }
    return [f"action.{field}" for field, same in as_stored.items() if not same]


def _names_path(value: str, stored: str | None) -> bool:
    """Whether `value`, as CreateAction resolves it (`_pack_path`), names the stored pack file."""
    if not value:
        return stored is None
    return stored in (posixpath.normpath(value), posixpath.normpath(posixpath.join("actions", value)))


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {description}", [Violation(field, description)])


def _refusal(problems: Sequence[PackProblem]) -> InvalidArgument:
    """INVALID_ARGUMENT with one violation per problem, its field the file (``files`` for the
    whole pack) and the field in it."""
    violations = [Violation(f"{p.file}: {p.field}" if p.field else p.file or "files", p.message) for p in problems]
    return InvalidArgument(f"pack refused ({len(problems)} problems):\n{PackError(list(problems))}", violations)


def _validated_bundle(
    files: Mapping[str, bytes], registered: Sequence[_RegisteredAction], limits: PackLimits
) -> PackBundle:
    """The pack, validated against the registry as this registration leaves it: its workflows may
    not call an action of the pack that its files no longer declare (the registration deletes it).

    The pack's ref is known only once its files are read, so a pack that drops actions is validated
    a second time without them.
    """
    known = {row.ref for row in registered}
    bundle = _loaded(files, known, limits)
    undeclared = _undeclared_refs(bundle, registered)
    return _loaded(files, known - undeclared, limits) if undeclared else bundle


def _loaded(files: Mapping[str, bytes], known_action_refs: set[str], limits: PackLimits) -> PackBundle:
    """`load_pack_files`, a refusal becoming INVALID_ARGUMENT with one violation per problem."""
    try:
        return load_pack_files(files, known_action_refs=known_action_refs, limits=limits)
    except PackError as err:
        raise _refusal(err.problems) from err


def _undeclared_refs(bundle: PackBundle, registered: Sequence[_RegisteredAction]) -> set[str]:
    """Refs a registration of `bundle`'s pack stored earlier that its files no longer declare."""
    declared = {action.ref for action in bundle.actions}
    return {row.ref for row in registered if row.pack == bundle.ref and row.from_pack_files and row.ref not in declared}


async def _delete_undeclared_actions(conn: AsyncConnection, bundle: PackBundle) -> list[str]:
    """Deletes, in the caller's transaction, the actions an earlier registration of the pack stored
    that its files no longer declare; returns their refs, sorted. Rows made by CreateAction
    (from_pack_files false) stay; executions keep their action_ref as text and are not touched."""
    undeclared = (
        sa.select(actions.c.ref)
        .where(
            actions.c.pack == bundle.ref,
            actions.c.from_pack_files.is_(True),
            actions.c.ref.not_in([action.ref for action in bundle.actions]),
        )
        .order_by(actions.c.ref)
    )
    refs = list((await conn.execute(undeclared)).scalars())
    if refs:
        await conn.execute(actions.delete().where(actions.c.ref.in_(refs)))
    return refs


async def _store_bundle(conn: AsyncConnection, bundle: PackBundle) -> list[ActionRecord]:
    """Upserts the pack, its files (once per digest) and its actions, in the caller's transaction."""
    now = time.time()
    pack_values = {
        "label": bundle.label,
        "version": bundle.version,
        "description": bundle.description,
        "digest": bundle.digest,
        "registered_at": now,
        "registered_by": caller.token_name(),
    }
    exists = (await conn.execute(sa.select(packs.c.ref).where(packs.c.ref == bundle.ref))).first()
    if exists:
        await conn.execute(packs.update().where(packs.c.ref == bundle.ref).values(**pack_values))
    else:
        await conn.execute(packs.insert().values(ref=bundle.ref, **pack_values))
    has_files = (await conn.execute(sa.select(pack_files.c.digest).where(pack_files.c.digest == bundle.digest))).first()
    if not has_files:
        await conn.execute(
            pack_files.insert(),
            [
                {"digest": bundle.digest, "path": p, "pack_ref": bundle.ref, "content": c}
                for p, c in bundle.files.items()
            ],
        )
    refs = [a.ref for a in bundle.actions]
    ids: dict[str, str] = dict(
        (await conn.execute(sa.select(actions.c.ref, actions.c.id).where(actions.c.ref.in_(refs)))).all()
    )
    for action in bundle.actions:
        values = action_row_values(
            ref=action.ref,
            pack=action.pack,
            name=action.name,
            label=action.label,
            description=action.description,
            enabled=action.enabled,
            runner_type=action.runner_type,
            entry_point=action.entry_point,
            parameters=action.parameters,
            output=action.output,
            timeout=action.timeout,
            tags=action.tags,
            workflow_file=action.workflow_source,
            workflow_yaml=action.workflow_yaml,
            pack_digest=bundle.digest,
        )
        values["from_pack_files"] = True  # the pack's files now own the row, even one CreateAction made
        values["concurrency"] = action.concurrency.to_json() if action.concurrency else None
        if action.ref in ids:
            await conn.execute(actions.update().where(actions.c.id == ids[action.ref]).values(**values, updated_at=now))
        else:
            await conn.execute(actions.insert().values(id=new_id(), **values, created_at=now, updated_at=now))
    rows = (await conn.execute(sa.select(actions).where(actions.c.ref.in_(refs)).order_by(actions.c.ref))).mappings()
    return [ActionRecord.from_row(r) for r in rows]


async def _checked_values(
    conn: AsyncConnection,
    proposed: registry_pb2.Action,
    limits: PackLimits,
    *,
    ref: str,
    stored: ActionRecord | None = None,
) -> dict[str, Any]:
    """Validates an action given through the API against its (registered) pack; returns row values.
    `stored` is the action an update changes (None for a creation). A workflow is its new
    `definition`, validated as registration validates a workflow file (`_workflow_of`), or is read
    from the pack's `workflow_file` as registration reads it: within the YAML limits."""
    pack = stored.pack if stored is not None else proposed.pack
    name = stored.name if stored is not None else proposed.name
    pack_row = (await conn.execute(sa.select(packs).where(packs.c.ref == pack))).first()
    if pack_row is None:
        raise NotFound(f"pack {pack!r} is not registered")
    paths = set(
        (await conn.execute(sa.select(pack_files.c.path).where(pack_files.c.digest == pack_row.digest))).scalars()
    )
    violations: list[Violation] = []
    runner_type = proposed.runner_type
    if runner_type not in RUNNER_TYPES:
        violations.append(
            Violation("action.runner_type", f"unknown runner_type {runner_type!r} (one of {', '.join(RUNNER_TYPES)})")
        )
    parameters, problems = check_parameter_schema(dict_from_struct(proposed.parameters, field="action.parameters"))
    violations += [Violation(f"action.{field}", message) for field, message in problems]
    violations += [
        Violation(f"action.{field}", "contains a NUL character, which cannot be stored")
        for field, value in (("label", proposed.label), ("description", proposed.description))
        if "\0" in value
    ]
    entry_point = _pack_path(proposed.entry_point, paths) if proposed.entry_point else None
    workflow_file = _pack_path(proposed.workflow_file, paths) if proposed.workflow_file else None
    workflow_yaml: str | None = None
    # A definition is new unless it is the one stored (UpdateAction starts from the stored action).
    new_definition = proposed.definition if stored is None or proposed.definition != stored.workflow_yaml else ""
    if runner_type in ("shell", "python", "nodejs") and entry_point is None:
        shown = proposed.entry_point or "(empty)"
        violations.append(Violation("action.entry_point", f"{shown} is not a file of pack {pack!r}"))
    if runner_type == "workflow":
        owner = ActionFields(ref=ref, label=proposed.label or name, parameters=parameters)
        workflow_file, workflow_yaml = await _workflow_of(
            conn, proposed, limits, owner, new_definition=new_definition, file=workflow_file, violations=violations
        )
        if workflow_yaml is None and workflow_file is not None:
            workflow_yaml = await _pack_file_text(conn, pack_row.digest, workflow_file, limits, violations)
    elif new_definition:
        violations.append(
            Violation("action.definition", f"only a workflow action has a definition (runner_type is {runner_type!r})")
        )
    timeout = 0.0
    try:
        timeout = timeout_of(proposed, prefix="action.")  # the Duration when set, else timeout_seconds
    except InvalidArgument as err:
        violations += err.violations
    if timeout < 0:
        violations.append(Violation("action.timeout_seconds", "must not be negative"))
    if violations:
        raise InvalidArgument(f"action {ref!r} is invalid", violations)
    return action_row_values(
        ref=ref,
        pack=pack,
        name=name,
        label=proposed.label or name,
        description=proposed.description,
        enabled=proposed.enabled,
        runner_type=runner_type,
        entry_point=entry_point if runner_type != "workflow" else None,
        parameters=parameters,
        output=dict_from_struct(proposed.output, field="action.output"),
        timeout=timeout or None,
        tags=list(proposed.tags),
        workflow_file=workflow_file,
        workflow_yaml=workflow_yaml,
        pack_digest=pack_row.digest,
    )


async def _workflow_of(
    conn: AsyncConnection,
    proposed: registry_pb2.Action,
    limits: PackLimits,
    owner: ActionFields,
    *,
    new_definition: str,
    file: str | None,
    violations: list[Violation],
) -> tuple[str | None, str | None]:
    """(workflow_file, workflow_yaml) of a workflow action given through the API, appending what
    is wrong to `violations`; a yaml of None with a file means: read that pack file.

    A new definition is the workflow, validated as registration validates a workflow file (its
    problems each a violation of `action.definition` naming task, field, line and column); it
    takes the place of any workflow_file, which is cleared, so the action's workflow is its own
    and a later update does not read a pack file over it. Without one, the pack's
    `workflow_file` is read; an unchanged definition with no file is kept as stored.
    """
    if new_definition:
        known = list((await conn.execute(sa.select(actions.c.ref))).scalars())
        check = await asyncio.to_thread(
            check_definition,
            new_definition,
            known_action_refs=known,
            limits=limits,
            field="action.definition",
            action=owner,
        )
        violations += check.violations("action.definition")
        return None, new_definition
    if file is not None:
        return file, None
    if proposed.workflow_file:
        pack = owner.ref.partition(".")[0]
        violations.append(Violation("action.workflow_file", f"{proposed.workflow_file} is not a file of pack {pack!r}"))
        return None, None
    if proposed.definition:
        return None, proposed.definition  # as stored
    violations.append(
        Violation("action.definition", "a workflow action needs its workflow: a definition or a workflow_file")
    )
    return None, None


async def _pack_file_text(
    conn: AsyncConnection, digest: str, path: str, limits: PackLimits, violations: list[Violation]
) -> str | None:
    """A workflow file of the pack's stored files, read within the YAML limits."""
    content = (
        await conn.execute(
            sa.select(pack_files.c.content).where(pack_files.c.digest == digest, pack_files.c.path == path)
        )
    ).scalar_one()
    try:
        load_yaml(content, limits.yaml)
    except YamlProblem as err:
        violations.append(Violation("action.workflow_file", f"{path}: {err}"))
        return None
    return str(content.decode("utf-8"))


def _pack_path(value: str, paths: set[str]) -> str | None:
    """The pack file a path names: pack-relative ("actions/x.sh") or relative to actions/ ("x.sh")."""
    for candidate in (posixpath.normpath(value), posixpath.normpath(posixpath.join("actions", value))):
        if candidate in paths:
            return candidate
    return None
