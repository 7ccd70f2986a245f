"""Approvals: executions of an "ask" action (`core.ask`) that wait for a person's answer.

An ask runs no process and holds no worker slot. It is inserted `pending` (requests.py) and stays
so until one of:
- RespondToExecution gives an answer that validates against the ask's `schema`, from a caller its
  `roles`/`users` allow: the answer goes to the completion service as a SUCCEEDED result (the
  scheduler never writes a terminal state itself, as with give-ups), so a workflow waiting on it
  advances like after any other task;
- its `timeout` passes: the sweep hands a TIMEOUT result to the completion service (`expire`);
- a cancel: pending is cancelable like scheduling (cancel.py).
The completion service's compare-and-set keeps the first of these; the others change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from attune.grpcutil.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    Violation,
)
from attune.packs import ParameterError, check_parameter_schema, validate_parameters
from attune.packs.asks import inline_answer_schema
from attune.security.caller import Caller
from attune.security.policy import Role
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.execution_rows import execution_row
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter

log = logging.getLogger(__name__)

#: The runner type of an ask action.
ASK = "ask"
#: The most pending asks one sweep reads for their deadline (oldest first).
EXPIRE_SCAN = 5000
#: The longest prompt, and the most roles/users an ask may name.
MAX_PROMPT_CHARS = 10_000
MAX_NAMES = 100

Row = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Ask:
    """An ask's parameters, checked: what to show, what answer fits, who may give it."""

    prompt: str
    schema: dict[str, dict[str, Any]]
    roles: frozenset[str]
    users: frozenset[str]
    timeout: float


