"""/api/executions: list, run, look at one, and act on it (cancel, pause, resume, re-run, respond).

The live views (`/events`, `/logs`) are in events.py. Mutating calls carry a fresh request_id,
so a call the channel retries after UNAVAILABLE is not carried out twice.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from aiohttp import web
from google.protobuf import timestamp_pb2

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_to_proto, struct_from_dict
from attune.states import ExecutionState
from attune.workflow.v1 import workflow_pb2
from attune_services.console.appkeys import GRAPHS, SCHEDULER
from attune_services.console.auth import caller_metadata
from attune_services.console.bodies import MAX_NAME_CHARS, json_body, object_field, path_part, string_field
from attune_services.console.errors import ApiError, invalid
from attune_services.console.scheduler import Metadata, Scheduler, call, new_request_id
from attune_services.console.tasks import summarize
from attune_services.console.views import (
    JSON,
    execution_summary,
    execution_view,
    task_run_view,
    workflow_state_name,
)

routes = web.RouteTableDef()

#: The most tasks a re-run may name.
MAX_RERUN_TASKS = 1000
_MAX_PAGE_SIZE = 1000


@routes.get("/api/executions")
async def list_executions(request: web.Request) -> web.Response:
    """Executions newest first, filtered by the query (state, action, top_level, created_after,
    created_before) and paged (page_size, page_token)."""
    query = request.query
    listing = execution_pb2.ListExecutionsRequest(
        action_ref=_query_text(query.get("action", ""), "action"),
        page_token=_query_text(query.get("page_token", ""), "page_token", limit=4096),
        page_size=_page_size(query.get("page_size")),
        include_children=not _flag(query.get("top_level", "true"), "top_level"),
    )
    listing.states.extend(_states(query.get("state", "")))
    for name in ("created_after", "created_before"):
        if query.get(name):
            getattr(listing, name).CopyFrom(_timestamp(query[name], name))
    scheduler = request.app[SCHEDULER]
    reply = await call(scheduler.executions.ListExecutions(listing, metadata=caller_metadata(request), timeout=30))
    return web.json_response(
        {
            "executions": [execution_summary(e) for e in reply.executions],
            "next_page_token": reply.next_page_token or None,
        }
    )


@routes.post("/api/executions")
async def run_action(request: web.Request) -> web.Response:
    """Runs {action_ref, parameters}; 201 {id}. Bad parameters are 400 with violations naming
    `parameters.<name>`."""
    body = await json_body(request)
    run = execution_pb2.RequestExecutionRequest(
        action_ref=string_field(body, "action_ref"),
        parameters=struct_from_dict(object_field(body, "parameters")),
        request_id=new_request_id(),
    )
    scheduler = request.app[SCHEDULER]
    reply = await call(scheduler.executions.RequestExecution(run, metadata=caller_metadata(request), timeout=30))
    return web.json_response({"id": reply.execution.id}, status=201)


@routes.get("/api/executions/{id}")
async def get_execution(request: web.Request) -> web.Response:
    """One execution with, for a workflow, its graph, task runs and each task's summary."""
    execution_id = path_part(request, "id")
    scheduler, metadata = request.app[SCHEDULER], caller_metadata(request)
    reply = await call(
        scheduler.executions.GetExecution(
            execution_pb2.GetExecutionRequest(id=execution_id, page_size=1), metadata=metadata, timeout=30
        )
    )
    execution = reply.execution
    if not _is_workflow(execution):
        return web.json_response(execution_view(execution, None))
    graph, workflow = await asyncio.gather(
        request.app[GRAPHS].of_action(scheduler, metadata, execution.action_ref),
        workflow_of(scheduler, metadata, execution.id, None),
    )
    if workflow is not None:
        workflow["graph"] = graph
    return web.json_response(execution_view(execution, workflow))


async def snapshot(
    scheduler: Scheduler, metadata: Metadata, execution: execution_pb2.Execution, graph: JSON | None
) -> JSON:
    """The execution's view as GET answers it (`views.execution_view`), its workflow run read now."""
    if not _is_workflow(execution):
        return execution_view(execution, None)
    return execution_view(execution, await workflow_of(scheduler, metadata, execution.id, graph))


