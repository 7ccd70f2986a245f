"""The ``attune`` command: argument parsing, dispatch, and the one way errors are reported.

Every command group lives in its own module (``cmd_*.py``), named in :data:`COMMANDS`. Only the
module of the command given is imported, and each imports only what its commands need, so
``attune --help`` or ``attune execution get`` never pays for SQLAlchemy or the launcher
(tests/cli/test_cli_contract.py holds this; ``attune bench cli`` measures it).

Errors are one line on stderr (``attune: error: …``); with ``--output json`` stdout carries exactly
one JSON object whatever the outcome: the command's own, or ``{"error": {"code", "message",
"details"}}`` (errors.py). While a command runs in JSON mode ``sys.stdout`` points at stderr, so
nothing else can reach stdout. Exit statuses: 0 success, 1 failure, 2 a bad command line or
setting, 130 interrupted. Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, NoReturn

from attune_services.cli import errors
from attune_services.cli.errors import CONFIG, INTERNAL, INTERRUPTED, CliError, UsageError
from attune_services.cli.output import (
    JSON,
    OUTPUT_FORMATS,
    TEXT,
    bind_json_stdout,
    emit_json,
    json_emitted,
    json_stdout,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from attune.config import Settings
    from attune_services.cli.client import Client

PROG = "attune"

#: Every command: its name, the module (in attune_services.cli) that adds its parser, and the
#: line `attune --help` shows for it. A new command group adds one row.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("up", "cmd_up", "run every service locally in the foreground"),
    ("pack", "cmd_pack", "manage packs"),
    ("action", "cmd_action", "inspect actions"),
    ("run", "cmd_run", "run an action"),
    ("execution", "cmd_execution", "inspect and control executions"),
    ("bench", "cmd_bench", "benchmark freshly started services"),
    ("health", "cmd_health", "check that a service at ADDRESS is SERVING (for probes)"),
    ("secrets", "cmd_secrets", "the keys sealing secret parameters at rest"),
    ("token", "cmd_token", "manage client tokens"),
    ("tls", "cmd_tls", "TLS material for the services and the CLI"),
)
# Global options that take a value (what `command_of` skips to find the command).
_VALUE_OPTIONS = ("--address", "--token", "--output")


class Parser(argparse.ArgumentParser):
    """argparse, with its refusals raised as :class:`UsageError` (exit 2, and one JSON object in
    JSON mode) rather than printed and exited on."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, usage=self.format_usage(), prog=self.prog)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        super().print_help(file or json_stdout())  # asked for: on stdout, even in JSON mode


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


