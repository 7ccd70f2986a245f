"""``attune token create|list|revoke``: client bearer tokens (needs an admin token)."""

from __future__ import annotations

import argparse

import grpc
from google.protobuf import json_format

from attune.auth.v1 import auth_pb2
from attune.security.policy import Role
from attune_services.cli.client import Client
from attune_services.cli.output import JSON, emit_json, iso_of, table

_ROLES = {Role.VIEWER: auth_pb2.ROLE_VIEWER, Role.OPERATOR: auth_pb2.ROLE_OPERATOR, Role.ADMIN: auth_pb2.ROLE_ADMIN}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``token create``, ``token list`` and ``token revoke``."""
    token = commands.add_parser("token", help="manage client tokens")
    sub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = sub.add_parser("create", parents=[parent], help="create a token and print it (shown only once)")
    create.add_argument("name", metavar="NAME", help="the token's unique name, e.g. ci-deploy")
    create.add_argument("--role", required=True, choices=[str(r) for r in Role], help="what the token may do")
    create.set_defaults(handler=create_token)
    listing = sub.add_parser("list", parents=[parent], help="list tokens (never their values)")
    listing.set_defaults(handler=list_tokens)
    revoke = sub.add_parser("revoke", parents=[parent], help="revoke a token (refused everywhere within a second)")
    revoke.add_argument("name", metavar="NAME", help="the token's name")
    revoke.set_defaults(handler=revoke_token)


def role_name(role: int) -> str:
    """viewer, operator or admin."""
    return auth_pb2.Role.Name(role).removeprefix("ROLE_").lower()


def token_dict(token: auth_pb2.Token) -> dict[str, object]:
    """A token as a JSON object (proto field names, the role in lower case)."""
    value = json_format.MessageToDict(token, preserving_proto_field_name=True)
    value["role"] = role_name(token.role)
    return value


async def create_token(args: argparse.Namespace, client: Client) -> int:
    """Prints the new token: exactly {"name", "role", "token"} with --output json."""
    request = auth_pb2.CreateTokenRequest(name=args.name, role=_ROLES[Role(args.role)])
    try:
        response = await client.tokens.CreateToken(request)
    except grpc.RpcError as err:
        raise client.error(err, f"token {args.name!r}", subject=args.name) from err
    if args.output == JSON:
        emit_json({"name": response.token.name, "role": role_name(response.token.role), "token": response.secret})
        return 0
    print(f"created token {response.token.name} with role {role_name(response.token.role)}; it is shown only once:")
    print(response.secret)
    return 0


async def list_tokens(args: argparse.Namespace, client: Client) -> int:
    """One line per token: name, role, created, by whom, revoked."""
    try:
        response = await client.tokens.ListTokens(auth_pb2.ListTokensRequest())
    except grpc.RpcError as err:
        raise client.error(err, "list tokens") from err
    if args.output == JSON:
        emit_json({"tokens": [token_dict(t) for t in response.tokens]})
        return 0
    rows = [
        (
            t.name,
            role_name(t.role),
            iso_of(t.created_at) or "",
            t.created_by or "-",
            iso_of(t.revoked_at) or "",
        )
        for t in response.tokens
    ]
    print(table(("NAME", "ROLE", "CREATED", "CREATED BY", "REVOKED"), rows))
    return 0


async def revoke_token(args: argparse.Namespace, client: Client) -> int:
    """Revokes the token and says so."""
    try:
        response = await client.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name=args.name))
    except grpc.RpcError as err:
        raise client.error(err, f"token {args.name!r}", subject=args.name) from err
    if args.output == JSON:
        emit_json(token_dict(response.token))
        return 0
    print(f"revoked token {response.token.name}")
    return 0
