"""``attune up``: the whole platform in the foreground on one machine (docs/operations.md)."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from types import FrameType

from attune import eventloop
from attune.config import Settings, default_home
from attune.security.tokens import ADMIN_TOKEN_FILE
from attune_services.cli.client import CliError
from attune_services.cli.launcher import SERVICES, TLS_FOLDER, Launcher, LaunchError, LaunchPlan
from attune_services.cli.output import progress


class Stop(Exception):
    """SIGTERM or Ctrl-C: shut everything down."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``up``."""
    up = commands.add_parser("up", help="run every service locally in the foreground")
    up.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="database to use (default ATTUNE_DATABASE_URL, else SQLite in ATTUNE_HOME)",
    )
    up.add_argument("--home", type=Path, default=None, help="ATTUNE_HOME (default ~/.attune)")
    up.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext and no authorization, on loopback only (default: TLS, mutual TLS between the "
        "services and bearer tokens, with the credentials made on first start in ATTUNE_HOME)",
    )
    for name, _, _ in SERVICES:
        up.add_argument(
            f"--{name}-port",
            type=int,
            default=None,
            metavar="PORT",
            help=f"port of the {name} (default from ATTUNE_{name.upper()}_ADDRESS)",
        )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="how long the services may take to become ready (default 120)",
    )
    up.set_defaults(handler=up_command, sync=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def plan_from_args(args: argparse.Namespace, settings: Settings) -> LaunchPlan:
    """The launch plan of ``attune up``: flags over environment over defaults."""
    home = args.home or default_home()
    database_url = args.database_url or (settings.database_url if _env_has_database() else "")
    ports: dict[str, int] = {}
    for name, _, _ in SERVICES:
        port = getattr(args, f"{name}_port")
        if port is not None:
            ports[name] = port
    if "worker" not in ports and settings.worker_address.endswith(":0"):
        ports["worker"] = 0  # a free port, so the worker's health can be checked
    return LaunchPlan.local(home, database_url, ports=ports, settings=settings, secure=not args.insecure)


def _env_has_database() -> bool:
    import os

    return bool(os.environ.get("ATTUNE_DATABASE_URL"))


def up_command(args: argparse.Namespace) -> int:
    """Migrate, start, wait until ready, print the endpoints, run until SIGTERM or Ctrl-C."""
    settings = Settings.from_env()
    plan = plan_from_args(args, settings)
    launcher = Launcher(plan)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        progress(f"migrating {plan.database_url.split('@')[-1]}")
        launcher.migrate()
        launcher.start()
        progress("starting " + ", ".join(f"{c.name} (pid {c.process.pid})" for c in launcher.children))
        eventloop.run(launcher.wait_ready(args.ready_timeout))
        for child in launcher.children:
            print(f"  {child.name:<12} {child.address:<22} log {child.log_path}")
        print(f"attune is ready — scheduler at {launcher.scheduler_address}", flush=True)
        _print_credentials(plan)
        progress(
            f"try: attune --address {launcher.scheduler_address} run examples.single_echo --wait"
            "   (Ctrl-C stops attune)"
        )
        _run_until_stopped(launcher)
        return 0
    except (KeyboardInterrupt, Stop):
        progress("stopping attune")
        return 0
    except LaunchError as err:
        raise CliError(str(err).splitlines()[0], str(err).splitlines()[1:]) from err
    finally:
        # A second Ctrl-C must not leave children behind: stop() ends with SIGKILL anyway.
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            launcher.stop(grace=settings.shutdown_grace + 2.0)
        finally:
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)


def _print_credentials(plan: LaunchPlan) -> None:
    """Where a secure plan keeps what clients need, and how the CLI and grpcurl find it."""
    if not plan.secure:
        progress("security is off (--insecure): plaintext, no tokens, loopback only")
        return
    tls, token = plan.home / TLS_FOLDER, plan.home / ADMIN_TOKEN_FILE
    print(f"  TLS material {tls}   admin token {token} (mode 0600)", flush=True)
    if plan.home.resolve() != default_home().resolve():
        progress(f"the attune CLI finds them with ATTUNE_HOME={plan.home}")
    progress(
        f"grpcurl: grpcurl -cacert {tls}/ca.pem -cert {tls}/cli.pem -key {tls}/cli.key "
        f'-H "authorization: Bearer $(cat {token})" {plan.addresses["scheduler"]} list'
    )


def _run_until_stopped(launcher: Launcher) -> None:
    """Sleeps in the foreground; a child that dies takes the whole platform down (exit 1)."""
    while True:
        time.sleep(0.5)
        for child in launcher.children:
            code = child.process.poll()
            if code is not None:
                tail = child.tail()
                raise CliError(f"{child.name} exited with status {code}; its last output ({child.log_path}):", tail)