def parse_ask(params: Mapping[str, Any]) -> Ask:
    """The ask of validated `core.ask`-style parameters; InvalidArgument naming `parameters.<field>`."""
    violations: list[Violation] = []
    prompt = params.get("prompt") or ""
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        violations.append(Violation("parameters.prompt", f"must be text of at most {MAX_PROMPT_CHARS} characters"))
    schema, problems = check_parameter_schema(inline_answer_schema(params.get("schema")), field="parameters.schema")
    violations += [Violation(field, message) for field, message in problems]
    names: dict[str, frozenset[str]] = {}
    for field in ("roles", "users"):
        value = params.get(field) or []
        if not isinstance(value, list) or len(value) > MAX_NAMES or not all(isinstance(v, str) for v in value):
            violations.append(Violation(f"parameters.{field}", f"must be a list of at most {MAX_NAMES} names"))
            value = []
        names[field] = frozenset(value)
    unknown = sorted(names["roles"] - {role.value for role in Role})
    if unknown:
        violations.append(
            Violation("parameters.roles", f"unknown roles {', '.join(unknown)} (one of {', '.join(Role)})")
        )
    timeout = params.get("timeout") or 0
    if violations:
        raise InvalidArgument(
            "invalid ask: " + "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )
    return Ask(prompt=prompt, schema=schema, roles=names["roles"], users=names["users"], timeout=float(timeout))


def deadline(execution_timeout: float | None, params: Mapping[str, Any]) -> float | None:
    """Seconds an ask waits: the shorter of its `timeout` parameter and the execution's timeout (a
    workflow task's `timeout`), each when positive; None: until answered or cancelled."""
    raw = params.get("timeout")
    ask_timeout = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else 0.0
    limits = [t for t in (ask_timeout, execution_timeout or 0.0) if t > 0]
    return min(limits) if limits else None


def refusal(ask: Ask, who: Caller | None) -> str | None:
    """Why `who` may not answer `ask` (None: it may). Without roles and users anyone who may call
    RespondToExecution (an operator) may answer. With security off nobody is identified, so an
    ask restricted to roles or users cannot be answered."""
    if not ask.roles and not ask.users:
        return None
    allowed = ", ".join([*(f"role {r}" for r in sorted(ask.roles)), *(f"user {u}" for u in sorted(ask.users))])
    if who is None or who.is_service:
        return f"this ask may be answered only by {allowed}, and the caller is not identified by a token"
    if who.name in ask.users or (who.role is not None and any(who.role.allows(Role(r)) for r in ask.roles)):
        return None
    return f"this ask may be answered only by {allowed}; token {who.name!r} (role {who.role}) is neither"


def validated_answer(ask: Ask, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer with the schema's defaults applied; InvalidArgument naming `answer.<field>`."""
    try:
        return validate_parameters(ask.schema, answer)
    except ParameterError as err:
        violations = [Violation(f"answer.{v.field}", v.description) for v in err.violations]
        described = "; ".join(f"{v.field}: {v.description}" for v in violations)
        raise InvalidArgument(f"the answer does not fit the ask's schema: {described}", violations) from err


class Answers:
    """Answers pending asks (RespondToExecution) and ends those past their timeout (the sweep)."""

    def __init__(self, *, db: Database, submitter: ResultSubmitter) -> None:
        self._db = db
        self._submitter = submitter

    async def respond(self, execution_id: str, answer: Mapping[str, Any], who: Caller | None) -> Row:
        """Checks the answer and its author, then has the completion service store it as the
        execution's result; returns the row after. Refusals: NotFound, FailedPrecondition (not
        pending, or answered otherwise meanwhile), PermissionDenied, InvalidArgument."""
        row = await self._row(execution_id)
        if row["runner_type"] != ASK:
            raise FailedPrecondition(
                f"execution {execution_id} ({row['action_ref']}) is not an ask; it takes no answer"
            )
        if row["state"] != ExecutionState.PENDING:
            raise FailedPrecondition(f"execution {execution_id} is {row['state']}, not pending; it takes no answer")
        ask = parse_ask(json.loads(row["parameters"] or "{}"))
        reason = refusal(ask, who)
        if reason is not None:
            raise PermissionDenied(f"execution {execution_id}: {reason}")
        values = validated_answer(ask, answer)
        result = json.dumps(values, separators=(",", ":")).encode()
        give_up = GiveUp(
            execution_id, ExecutionState.SUCCEEDED, "", row["traceparent"] or "", row["created_at"], result_json=result
        )
        if execution_id not in await self._submitter.submit([give_up]):
            raise Unavailable(f"the completion service did not store the answer to {execution_id}; retry")
        after = await self._row(execution_id)
        if after["state"] != ExecutionState.SUCCEEDED or json.loads(after["result"] or "null") != values:
            raise FailedPrecondition(f"execution {execution_id} ended {after['state']} before this answer arrived")
        log.info(
            "ask answered", extra={"execution_id": execution_id, "answered_by": who.name if who is not None else ""}
        )
        return after

    async def expire(self, *, now: float | None = None) -> int:
        """Ends pending asks past their deadline (`deadline`) with `timeout`, through the
        completion service; returns how many it acknowledged. An unacknowledged one stays
        pending: the next sweep tries again. Asks wait for people, so few are pending at once:
        the oldest EXPIRE_SCAN are read each sweep."""
        now = time.time() if now is None else now
        e = executions.c
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(e.id, e.timeout, e.parameters, e.traceparent, e.created_at)
                    .where(e.state == ExecutionState.PENDING)
                    .order_by(e.created_at)
                    .limit(EXPIRE_SCAN)
                )
            ).all()
        give_ups: list[GiveUp] = []
        for r in rows:
            limit = deadline(r.timeout, json.loads(r.parameters or "{}"))
            if limit is not None and r.created_at + limit <= now:
                give_ups.append(
                    GiveUp(
                        r.id, ExecutionState.TIMEOUT, f"no answer within {limit:g} s", r.traceparent or "", r.created_at
                    )
                )
        acked = await self._submitter.submit(give_ups) if give_ups else set()
        if acked:
            log.info("asks timed out", extra={"count": len(acked)})
        return len(acked)

    async def _row(self, execution_id: str) -> Row:
        return await execution_row(self._db, execution_id)
