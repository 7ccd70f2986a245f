"""/api/packs, /api/actions, /api/workflows/validate: the registry as the pages need it.

Creating and updating a workflow action go through CreateAction and UpdateAction with its
definition; the scheduler validates it exactly as a pack's workflow file and keeps pack and name
immutable (a changed one is refused FAILED_PRECONDITION, answered 412).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf import field_mask_pb2

from attune.grpcutil.convert import dict_from_struct, struct_from_dict
from attune.registry.v1 import registry_pb2
from attune_services.console.appkeys import SCHEDULER
from attune_services.console.auth import caller_metadata
from attune_services.console.bodies import json_body, object_field, path_part, string_field
from attune_services.console.scheduler import call, new_request_id
from attune_services.console.views import action_view, graph_view, pack_view, problem_view

routes = web.RouteTableDef()

#: The longest definition the console forwards; the scheduler holds it to ATTUNE_MAX_YAML_BYTES.
MAX_DEFINITION_CHARS = 1024 * 1024
MAX_DESCRIPTION_CHARS = 4096
_PAGE = 1000


@routes.get("/api/packs")
async def list_packs(request: web.Request) -> web.Response:
    """Every pack with its actions' summaries, by ref."""
    scheduler, metadata = request.app[SCHEDULER], caller_metadata(request)
    packs: list[registry_pb2.Pack] = []
    token = ""
    while True:
        page = await call(
            scheduler.registry.ListPacks(
                registry_pb2.ListPacksRequest(page_size=_PAGE, page_token=token), metadata=metadata, timeout=30
            )
        )
        packs += page.packs
        token = page.next_page_token
        if not token:
            break
    actions: dict[str, list[registry_pb2.Action]] = {}
    token = ""
    while True:
        listed = await call(
            scheduler.registry.ListActions(
                registry_pb2.ListActionsRequest(page_size=_PAGE, page_token=token), metadata=metadata, timeout=30
            )
        )
        for action in listed.actions:
            actions.setdefault(action.pack, []).append(action)
        token = listed.next_page_token
        if not token:
            break
    return web.json_response({"packs": [pack_view(p, actions.get(p.ref, [])) for p in packs]})


@routes.get("/api/actions/{ref}")
async def get_action(request: web.Request) -> web.Response:
    """One action, with a workflow action's definition."""
    ref = path_part(request, "ref")
    reply = await call(
        request.app[SCHEDULER].registry.GetAction(
            registry_pb2.GetActionRequest(ref=ref), metadata=caller_metadata(request), timeout=30
        )
    )
    return web.json_response(action_view(reply.action))


@routes.post("/api/actions")
async def create_action(request: web.Request) -> web.Response:
    """Creates a workflow action from {pack, name, description, parameters, definition}; 201."""
    action = _workflow_action(await json_body(request))
    action.ref = f"{action.pack}.{action.name}"
    reply = await call(
        request.app[SCHEDULER].registry.CreateAction(
            registry_pb2.CreateActionRequest(action=action, request_id=new_request_id()),
            metadata=caller_metadata(request),
            timeout=30,
        )
    )
    return web.json_response(action_view(reply.action), status=201)


@routes.put("/api/actions/{ref}")
async def update_action(request: web.Request) -> web.Response:
    """Updates the workflow action `ref` from the same body. Pack and name are sent as given:
    the scheduler refuses a change of either (412) and nothing changes."""
    ref = path_part(request, "ref")
    action = _workflow_action(await json_body(request))
    action.ref = ref
    mask = field_mask_pb2.FieldMask(paths=["description", "parameters", "definition"])
    reply = await call(
        request.app[SCHEDULER].registry.UpdateAction(
            registry_pb2.UpdateActionRequest(action=action, update_mask=mask, request_id=new_request_id()),
            metadata=caller_metadata(request),
            timeout=30,
        )
    )
    return web.json_response(action_view(reply.action))


@routes.post("/api/workflows/validate")
async def validate_workflow(request: web.Request) -> web.Response:
    """{problems, workflow, graph} of a definition, as registering it in `pack` would find."""
    body = await json_body(request)
    check = registry_pb2.ValidateWorkflowRequest(
        definition=string_field(body, "definition", required=False, limit=MAX_DEFINITION_CHARS),
        pack=string_field(body, "pack", required=False),
    )
    scheduler = request.app[SCHEDULER]
    reply = await call(scheduler.registry.ValidateWorkflow(check, metadata=caller_metadata(request), timeout=30))
    return web.json_response(
        {
            "problems": [problem_view(p) for p in reply.problems],
            "workflow": dict_from_struct(reply.workflow) if reply.HasField("workflow") else None,
            "graph": graph_view(reply.graph) if reply.HasField("graph") else None,
        }
    )


def _workflow_action(body: dict[str, Any]) -> registry_pb2.Action:
    """The Action of a create or update body."""
    return registry_pb2.Action(
        pack=string_field(body, "pack"),
        name=string_field(body, "name"),
        description=string_field(body, "description", required=False, limit=MAX_DESCRIPTION_CHARS),
        parameters=struct_from_dict(object_field(body, "parameters")),
        definition=string_field(body, "definition", limit=MAX_DEFINITION_CHARS),
        runner_type="workflow",
        enabled=True,
    )
