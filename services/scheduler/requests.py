"""Execution requests: validate against the action, then insert in state "scheduling" (an ask,
`core.ask`: "pending", waiting for its answer, asks.py).

Rows from many concurrent requests share one transaction (group commit, docs/architecture.md, Durability). A
`request_id` is unique: a retried request finds the stored row and gets the original execution;
the same request_id with a different request is refused with FAILED_PRECONDITION naming
`request_id` and creates nothing (`_check_retry`). The comparison runs only when the id is
found stored, in the batch or before it, so a fresh id costs nothing more.
Each accepted row is handed to `on_created` (dispatch or workflow hand-off) right after commit.
Secret parameters are stored sealed (docs/architecture.md, Secrets); only actions that have them
pay for it. Parameters beyond `ParameterLimits` (size as JSON, nesting) are refused before any
lookup, whether a client or a workflow asked.
On PostgreSQL a batch is one `INSERT … SELECT FROM unnest(arrays) ON CONFLICT (request_id) DO
NOTHING RETURNING id` (one round trip, atomic on its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from opentelemetry.trace import SpanKind

from attune import metrics, telemetry
from attune.config import Settings
from attune.grpcutil.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable, Violation, quoted
from attune.ids import new_id
from attune.packs import ConcurrencyKeyError, ParameterError, secret_names, validate_parameters
from attune.security import caller
from attune.security.sealing import Sealer, SecretKeyError, open_parameters, require, seal_parameters
from attune.states import ExecutionState
from attune.storage import Database, is_unique_violation
from attune.storage.batching import GroupCommitter
from attune.storage.schema import executions
from attune_services.scheduler.actions import ActionCache, ActionRecord
from attune_services.scheduler.asks import ASK, parse_ask
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.request_log import reused_request_id

_tracer = telemetry.tracer(__name__)

Row = dict[str, Any]

#: A row a column refuses (a value too long, a constraint), on either database: that row's fault.
_ROW_REFUSED = (sa.exc.DataError, sa.exc.IntegrityError, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True, kw_only=True)
class ParameterLimits:
    """How large and how deeply nested one execution's parameters may be (docs/operations.md, Limits)."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> ParameterLimits:
        """ATTUNE_MAX_PARAMETERS_BYTES and ATTUNE_MAX_PARAMETERS_DEPTH."""
        return cls(max_bytes=settings.max_parameters_bytes, max_depth=settings.max_parameters_depth)

    def check(self, params: Mapping[str, Any], *, size: int | None = None) -> None:
        """Raises InvalidArgument naming `parameters` (too large) or the parameter nested too
        deeply; `size` is their JSON's size when the caller has it."""
        if size is None:
            size = len(json.dumps(params, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        if size > self.max_bytes:
            raise _limit("parameters", f"{size} bytes as JSON, more than the limit of {self.max_bytes}")
        for name, value in params.items():
            depth = 1 + _nesting(value)  # the parameters object is the first level
            if depth > self.max_depth:
                raise _limit(
                    f"parameters.{name}",
                    f"nests {depth} levels of objects and lists, more than the limit of {self.max_depth}",
                )


def _limit(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {description}", [Violation(field, description)])


def _nesting(value: Any) -> int:
    """Levels of objects and lists in a JSON value (a scalar: 0); iterative, for any depth."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth + 1)
        stack += [(child, depth + 1) for child in item]
    return deepest


@dataclass(frozen=True, kw_only=True)
class ChildLink:
    """Where a child execution belongs in its parent workflow."""

    parent_id: str
    workflow_execution_id: str
    task_name: str
    task_run: int
    item_index: int | None
    attempt: int
    depth: int
    traceparent: str


@dataclass(frozen=True)
class RerunLink:
    """What a re-run links to (reruns.py): the original execution, and for a workflow re-run from
    some tasks, those tasks and their new input as JSON (the `rerun_from` column)."""

    original_id: str
    from_json: str | None = None


class ExecutionRequests:
    """Turns requests into stored executions."""

    def __init__(
        self,
        db: Database,
        cache: ActionCache,
        on_created: Callable[[Sequence[Row]], None],
        *,
        slots: Dispatcher | None = None,
        sealer: Sealer | None = None,
        limits: ParameterLimits | None = None,
    ) -> None:
        self._db = db
        self._limits = limits or ParameterLimits()
        self._sealer = sealer  # seals the values of secret parameters before they are stored
        self._cache = cache
        self._on_created = on_created
        self._slots = slots  # free worker slots taken at request time (see dispatch.py)
        self._committer: GroupCommitter[Row, tuple[Row, bool] | Exception] = GroupCommitter(self._flush)

    async def request(
        self,
        action_ref: str,
        params: Mapping[str, Any],
        *,
        request_id: str,
        timeout: float,
        rerun: RerunLink | None = None,
        execution_id: str | None = None,
        method: str = "RequestExecution",
    ) -> Row:
        """One top-level execution; raises NotFound / FailedPrecondition / InvalidArgument.
        A request_id already stored returns its execution for the same request (a retry) and is
        FailedPrecondition for a different one. `execution_id`: the new execution's id, chosen by
        a caller that watches it before it is stored (RunExecution); `method` names the request's
        span."""
        self._limits.check(params)
        try:
            action = await self._checked_action(action_ref)
            values = _validated(action, params)
        except (NotFound, FailedPrecondition, InvalidArgument):
            existing = await self._by_request_id(request_id)
            if existing is not None:  # a retry of a request accepted before the action changed
                _check_retry(
                    self._opened(existing),
                    request_id,
                    action_ref,
                    params,
                    timeout,
                    parent_id=None,
                    action=None,
                    values=None,
                )
                return existing
            raise
        row, is_new = await self._insert(
            action,
            values,
            request_id=request_id,
            timeout=timeout,
            link=None,
            rerun=rerun,
            execution_id=execution_id,
            method=method,
        )
        if not is_new:
            _check_retry(
                self._opened(row), request_id, action_ref, params, timeout, parent_id=None, action=action, values=values
            )
        return row

    async def request_child(
        self, action_ref: str, params_json: bytes, *, request_id: str, timeout: float, link: ChildLink
    ) -> Row:
        """One child of a workflow task run (same checks, request_id included: the same id for
        another child is FailedPrecondition; the caller reports errors per child)."""
        if len(params_json) > self._limits.max_bytes:
            self._limits.check({}, size=len(params_json))
        try:
            params = json.loads(params_json or b"{}")
        except (ValueError, RecursionError) as err:  # RecursionError: nested past what json parses
            raise InvalidArgument(f"parameters of {quoted(action_ref)} are not a JSON object: {err}") from err
        if not isinstance(params, dict):
            raise InvalidArgument(f"parameters of {quoted(action_ref)} must be a JSON object")
        self._limits.check(params, size=len(params_json))
        action = await self._checked_action(action_ref)
        values = _validated(action, params)
        row, is_new = await self._insert(action, values, request_id=request_id, timeout=timeout, link=link)
        if not is_new:
            _check_retry(
                self._opened(row),
                request_id,
                action_ref,
                params,
                timeout,
                parent_id=link.parent_id,
                action=action,
                values=values,
            )
        return row

    def opened_parameters(self, row: Row) -> dict[str, Any]:
        """A stored row's parameters, secret values opened (what a re-run starts from)."""
        params: dict[str, Any] = json.loads(self._opened(row)["parameters"] or "{}")
        return params

    def _opened(self, row: Row) -> Row:
        """A stored row with its sealed parameters opened, to compare a retry with (in memory)."""
        if row["secret_names"] in (None, "", "[]"):
            return row
        try:
            params = open_parameters(self._sealer, json.loads(row["parameters"] or "{}"))
        except SecretKeyError as err:
            raise FailedPrecondition(f"execution {row['id']}: {err}") from err
        return {**row, "parameters": json.dumps(params)}

    def _stored_parameters(self, action: ActionRecord, params: dict[str, Any]) -> tuple[str, list[str]]:
        """The parameters column (secret values sealed) and the secret names of a new row. Only
        an action with secret parameters pays for sealing."""
        names = sorted(secret_names(action.parameters))
        if not names or not any(name in params for name in names):
            return json.dumps(params), names
        try:
            sealer = require(self._sealer, f"action {action.ref!r} has secret parameters")
        except SecretKeyError as err:
            raise FailedPrecondition(str(err)) from err
        return json.dumps(seal_parameters(sealer, params, names)), names

    async def close(self) -> None:
        """Writes what is queued."""
        await self._committer.close()

    async def _checked_action(self, action_ref: str) -> ActionRecord:
        if not action_ref:
            raise InvalidArgument("action_ref is required", [Violation("action_ref", "required")])
        action = await self._cache.get(action_ref)
        if action is None:
            raise NotFound(f"no action {quoted(action_ref)} is registered")
        if not action.enabled:
            raise FailedPrecondition(f"action {quoted(action_ref)} is disabled")
        return action

    async def _by_request_id(self, request_id: str) -> Row | None:
        if not request_id:
            return None
        async with self._db.read() as conn:
            row = (
                (await conn.execute(sa.select(executions).where(executions.c.request_id == request_id)))
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def _insert(
        self,
        action: ActionRecord,
        params: dict[str, Any],
        *,
        request_id: str,
        timeout: float,
        link: ChildLink | None,
        rerun: RerunLink | None = None,
        execution_id: str | None = None,
        method: str = "RequestExecution",
    ) -> tuple[Row, bool]:
        if action.runner_type == ASK:
            parse_ask(params)  # a bad schema, roles or users is the request's fault, not the responder's
        stored_params, names = self._stored_parameters(action, params)
        concurrency_key = _concurrency_key(action, params)
        execution_id = execution_id or new_id()
        # A top-level execution starts a new trace (an empty parent); a child joins its parent's,
        # under the workflow step that made it. The stored traceparent is its execution span's.
        now = time.time()
        traceparent = _execution_traceparent(execution_id, link)
        row: Row = {
            "id": execution_id,
            "action_ref": action.ref,
            "runner_type": action.runner_type,
            "state": _first_state(action.runner_type),
            "parameters": stored_params,
            "secret_names": json.dumps(names),
            "result": None,
            "error": None,
            "parent_id": None,
            "workflow_execution_id": None,
            "task_name": None,
            "task_run": None,
            "item_index": None,
            "attempt": None,
            "depth": 0,
            "worker_id": None,
            "request_id": request_id or None,
            "traceparent": traceparent or None,
            "trace_id": telemetry.trace_id_of(traceparent) or None,
            "timeout": timeout if timeout > 0 else action.timeout,
            "created_at": now,
            "scheduled_at": None,
            "started_at": None,
            "finished_at": None,
            "updated_at": now,
            "requested_by": "" if link is not None else caller.token_name(),
            "concurrency_key": concurrency_key,
            "rerun_of": rerun.original_id if rerun is not None else None,
            "rerun_from": rerun.from_json if rerun is not None else None,
        }
        if link is not None:
            row.update(
                parent_id=link.parent_id,
                workflow_execution_id=link.workflow_execution_id,
                task_name=link.task_name,
                task_run=link.task_run,
                item_index=link.item_index,
                attempt=link.attempt,
                depth=link.depth,
            )
        try:
            stored = await self._committer.submit(row)
        except RuntimeError as err:  # the committer closed: the scheduler is draining
            raise Unavailable("the scheduler is shutting down; retry with the same request_id") from err
        if isinstance(stored, Exception):
            raise stored
        if stored[1] and telemetry.exporting():  # a retry made no execution: no span of one either
            _record_request_span(execution_id, action.ref, link, traceparent, start=now, rerun=rerun, method=method)
        return stored

    async def _flush(self, rows: list[Row]) -> list[tuple[Row, bool] | Exception]:
        """Inserts a batch in one transaction; rows whose request_id exists map to the stored row.
        A value a column refuses fails the whole statement: the rows are then inserted one by one,
        so that the bad row's request alone fails (with that error), not those it shared a batch
        with (a workflow's other children, other clients' requests)."""
        try:
            return list(await self._flush_together(rows))
        except _ROW_REFUSED as err:
            if len(rows) == 1:
                return [err]
        results: list[tuple[Row, bool] | Exception] = []
        for row in rows:
            # As `_insert` made it: the slot it was reserved is given back, another may be taken.
            row.update(state=_first_state(row["runner_type"]), worker_id=None, scheduled_at=None)
            results += await self._flush([row])
        return results

    async def _flush_together(self, rows: list[Row]) -> list[tuple[Row, bool]]:
        reserved = self._reserve_slots(rows)
        try:
            results = await self._write(rows)
        except BaseException:
            if self._slots is not None:
                self._slots.unreserve(reserved)
            raise
        if self._slots is not None and reserved:
            self._slots.unreserve(reserved - {row["id"] for row, is_new in results if is_new})
        created = [row for row, is_new in results if is_new]
        if created:
            for row in created:
                metrics.requested.get(row["action_ref"]).inc()
            self._on_created(created)
        return results

    async def _write(self, rows: list[Row]) -> list[tuple[Row, bool]]:
        if not self._db.is_sqlite:
            async with self._db.asyncpg(rows=len(rows)) as raw:
                return await _insert_batch_pg(raw, rows)
        try:
            async with self._db.write() as conn:
                return await _insert_batch(conn, rows)
        except sa.exc.IntegrityError as err:
            if not is_unique_violation(err):
                raise
            # Another writer inserted one of these request_ids meanwhile: settle them one by one.
            results: list[tuple[Row, bool]] = []
            for row in rows:
                async with self._db.write() as conn:
                    results += await _insert_batch(conn, [row])
            return results

    def _reserve_slots(self, rows: list[Row]) -> set[str]:
        """Rows a worker can take now are inserted already scheduled on it; returns their ids."""
        if self._slots is None:
            return set()
        reserved: set[str] = set()
        now = time.time()
        for row in rows:
            if row["runner_type"] in ("workflow", ASK) or row.get("concurrency_key") is not None:
                continue  # a policy's slot is taken at dispatch, under its lock (concurrency.py)
            session = self._slots.reserve(row)
            if session is not None:
                row.update(state=ExecutionState.SCHEDULED, worker_id=session.worker_id, scheduled_at=now)
                reserved.add(row["id"])
        return reserved


def _first_state(runner_type: str) -> ExecutionState:
    """An ask waits `pending` for its answer (asks.py); everything else starts in scheduling."""
    return ExecutionState.PENDING if runner_type == ASK else ExecutionState.SCHEDULING


_COLUMNS = [column.name for column in executions.c]


def _pg_array(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.Integer):
        return "int4[]"
    if isinstance(column.type, sa.Float):
        return "float8[]"
    return "text[]"


_INSERT_PG = (
    f"INSERT INTO executions ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'${i}::{_pg_array(c)}' for i, c in enumerate(executions.c, 1))}) "
    "ON CONFLICT (request_id) DO NOTHING RETURNING id"
)


async def _insert_batch_pg(raw: Any, rows: list[Row]) -> list[tuple[Row, bool]]:
    """PostgreSQL: rows whose request_id is already stored (or repeated in the batch) are not
    inserted; they map to the stored row."""
    inserted = {
        record["id"] for record in await raw.fetch(_INSERT_PG, *([row.get(c) for row in rows] for c in _COLUMNS))
    }
    stored: dict[str, Row] = {}
    known = [row["request_id"] for row in rows if row["id"] not in inserted]
    if known:
        found = await raw.fetch("SELECT * FROM executions WHERE request_id = any($1::text[])", known)
        stored = {record["request_id"]: dict(record) for record in found}
    results: list[tuple[Row, bool]] = []
    for row in rows:
        if row["id"] in inserted:
            results.append((row, True))
        elif row["request_id"] in stored:
            results.append((stored[row["request_id"]], False))
        else:  # not inserted, yet no row holds its request_id: cannot happen without a conflict
            raise RuntimeError(f"execution request {row['request_id']!r} was neither inserted nor found")
    return results


async def _insert_batch(conn: Any, rows: list[Row]) -> list[tuple[Row, bool]]:
    request_ids = [r["request_id"] for r in rows if r["request_id"]]
    stored: dict[str, Row] = {}
    if request_ids:
        found = await conn.execute(sa.select(executions).where(executions.c.request_id.in_(request_ids)))
        stored = {r["request_id"]: dict(r) for r in found.mappings()}
    results: list[tuple[Row, bool]] = []
    fresh: list[Row] = []
    for row in rows:
        key = row["request_id"]
        if key and key in stored:
            results.append((stored[key], False))
            continue
        if key:
            stored[key] = row  # a duplicate within the same batch gets this row
        fresh.append(row)
        results.append((row, True))
    if fresh:
        await conn.execute(executions.insert(), fresh)
    return results


def _concurrency_key(action: ActionRecord, params: Mapping[str, Any]) -> str | None:
    """The key of the action's concurrency policy for these parameters (None: no policy)."""
    if action.concurrency is None:
        return None
    try:
        return action.concurrency.render_key(params)
    except ConcurrencyKeyError as err:
        raise InvalidArgument(
            f"action {quoted(action.ref)}: {err}", [Violation("parameters", f"concurrency key of {action.ref}: {err}")]
        ) from err


def _validated(action: ActionRecord, params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return validate_parameters(action.parameters, params)
    except ParameterError as err:
        # Named by the request's field path, as every violation is: parameters.count.
        violations = [Violation(f"parameters.{v.field}", v.description) for v in err.violations]
        raise InvalidArgument(f"invalid parameters for {quoted(action.ref)}: {err}", violations) from err


def _check_retry(
    stored: Row,
    request_id: str,
    action_ref: str,
    params: Mapping[str, Any],
    timeout: float,
    *,
    parent_id: str | None,
    action: ActionRecord | None,
    values: Mapping[str, Any] | None,
) -> None:
    """Passes when `stored`, the execution already created under `request_id`, is what this
    request asks for (a retry); else raises FailedPrecondition naming `request_id`.

    `action` and `values` (the validated parameters) are None when the request does not pass
    validation now (the action is disabled or gone, or its schema changed). Stored parameters the
    client left out must be the action's defaults, and a timeout it left out the action's timeout,
    but only while the action is
    unchanged since `stored` was created: once it has changed, its values then are unknown and only
    what the client gave is compared, so a retry of a request accepted before the change still
    gets the original."""
    differences = ["action_ref"] if stored["action_ref"] != action_ref else []
    if not differences:
        unchanged = action is not None and action.updated_at <= stored["created_at"]
        differences += _parameter_differences(
            json.loads(stored["parameters"] or "{}"), params, values, filled=values if unchanged else None
        )
        left_out = action.timeout if unchanged and action is not None else stored["timeout"]
        if stored["timeout"] != (timeout if timeout > 0 else left_out):
            differences.append("timeout_seconds")
        if stored["parent_id"] != parent_id:
            differences.append("parent_id")
    if differences:
        raise reused_request_id(request_id, fields=differences)


def _parameter_differences(
    stored: Mapping[str, Any],
    params: Mapping[str, Any],
    values: Mapping[str, Any] | None,
    *,
    filled: Mapping[str, Any] | None,
) -> list[str]:
    """The parameters a request gives (`params`, as `values` normalised them when validated) that
    `stored` does not hold, and those it left out that `stored` holds other than `filled` (the
    request's parameters with the action's defaults applied; None when those are not known)."""
    given = {name: value if values is None else values[name] for name, value in params.items() if value is not None}
    differences = []
    for name in sorted(set(stored) | set(given)):
        if name in given:
            same = name in stored and stored[name] == given[name]
        else:
            same = filled is None or (name in filled and filled[name] == stored[name])
        if not same:
            differences.append(f"parameters.{name}")
    return differences


_PUBLIC_SERVICE = "attune.execution.v1.ExecutionService"
_CHILD_SERVICE = "attune.internal.execution.v1.ChildExecutionService"


def _execution_traceparent(execution_id: str, link: ChildLink | None) -> str:
    """The traceparent stored with a new execution: its execution span's while spans are exported
    (`telemetry.execution_traceparent`), else a random one in its parent's trace."""
    parent = link.traceparent if link is not None else ""
    if not telemetry.exporting():
        return telemetry.child_traceparent(parent)
    return telemetry.execution_traceparent(parent, execution_id)


def _record_request_span(
    execution_id: str,
    action_ref: str,
    link: ChildLink | None,
    traceparent: str,
    *,
    start: float,
    rerun: RerunLink | None = None,
    method: str = "RequestExecution",
) -> None:
    """The span of the request that made an execution, under its execution span, from `start`
    to now: a client's RequestExecution, RunExecution(s) or RerunExecution call (SERVER) or a workflow child's
    request, a message from the coordinator (CONSUMER). Written once the execution is stored, so
    a retried request, which makes none, leaves no span whose parent never ends."""
    attributes: dict[str, str | int | float | bool] = {
        "attune.execution.id": execution_id,
        "attune.action.ref": action_ref,
    }
    if link is None:
        method = method if rerun is None else "RerunExecution"
        name, kind = f"{_PUBLIC_SERVICE}/{method}", SpanKind.SERVER
        attributes.update(telemetry.rpc_attributes(_PUBLIC_SERVICE, method))
        if rerun is not None:
            attributes["attune.execution.rerun_of"] = rerun.original_id
    else:
        name, kind = "execution.request", SpanKind.CONSUMER
        attributes.update(telemetry.messaging_attributes("process", _CHILD_SERVICE, message_id=execution_id))
        attributes.update({"attune.task.name": link.task_name, "attune.task.run": link.task_run})
    span = _tracer.start_span(
        name, context=telemetry.extract(traceparent), kind=kind, attributes=attributes, start_time=int(start * 1e9)
    )
    span.end()
