"""Attribution and tracing of the calls that act on an existing execution: CancelExecution,
PauseExecution, ResumeExecution and RespondToExecution (RerunExecution makes a new execution and
is traced like RequestExecution, `requests.py`).

Each call that was carried out (not a retry answered from the request log, not a refusal) logs one
line naming the operation, the execution and the caller (the token's name, or the service
identity; empty with security off) and, while spans are exported, writes a SERVER span of the call
under the execution's span (its stored traceparent), from the call's start to now. With tracing
off no span is made at all (docs/operations.md, Tracing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from attune import telemetry
from attune.security import caller

log = logging.getLogger(__name__)
_tracer = telemetry.tracer(__name__)

SERVICE = "attune.execution.v1.ExecutionService"


def caller_name() -> str:
    """Who makes the current call: the token's name or the service identity; empty when security
    is off (nobody is authenticated)."""
    who = caller.current()
    return who.name if who is not None else ""


def record(method: str, row: Mapping[str, Any], *, start: float, rerun_of: str = "") -> None:
    """Logs `method` (e.g. "PauseExecution") carried out on the execution `row` (as it is after
    the call) by the current caller, and writes its span while spans are exported. A re-run
    (`rerun_of`: the original's id; `row` the new execution) is only logged: its span is written
    with the new execution (`requests.py`)."""
    execution_id = str(row["id"])
    who = caller_name()
    extra = {"execution_id": execution_id, "operation": method, "caller": who}
    if rerun_of:
        extra["rerun_of"] = rerun_of
    log.info(
        "%s of execution %s by %s%s",
        method,
        rerun_of or execution_id,
        repr(who) if who else "an unauthenticated caller",
        f": execution {execution_id}" if rerun_of else "",
        extra=extra,
    )
    if rerun_of or not telemetry.exporting():
        return
    attributes: dict[str, str] = {
        **telemetry.rpc_attributes(SERVICE, method),
        "attune.execution.id": execution_id,
    }
    span = _tracer.start_span(
        f"{SERVICE}/{method}",
        context=telemetry.extract(row.get("traceparent") or ""),
        kind=SpanKind.SERVER,
        attributes=attributes,
        start_time=int(start * 1e9),
    )
    span.end(end_time=time.time_ns())
