"""``attune action list|get``: what the registry holds."""

from __future__ import annotations

import argparse
import json

import grpc
from google.protobuf import json_format

from attune.grpcutil.convert import dict_from_struct
from attune.registry.v1 import registry_pb2
from attune_services.cli.client import Client
from attune_services.cli.output import JSON, emit_json, table

#: Actions per ListActions call: the server's default page, well within ATTUNE_MAX_PAGE_SIZE (default 1000).
LIST_PAGE = 100


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``action list`` and ``action get``."""
    action = commands.add_parser("action", help="inspect actions")
    sub = action.add_subparsers(dest="action_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", parents=[parent], help="list actions")
    listing.add_argument("--pack", default="", help="only the actions of this pack")
    listing.set_defaults(handler=list_actions)
    get = sub.add_parser("get", parents=[parent], help="show one action")
    get.add_argument("ref", metavar="REF", help="the action's ref, e.g. core.echo")
    get.set_defaults(handler=get_action)


def action_dict(action: registry_pb2.Action) -> dict[str, object]:
    """An action as a JSON object (proto field names)."""
    return json_format.MessageToDict(action, preserving_proto_field_name=True)


async def fetch_action(client: Client, ref: str) -> registry_pb2.Action:
    """GetAction, with the error naming the ref."""
    try:
        response = await client.registry.GetAction(registry_pb2.GetActionRequest(ref=ref))
    except grpc.RpcError as err:
        raise client.error(err, f"action {ref!r}", subject=ref) from err
    return response.action


async def list_actions(args: argparse.Namespace, client: Client) -> int:
    """Prints every action (of one pack with --pack), fetched a page at a time."""
    found: list[registry_pb2.Action] = []
    token = ""
    while True:
        request = registry_pb2.ListActionsRequest(pack=args.pack, page_size=LIST_PAGE, page_token=token)
        try:
            response = await client.registry.ListActions(request)
        except grpc.RpcError as err:
            raise client.error(err, "list actions") from err
        found += response.actions
        token = response.next_page_token
        if not token:
            break
    if args.output == JSON:
        emit_json({"actions": [action_dict(a) for a in found]})
        return 0
    rows = [(a.ref, a.runner_type, "" if a.enabled else "disabled", _first_line(a.description)) for a in found]
    print(table(("REF", "RUNNER", "", "DESCRIPTION"), rows))
    return 0


async def get_action(args: argparse.Namespace, client: Client) -> int:
    """Prints one action with its parameter schema."""
    action = await fetch_action(client, args.ref)
    if args.output == JSON:
        emit_json(action_dict(action))
        return 0
    print(f"ref:         {action.ref}")
    print(f"label:       {action.label}")
    print(f"runner:      {action.runner_type}")
    print(f"enabled:     {'yes' if action.enabled else 'no'}")
    if action.entry_point:
        print(f"entry point: {action.entry_point}")
    if action.workflow_file:
        print(f"workflow:    {action.workflow_file}")
    if action.timeout_seconds:
        print(f"timeout:     {action.timeout_seconds:g} s")
    if action.HasField("concurrency"):
        policy = action.concurrency
        key = f" per key {policy.key!r}" if policy.key else ""
        print(f"concurrency: at most {policy.limit} at once{key}, then {policy.on_limit}")
    if action.description:
        print(f"description: {action.description.strip()}")
    schema = dict_from_struct(action.parameters)
    if schema:
        print("parameters:")
        for name, spec in schema.items():
            flags = [spec.get("type", "string")]
            if spec.get("required"):
                flags.append("required")
            if "default" in spec:
                flags.append(f"default {json.dumps(spec['default'])}")
            if spec.get("secret"):
                flags.append("secret")
            print(f"  {name} ({', '.join(flags)}){': ' + spec['description'] if spec.get('description') else ''}")
    return 0


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
