"""``attune pack register DIR|list|get REF|delete REF [--force]``: packs in the registry.

``register`` uploads every file of a pack folder; ``list`` and ``get`` show what is registered
(``get``: version, digest, when and by whom, and the pack's actions); ``delete`` removes a pack
with its actions and files, refused while executions of its actions have not ended unless
``--force``.

The folder is read as the registry will check it (`attune.packs.read_pack_files`): regular files
only, within the pack limits of this CLI's settings, so a wrong folder is refused here, naming the
file, before it is read whole or sent. The scheduler checks again against its own settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from google.protobuf import json_format

from attune.ids import new_id
from attune.packs import PackError, PackLimits, read_pack_files
from attune.registry.v1 import registry_pb2
from attune_services.cli.client import Client, CliError
from attune_services.cli.errors import IO
from attune_services.cli.output import JSON, emit_json, table


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``pack register|list|get|delete``."""
    pack = commands.add_parser("pack", help="manage packs")
    sub = pack.add_subparsers(dest="pack_command", metavar="COMMAND", required=True)
    register = sub.add_parser("register", parents=[parent], help="register (or re-register) a pack folder")
    register.add_argument("directory", metavar="DIR", type=Path, help="the pack folder (holding pack.yaml)")
    register.set_defaults(handler=register_pack)
    listing = sub.add_parser("list", parents=[parent], help="list registered packs")
    listing.set_defaults(handler=list_packs)
    get = sub.add_parser("get", parents=[parent], help="show one pack with its actions")
    get.add_argument("ref", metavar="REF", help="the pack's ref, e.g. core")
    get.set_defaults(handler=get_pack)
    delete = sub.add_parser("delete", parents=[parent], help="delete a pack with its actions (needs the admin role)")
    delete.add_argument("ref", metavar="REF", help="the pack's ref")
    delete.add_argument(
        "--force", action="store_true", help="delete even while executions of its actions have not ended"
    )
    delete.set_defaults(handler=delete_pack)


def pack_files(directory: Path, limits: PackLimits) -> list[registry_pb2.PackFile]:
    """Every file of the folder (dotfiles and __pycache__ skipped) as PackFile messages."""
    if not (directory / "pack.yaml").is_file():
        raise CliError(f"{str(directory)!r} is not a pack folder: it has no pack.yaml", code=IO)
    try:
        files = read_pack_files(directory, limits)
    except PackError as err:
        problems = [str(problem) for problem in err.problems]
        raise CliError(f"cannot read pack {str(directory)!r} ({len(problems)} problems)", problems) from err
    except OSError as err:
        raise CliError(f"cannot read pack {str(directory)!r}: {err}", code=IO) from err
    if not files:
        raise CliError(f"pack folder {str(directory)!r} holds no files")
    return [registry_pb2.PackFile(path=path, content=content) for path, content in files.items()]


async def upload_pack(client: Client, directory: Path) -> registry_pb2.RegisterPackResponse:
    """Registers the pack in ``directory``; INVALID_ARGUMENT becomes a CliError listing each problem."""
    files = pack_files(directory, PackLimits.from_settings(client.settings))
    request = registry_pb2.RegisterPackRequest(files=files, request_id=new_id())
    size, limit = request.ByteSize(), client.settings.max_message_bytes
    if size > limit:  # gRPC would refuse to send it, with a less helpful RESOURCE_EXHAUSTED
        raise CliError(f"pack {str(directory)!r} is {size:,} bytes to send, {_over_message_limit(limit)}")
    try:
        response: registry_pb2.RegisterPackResponse = await client.registry.RegisterPack(request)
        return response
    except grpc.RpcError as err:
        failure = client.error(err)
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT and failure.violations:
            raise CliError(
                f"pack {str(directory)!r} refused ({len(failure.violations)} problems)", failure.violations
            ) from err
        if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise CliError(
                f"pack {str(directory)!r} refused: {size:,} bytes to send, over the scheduler's gRPC message "
                "limit (its ATTUNE_MAX_MESSAGE_BYTES)"
            ) from err
        raise CliError(f"pack {str(directory)!r} refused: {failure.message}") from err


