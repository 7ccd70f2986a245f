"""``attune pack register DIR``: upload every file of a pack folder to the registry.

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
from attune_services.cli.output import JSON, emit_json, table


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``pack register``."""
    pack = commands.add_parser("pack", help="manage packs")
    sub = pack.add_subparsers(dest="pack_command", metavar="COMMAND", required=True)
    register = sub.add_parser("register", parents=[parent], help="register (or re-register) a pack folder")
    register.add_argument("directory", metavar="DIR", type=Path, help="the pack folder (holding pack.yaml)")
    register.set_defaults(handler=register_pack)


def pack_files(directory: Path, limits: PackLimits) -> list[registry_pb2.PackFile]:
    """Every file of the folder (dotfiles and __pycache__ skipped) as PackFile messages."""
    if not (directory / "pack.yaml").is_file():
        raise CliError(f"{str(directory)!r} is not a pack folder: it has no pack.yaml")
    try:
        files = read_pack_files(directory, limits)
    except PackError as err:
        problems = [str(problem) for problem in err.problems]
        raise CliError(f"cannot read pack {str(directory)!r} ({len(problems)} problems)", problems) from err
    except OSError as err:
        raise CliError(f"cannot read pack {str(directory)!r}: {err}") from err
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
