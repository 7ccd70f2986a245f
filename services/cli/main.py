"""The ``attune`` command: argument parsing, dispatch, and the one way errors are reported.

Every command group lives in its own module (``cmd_*.py``) and adds its parser here. Errors are
one line on stderr (``attune: error: …``) and exit status 1; usage errors exit 2; never a
traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

import grpc

from attune import eventloop
from attune.config import ConfigError, Settings, default_home
from attune.grpcutil.gil import shorten_gil_switch_interval
from attune.security.tls import tls_configured
from attune.security.tokens import client_token
from attune_services.cli import (
    cmd_action,
    cmd_bench,
    cmd_execution,
    cmd_health,
    cmd_pack,
    cmd_run,
    cmd_secrets,
    cmd_tls,
    cmd_token,
    cmd_up,
)
from attune_services.cli.client import Client, CliError, error_from_rpc
from attune_services.cli.launcher import local_tls_dir
from attune_services.cli.output import OUTPUT_FORMATS, TEXT

PROG = "attune"


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Subcommands repeat the global options with SUPPRESS defaults, so `attune run X --output json`
    # and `attune --output json run X` both work and neither overwrites the other with a default.
    default = argparse.SUPPRESS
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        default=default if suppress else None,
        help=(
            "the scheduler's address, or a comma-separated list of its replicas' to fail over "
            "between (default $ATTUNE_ADDRESS, else the local scheduler)"
        ),
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=default if suppress else None,
        help="the bearer token to send (default $ATTUNE_TOKEN, else $ATTUNE_HOME/admin.token when it exists)",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=OUTPUT_FORMATS,
        default=default if suppress else TEXT,
        help="text (default) or json: exactly one JSON object on stdout",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(prog=PROG, description="Attune: packs, actions, executions and workflows.")
    _add_global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd_up.add_parser(commands, common)
    cmd_pack.add_parser(commands, common)
    cmd_action.add_parser(commands, common)
    cmd_run.add_parser(commands, common)
    cmd_execution.add_parser(commands, common)
    cmd_bench.add_parser(commands, common)
    cmd_health.add_parser(commands, common)
    cmd_secrets.add_parser(commands, common)
    cmd_token.add_parser(commands, common)
    cmd_tls.add_parser(commands, common)
    return parser


def resolve_address(args: argparse.Namespace, settings: Settings) -> str:
    """--address, else ATTUNE_ADDRESS, else the local scheduler's address."""
    return args.address or os.environ.get("ATTUNE_ADDRESS") or settings.scheduler_address


def resolve_token(args: argparse.Namespace) -> str | None:
    """--token, else ATTUNE_TOKEN, else the admin token `attune up` wrote, else none."""
    try:
        return client_token(getattr(args, "token", None))
    except ValueError as err:
        raise CliError(str(err)) from err


def client_settings(settings: Settings) -> Settings:
    """The CLI's settings: with no TLS setting given, the TLS material `attune up` made in
    ATTUNE_HOME (unless it runs there with --insecure), so the local CLI needs no flags."""
    if tls_configured(settings):
        return settings
    local = local_tls_dir(default_home())
    return settings if local is None else settings.replace(tls_dir=str(local))


async def _run_with_client(args: argparse.Namespace, settings: Settings) -> int:
    settings = client_settings(settings)
    async with Client(resolve_address(args, settings), settings, token=resolve_token(args)) as client:
        try:
            code: int = await args.handler(args, client)
            return code
        except grpc.RpcError as err:  # a call a command did not wrap: still one readable line
            raise error_from_rpc(err, client.address) from err


def report(err: CliError) -> None:
    """``attune: error: <message>`` and any detail lines, on stderr."""
    print(f"{PROG}: error: {err.message}", file=sys.stderr)
    for line in err.details:
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()


def check_durations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (usage error, exit 2) a number of seconds that is not finite, or is negative:
    ``--timeout nan`` parsed, and a NaN timeout compares false with everything, so it meant no
    timeout at all. Every float option of the CLI is a number of seconds."""
    for name, value in vars(args).items():
        if isinstance(value, float) and (not math.isfinite(value) or value < 0):
            option = "--" + name.replace("_", "-")
            parser.error(f"argument {option}: must be a finite number of seconds, not negative (got {value:g})")


def run(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_durations(parser, args)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    shorten_gil_switch_interval()
    try:
        if getattr(args, "sync", False):
            code: int = args.handler(args)
            return code
        return eventloop.run(_run_with_client(args, settings))
    except CliError as err:
        report(err)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except grpc.RpcError as err:  # from a command that runs its own clients (bench)
        report(error_from_rpc(err, resolve_address(args, settings)))
        return 1
    except Exception as err:
        report(CliError(" ".join(f"unexpected {type(err).__name__}: {err}".split())))
        return 1


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