def _over_message_limit(limit: int) -> str:
    return (
        f"over the gRPC message limit of {limit:,} bytes (ATTUNE_MAX_MESSAGE_BYTES); a pack is sent in one "
        "message, so keep it below the limit (ATTUNE_MAX_PACK_BYTES, see docs/operations.md, Limits)"
    )


async def register_pack(args: argparse.Namespace, client: Client) -> int:
    """Uploads the folder and prints the pack with its actions, and those the registration removed."""
    response = await upload_pack(client, args.directory)
    if args.output == JSON:
        emit_json(json_format.MessageToDict(response, preserving_proto_field_name=True))
        return 0
    pack = response.pack
    print(f"registered pack {pack.ref} {pack.version} (digest {pack.digest[:12]}) with {len(response.actions)} actions")
    rows = [
        (a.ref, a.runner_type, a.description.strip().splitlines()[0] if a.description else "") for a in response.actions
    ]
    print(table(("ACTION", "RUNNER", "DESCRIPTION"), rows))
    if response.removed_action_refs:
        print(f"removed actions no longer in the pack folder: {', '.join(response.removed_action_refs)}")
    return 0


#: Packs per ListPacks call: the server's default page, well within ATTUNE_MAX_PAGE_SIZE.
LIST_PAGE = 100


def pack_dict(pack: registry_pb2.Pack) -> dict[str, object]:
    """A pack as a JSON object (proto field names)."""
    return json_format.MessageToDict(pack, preserving_proto_field_name=True)


async def list_packs(args: argparse.Namespace, client: Client) -> int:
    """Prints every registered pack, fetched a page at a time."""
    found: list[registry_pb2.Pack] = []
    token = ""
    while True:
        request = registry_pb2.ListPacksRequest(page_size=LIST_PAGE, page_token=token)
        try:
            response = await client.registry.ListPacks(request)
        except grpc.RpcError as err:
            raise client.error(err, "list packs") from err
        found += response.packs
        token = response.next_page_token
        if not token:
            break
    if args.output == JSON:
        emit_json({"packs": [pack_dict(p) for p in found]})
        return 0
    rows = [(p.ref, p.version, p.digest[:12], _when(p), p.registered_by) for p in found]
    print(table(("PACK", "VERSION", "DIGEST", "REGISTERED", "BY"), rows))
    return 0


async def get_pack(args: argparse.Namespace, client: Client) -> int:
    """Prints one pack and its actions."""
    try:
        response = await client.registry.GetPack(registry_pb2.GetPackRequest(ref=args.ref))
    except grpc.RpcError as err:
        raise client.error(err, f"pack {args.ref!r}", subject=args.ref) from err
    if args.output == JSON:
        emit_json(json_format.MessageToDict(response, preserving_proto_field_name=True))
        return 0
    pack = response.pack
    print(f"ref:         {pack.ref}")
    print(f"label:       {pack.label}")
    print(f"version:     {pack.version}")
    print(f"digest:      {pack.digest}")
    print(f"registered:  {_when(pack)}" + (f" by {pack.registered_by}" if pack.registered_by else ""))
    if pack.description:
        print(f"description: {pack.description.strip()}")
    rows = [(a.ref, a.runner_type, "" if a.enabled else "disabled") for a in response.actions]
    print(table(("ACTION", "RUNNER", ""), rows))
    return 0


async def delete_pack(args: argparse.Namespace, client: Client) -> int:
    """Deletes the pack; prints what went with it."""
    request = registry_pb2.DeletePackRequest(ref=args.ref, force=args.force, request_id=new_id())
    try:
        response = await client.registry.DeletePack(request)
    except grpc.RpcError as err:
        raise client.error(err, f"delete pack {args.ref!r}", subject=args.ref) from err
    if args.output == JSON:
        emit_json(json_format.MessageToDict(response, preserving_proto_field_name=True))
        return 0
    actions = ", ".join(response.deleted_action_refs) or "none"
    print(f"deleted pack {response.ref} with its actions: {actions}")
    if response.active_executions:
        print(f"{response.active_executions} execution(s) of its actions had not ended (they were not cancelled)")
    return 0


def _when(pack: registry_pb2.Pack) -> str:
    from attune_services.cli.output import iso_of

    return iso_of(pack.registered_at) or ""