def build_parser(full: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The command line. Commands named in ``full`` (all when None) get their whole parser, which
    imports their module; the others are a name and a help line, so ``attune --help`` lists them
    all without importing any."""
    parser = Parser(prog=PROG, description="Attune: packs, actions, executions and workflows.")
    _add_global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_line in COMMANDS:
        if full is None or name in full:
            importlib.import_module(f"attune_services.cli.{module}").add_parser(commands, common)
        else:
            stub = commands.add_parser(name, help=help_line, add_help=False)
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(stub=True)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not a global option or its value),
    None when there is none or it is unknown."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif _takes_value(token):
            skip = True
        elif not token.startswith("-"):
            return token if token in {name for name, _, _ in COMMANDS} else None
    return None


def _takes_value(token: str) -> bool:
    """Whether ``token`` is a global option whose value is the next word (``--addr`` abbreviates)."""
    if token == "-o":
        return True
    long_option = token.startswith("--") and "=" not in token and len(token) > 2
    return long_option and any(option.startswith(token) for option in _VALUE_OPTIONS)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for ``--output json`` (the last such option wins), read before
    parsing so that a refused command line is reported as JSON too."""
    wanted = False
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token in ("-o", "--output") or (token.startswith("--ou") and "--output".startswith(token)):
            wanted = i + 1 < len(argv) and argv[i + 1] == JSON
        elif token.startswith(("--output=", "-o")) and len(token) > 2:
            wanted = token.removeprefix("--output=").removeprefix("-o").lstrip("=") == JSON
    return wanted


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parses ``argv`` (raising UsageError), building only the parser of the command it names."""
    command = command_of(argv)
    parser = build_parser(() if command is None else (command,))
    args = parser.parse_args(argv)
    if getattr(args, "stub", False):  # the command was not where command_of looked: parse it in full
        parser = build_parser((args.command,))
        args = parser.parse_args(argv)
    check_durations(parser, args)
    return args


def resolve_address(args: argparse.Namespace, settings: Settings) -> str:
    """--address, else ATTUNE_ADDRESS, else the local scheduler's address."""
    return getattr(args, "address", None) or os.environ.get("ATTUNE_ADDRESS") or settings.scheduler_address


def resolve_token(args: argparse.Namespace) -> str | None:
    """--token, else ATTUNE_TOKEN, else the admin token `attune up` wrote, else none."""
    from attune.security.tokens import client_token

    try:
        return client_token(getattr(args, "token", None))
    except ValueError as err:
        raise CliError(str(err)) from err


def client_settings(settings: Settings) -> Settings:
    """The CLI's settings: with no TLS setting given, the TLS material `attune up` made in
    ATTUNE_HOME (unless it runs there with --insecure), so the local CLI needs no flags."""
    from attune.config import default_home
    from attune.security.tls import tls_configured
    from attune_services.cli.local_home import local_tls_dir

    if tls_configured(settings):
        return settings
    local = local_tls_dir(default_home())
    return settings if local is None else settings.replace(tls_dir=str(local))


async def _run_with_client(args: argparse.Namespace, settings: Settings) -> int:
    import grpc

    from attune_services.cli.client import Client, error_from_rpc

    settings = client_settings(settings)
    client: Client
    async with Client(resolve_address(args, settings), settings, token=resolve_token(args)) as client:
        try:
            code: int = await args.handler(args, client)
            return code
        except grpc.RpcError as err:  # a call a command did not wrap: still one readable line
            raise error_from_rpc(err, client.address) from err


def report(err: CliError) -> None:
    """``attune: error: <message>`` and any detail lines, on stderr (a usage error's usage above)."""
    prog = PROG
    if isinstance(err, UsageError):
        sys.stderr.write(err.usage)
        prog = err.prog
    print(f"{prog}: error: {err.message}", file=sys.stderr)
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


def _execute(args: argparse.Namespace) -> int:
    """Runs the parsed command: a sync one directly, the others with a client of the scheduler."""
    from attune import eventloop
    from attune.config import ConfigError, Settings
    from attune.grpcutil.gil import shorten_gil_switch_interval

    try:
        settings = Settings.from_env()
    except ConfigError as err:
        raise UsageError(str(err), code=CONFIG) from err
    shorten_gil_switch_interval()
    try:
        if getattr(args, "sync", False):
            code: int = args.handler(args)
            return code
        return eventloop.run(_run_with_client(args, settings))
    except CliError:
        raise
    except Exception as err:
        grpc = sys.modules.get("grpc")
        if grpc is not None and isinstance(err, grpc.RpcError):  # a command that runs its own clients (bench)
            from attune_services.cli.client import error_from_rpc

            raise error_from_rpc(err, resolve_address(args, settings)) from err
        raise


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """In JSON mode, whatever a command prints goes to stderr: stdout holds only its JSON object."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def run(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = wants_json(argv)
    bind_json_stdout(sys.stdout)
    failure: CliError | None = None
    code = 0
    try:
        with _stdout_to_stderr(json_mode):
            try:
                args = parse(argv)
            except SystemExit as done:  # --help: printed, nothing to run
                return done.code if isinstance(done.code, int) else 0
            json_mode = args.output == JSON
            code = _execute(args)
    except CliError as err:
        failure = err
    except KeyboardInterrupt:
        failure = CliError("interrupted", code=INTERRUPTED)
        failure.exit_status = 130
    except BrokenPipeError:
        return 1
    except OSError as err:  # a file a command reads or writes (--file, a pack folder)
        where = f"{err.filename}: " if err.filename else ""
        failure = CliError(f"{where}{err.strerror or err}", code=errors.IO)
    except Exception as err:
        failure = CliError(" ".join(f"unexpected {type(err).__name__}: {err}".split()), code=INTERNAL)
    if failure is not None:
        if failure.code == INTERRUPTED:
            print(f"{PROG}: interrupted", file=sys.stderr)
        else:
            report(failure)
        code = failure.exit_status
    if json_mode and not json_emitted():
        emit_json(failure.json() if failure is not None else {"exit_status": code})
    return code


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