async def workflow_of(scheduler: Scheduler, metadata: Metadata, execution_id: str, graph: JSON | None) -> JSON | None:
    """{state, graph, task_runs, tasks} of a workflow execution; None before its run exists."""
    try:
        reply = await call(
            scheduler.workflows.GetWorkflowRun(
                workflow_pb2.GetWorkflowRunRequest(execution_id=execution_id), metadata=metadata, timeout=30
            )
        )
    except ApiError as err:
        if err.code == "NOT_FOUND":  # requested, not yet started by the coordinator
            return {"state": ExecutionState.REQUESTED.value, "graph": graph, "task_runs": [], "tasks": {}}
        raise
    runs = [task_run_view(r) for r in reply.run.task_runs]
    counts = {(items.task_name, items.run): items.count for items in reply.run.items}
    return {
        "state": workflow_state_name(reply.run.state),
        "graph": graph,
        "task_runs": runs,
        "tasks": summarize(runs, counts),
    }


def _is_workflow(execution: execution_pb2.Execution) -> bool:
    return execution.runner_type == "workflow"


#: The interventions that take only the execution's id: path verb → (ExecutionService RPC, its
#: request message). Each answers the execution's summary as the RPC leaves it.
_INTERVENTIONS: dict[str, tuple[str, type[Any]]] = {
    "cancel": ("CancelExecution", execution_pb2.CancelExecutionRequest),
    "pause": ("PauseExecution", execution_pb2.PauseExecutionRequest),
    "resume": ("ResumeExecution", execution_pb2.ResumeExecutionRequest),
}


@routes.post("/api/executions/{id}/{verb:cancel|pause|resume}")
async def intervene(request: web.Request) -> web.Response:
    """Cancels, pauses or resumes the execution; EXECUTION_SUMMARY as it is after."""
    execution_id = path_part(request, "id")
    rpc, message = _INTERVENTIONS[request.match_info["verb"]]
    method = getattr(request.app[SCHEDULER].executions, rpc)
    reply = await call(
        method(message(id=execution_id, request_id=new_request_id()), metadata=caller_metadata(request), timeout=30)
    )
    return web.json_response(execution_summary(reply.execution))


@routes.post("/api/executions/{id}/rerun")
async def rerun(request: web.Request) -> web.Response:
    """Re-runs an ended execution, a workflow from {"tasks": [...]} when given; 201 {id}."""
    execution_id = path_part(request, "id")
    body = await json_body(request)
    tasks = body.get("tasks") or []
    if not isinstance(tasks, list) or not all(isinstance(t, str) and 0 < len(t) <= MAX_NAME_CHARS for t in tasks):
        raise invalid("tasks", "must be a list of task names")
    if len(tasks) > MAX_RERUN_TASKS:
        raise invalid("tasks", f"must name at most {MAX_RERUN_TASKS} tasks")
    reply = await call(
        request.app[SCHEDULER].executions.RerunExecution(
            execution_pb2.RerunExecutionRequest(id=execution_id, from_tasks=tasks, request_id=new_request_id()),
            metadata=caller_metadata(request),
            timeout=30,
        )
    )
    return web.json_response({"id": reply.execution.id}, status=201)


@routes.post("/api/executions/{id}/respond")
async def respond(request: web.Request) -> web.Response:
    """Answers a pending execution with {"response": {...}}; EXECUTION_SUMMARY as it is after."""
    execution_id = path_part(request, "id")
    answer = object_field(await json_body(request), "response")
    reply = await call(
        request.app[SCHEDULER].executions.RespondToExecution(
            execution_pb2.RespondToExecutionRequest(
                id=execution_id, answer=struct_from_dict(answer), request_id=new_request_id()
            ),
            metadata=caller_metadata(request),
            timeout=30,
        )
    )
    return web.json_response(execution_summary(reply.execution))


# --- query parameters ---------------------------------------------------------------------------


def _states(text: str) -> list[common_pb2.ExecutionState]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    known = {state.value for state in ExecutionState}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise invalid("state", f"unknown state {unknown[0][:40]!r} (one of {', '.join(sorted(known))})")
    return [execution_state_to_proto(name) for name in dict.fromkeys(names)]


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", ""):
        raise invalid(name, "must be true or false")
    return value in ("true", "1", "")


def _page_size(text: str | None) -> int:
    if not text:
        return 0
    if not text.isdigit() or not 0 < int(text) <= _MAX_PAGE_SIZE:
        raise invalid("page_size", f"must be a number from 1 to {_MAX_PAGE_SIZE}")
    return int(text)


def _query_text(text: str, name: str, *, limit: int = MAX_NAME_CHARS) -> str:
    if len(text) > limit:
        raise invalid(name, f"must be at most {limit} characters")
    return text


def _timestamp(text: str, name: str) -> timestamp_pb2.Timestamp:
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise invalid(name, "must be an ISO 8601 time, e.g. 2026-12-05T19:42:00Z") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(datetime.UTC).replace(tzinfo=None))
    return stamp
