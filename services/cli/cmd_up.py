"""``attune up``: the whole platform in the foreground on one machine (docs/operations.md)."""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from attune import eventloop
from attune.config import Settings, default_home
from attune.security.tokens import ADMIN_TOKEN_FILE
from attune_services.cli.client import CliError
from attune_services.cli.launcher import CONSOLE, SERVICES, Launcher, LaunchError, LaunchPlan
from attune_services.cli.local_home import TLS_FOLDER
from attune_services.cli.output import JSON, emit_json, progress
from attune_services.cli.stop_signals import Stop, StopSignals
from attune_services.cli.supervisor import CrashLoop, RestartPolicy, Supervisor

#: How often `attune up` looks at its services: a crash is noticed within it.
_SUPERVISE_INTERVAL = 0.2


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
        "--console-port",
        type=int,
        default=None,
        metavar="PORT",
        help="port of the web console (default from ATTUNE_CONSOLE_ADDRESS: 8080); 0 picks a free one",
    )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="how long the services may take to become ready (default 120)",
    )
    defaults = RestartPolicy()
    up.add_argument(
        "--restart-limit",
        type=int,
        default=defaults.limit,
        metavar="N",
        help="a service that exits is started again with backoff; one that exits N times within "
        f"--restart-window stops attune up (default {defaults.limit})",
    )
    up.add_argument(
        "--restart-window",
        type=float,
        default=defaults.window,
        metavar="S",
        help=f"the window of --restart-limit, in seconds (default {defaults.window:g})",
    )
    up.set_defaults(handler=up_command, sync=True)


def plan_from_args(args: argparse.Namespace, settings: Settings) -> LaunchPlan:
    """The launch plan of ``attune up``: flags over environment over defaults."""
    home = args.home or default_home()
    database_url = args.database_url or (settings.database_url if _env_has_database() else "")
    ports: dict[str, int] = {}
    for name, _, _ in SERVICES:
        port = getattr(args, f"{name}_port")
        if port is not None:
            ports[name] = port
    if args.console_port is not None:
        ports["console"] = args.console_port
    if "worker" not in ports and settings.worker_address.endswith(":0"):
        ports["worker"] = 0  # a free port, so the worker's health can be checked
    # One replica of each service, restarted in place after a crash: a stable replica id lets the
    # coordinator and completion service resume their own pending work at once (docs/operations.md,
    # ATTUNE_REPLICA_ID) instead of after the lease time.
    env = {} if settings.replica_id else {"ATTUNE_REPLICA_ID": replica_id_of(Path(home))}
    return LaunchPlan.local(
        home,
        database_url,
        ports=ports,
        env=env,
        settings=settings,
        secure=not args.insecure,
        metrics=True,
        console=True,
    )


def replica_id_of(home: Path) -> str:
    """The replica id of `attune up`'s services in `home`: the same at every start, different for
    two homes sharing a database."""
    return "up-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]


def _env_has_database() -> bool:
    import os

    return bool(os.environ.get("ATTUNE_DATABASE_URL"))


def up_command(args: argparse.Namespace) -> int:
    """Migrate, start, wait until ready, print the endpoints, supervise until SIGTERM or Ctrl-C."""
    settings = Settings.from_env()
    plan = plan_from_args(args, settings)
    policy = RestartPolicy(limit=max(args.restart_limit, 1), window=args.restart_window)
    launcher = Launcher(plan)
    signals = StopSignals()
    signals.install()
    try:
        progress(f"migrating {plan.database_url.split('@')[-1]}")
        launcher.migrate()
        signals.check()  # a signal during a migration that ran its own event loop
        launcher.start()
        progress("starting " + ", ".join(f"{c.name} (pid {c.process.pid})" for c in launcher.children))
        eventloop.run(signals.until_stopped(launcher.wait_ready(args.ready_timeout)))
        for child in launcher.children:
            if child.name == CONSOLE[0]:
                continue
            metrics = f"metrics http://{plan.metrics[child.name]}/metrics   " if child.name in plan.metrics else ""
            print(f"  {child.name:<12} {child.address:<22} {metrics}log {child.log_path}")
        for child in launcher.children:
            if child.name == CONSOLE[0]:
                print(f"console: {plan.console_url}   log {child.log_path}")
        print(f"attune is ready — scheduler at {launcher.scheduler_address}", flush=True)
        if getattr(args, "output", None) == JSON:  # the one object, at ready: up runs until stopped
            emit_json(_ready_json(launcher, plan))
        _print_credentials(plan)
        progress(
            f"try: attune --address {launcher.scheduler_address} run examples.single_echo --wait"
            "   (Ctrl-C stops attune)"
        )
        log_format = launcher.client_settings().log_format
        _supervise(Supervisor(launcher, policy, report=progress, log_format=log_format), signals)
        return 0  # not reached: only a signal or a crash loop ends supervision
    except Stop as stop:
        progress(f"stopping attune ({stop})")
        return 0
    except CrashLoop as err:
        raise CliError(str(err), err.tail) from err
    except LaunchError as err:
        raise CliError(str(err).splitlines()[0], str(err).splitlines()[1:]) from err
    finally:
        signals.ignore()
        try:
            began = time.monotonic()
            took = launcher.stop(report=progress)
            if took:
                each = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in took.items())
                progress(f"stopped in {time.monotonic() - began:.1f}s ({each})")
        finally:
            signals.restore()


def _ready_json(launcher: Launcher, plan: LaunchPlan) -> dict[str, object]:
    """`attune -o json up`'s object: {ready, scheduler, console (its URL), services: {name: {address,
    log, metrics}}}."""
    services = {
        child.name: {"address": child.address, "log": str(child.log_path), "metrics": plan.metrics.get(child.name)}
        for child in launcher.children
    }
    return {"ready": True, "scheduler": launcher.scheduler_address, "console": plan.console_url, "services": services}


def _print_credentials(plan: LaunchPlan) -> None:
    """Where a secure plan keeps what clients need, and how the CLI and grpcurl find it."""
    if not plan.secure:
        progress("security is off (--insecure): plaintext, no tokens, loopback only")
        return
    tls, token = plan.home / TLS_FOLDER, plan.home / ADMIN_TOKEN_FILE
    print(f"  TLS material {tls}   admin token {token} (mode 0600)", flush=True)
    if plan.home.resolve() != default_home().resolve():
        progress(f"the attune CLI finds them with ATTUNE_HOME={plan.home}")
    if plan.console_url:
        progress(f"console: sign in at {plan.console_url} with the admin token in {token}")
    progress(
        f"grpcurl: grpcurl -cacert {tls}/ca.pem -cert {tls}/cli.pem -key {tls}/cli.key "
        f'-H "authorization: Bearer $(cat {token})" {plan.addresses["scheduler"]} list'
    )


def _supervise(supervisor: Supervisor, signals: StopSignals) -> None:
    """Watches the services in the foreground until a signal (Stop) or a crash loop (CrashLoop)."""
    while True:
        signals.check()  # one that arrived as the event loop of the start was closing
        supervisor.check()
        time.sleep(_SUPERVISE_INTERVAL)
