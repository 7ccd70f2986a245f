"""``attune bench [workflows]``: start the services and measure them against docs/architecture.md, Performance goals."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from attune.durations import parse_duration
from attune_services.cli.arguments import positive_int
from attune_services.cli.client import CliError
from attune_services.cli.errors import UsageError
from attune_services.cli.launcher import LaunchError
from attune_services.cli.output import JSON, emit_json, progress


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``bench``."""
    bench = commands.add_parser("bench", parents=[parent], help="benchmark freshly started services")
    bench.add_argument(
        "suite",
        nargs="?",
        choices=("core", "workflows", "history", "faults", "cli", "logs"),
        default="core",
        help="core (default): no-op latency, throughput, shell overhead, idle memory; "
        "workflows: engine figures, an end-to-end fan-out and chain, "
        "the coordinator's memory holding running workflows; "
        "history: listing, getting, a no-op and purging with --executions of history stored; "
        "faults: lost, stuck, wrong and duplicated work and recovery time under injected faults; "
        "cli: how soon `attune` commands answer (first output, p50/p95 ms) against running services; "
        "logs: what live output costs (one printed line; a neighbour printing --noisy-bytes)",
    )
    bench.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="PostgreSQL URL to benchmark on (migrated first); default a temporary SQLite file",
    )
    bench.add_argument("--samples", type=positive_int, default=200, help="sequential no-op executions for latency")
    bench.add_argument("--burst", type=positive_int, default=2000, help="concurrent no-op executions for throughput")
    bench.add_argument(
        "--fanout-width", type=positive_int, default=1000, metavar="N", help="width of the workflows fan-out"
    )
    bench.add_argument(
        "--chain-length", type=positive_int, default=200, metavar="N", help="length of the workflows chain"
    )
    bench.add_argument(
        "--held-workflows",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="running workflows the coordinator holds while its memory is read",
    )
    bench.add_argument(
        "--executions",
        type=positive_int,
        default=1_000_000,
        metavar="N",
        help="history: executions of history to store",
    )
    bench.add_argument(
        "--purge-older-than",
        default="50d",
        metavar="DURATION",
        help="history: purge what is older than this (default 50d of the 60 days stored)",
    )
    bench.add_argument("--short", action="store_true", help="faults: a tenth of the load and shorter long actions")
    bench.add_argument("--scale", type=float, default=None, metavar="F", help="faults: the load times F (default 1)")
    bench.add_argument("--faults", default="", metavar="NAMES", help="faults: comma-separated faults (default all)")
    bench.add_argument(
        "--runs", type=positive_int, default=20, metavar="N", help="cli: runs of each command (default 20)"
    )
    bench.add_argument(
        "--noisy-bytes",
        type=positive_int,
        default=50_000_000,
        metavar="N",
        help="logs: what each noisy action prints (default 50 MB)",
    )
    bench.add_argument("--ready-timeout", type=float, default=120.0, metavar="S")
    bench.add_argument(
        "--insecure",
        action="store_true",
        help="run the services without TLS and tokens (to measure what security costs; the default has it on)",
    )
    bench.set_defaults(handler=bench_command, sync=True)


def bench_command(args: argparse.Namespace) -> int:
    """Runs the chosen suite, prints a table (or one JSON object)."""
    from attune_services.bench.calibration import calibrated
    from attune_services.bench.report import figures_table
    from attune_services.bench.suite import core_suite, workflow_suite

    if args.suite == "faults":
        return _faults(args)
    if args.suite == "cli":
        return _cli(args)
    with _bench_errors():
        if args.suite == "history":
            figures = calibrated(lambda: _history(args), progress)
        elif args.suite == "logs":
            figures = calibrated(lambda: _logs(args), progress)
        elif args.suite == "workflows":
            figures = calibrated(
                lambda: workflow_suite(
                    args.database_url,
                    width=args.fanout_width,
                    length=args.chain_length,
                    held=args.held_workflows,
                    ready_timeout=args.ready_timeout,
                    progress=progress,
                    secure=not args.insecure,
                ),
                progress,
            )
        else:
            figures = calibrated(
                lambda: core_suite(
                    args.database_url,
                    samples=args.samples,
                    burst=args.burst,
                    ready_timeout=args.ready_timeout,
                    progress=progress,
                    secure=not args.insecure,
                ),
                progress,
            )
    if args.output == JSON:
        emit_json(figures)
    else:
        print(figures_table(figures))
    return 0


@contextmanager
def _bench_errors() -> Iterator[None]:
    """A suite's start-up failure (its first line, then the service's output) or failed run as a
    CliError."""
    try:
        yield
    except LaunchError as err:
        lines = str(err).splitlines()
        raise CliError(lines[0], lines[1:]) from err
    except RuntimeError as err:
        raise CliError(f"benchmark failed: {err}") from err


def _logs(args: argparse.Namespace) -> dict[str, Any]:
    from attune_services.bench.logs import logs_suite

    return logs_suite(
        args.database_url,
        samples=args.samples,
        burst=args.burst,
        noisy_bytes=args.noisy_bytes,
        ready_timeout=args.ready_timeout,
        progress=progress,
        secure=not args.insecure,
    )


def _history(args: argparse.Namespace) -> dict[str, Any]:
    """`attune bench history` (services/bench/history.py)."""
    from attune_services.bench.history import history_suite

    try:
        purge_older_than = parse_duration(args.purge_older_than, name="--purge-older-than")
    except ValueError as err:
        raise UsageError(str(err)) from err
    if purge_older_than <= 0:
        raise UsageError("--purge-older-than must be more than 0")
    return history_suite(
        args.database_url,
        count=args.executions,
        samples=args.samples,
        purge_older_than=purge_older_than,
        ready_timeout=args.ready_timeout,
        progress=progress,
        secure=not args.insecure,
    )


def _cli(args: argparse.Namespace) -> int:
    """`attune bench cli` (services/bench/cli_startup.py)."""
    from attune_services.bench.calibration import calibrated
    from attune_services.bench.cli_startup import cli_suite
    from attune_services.bench.report import figures_table

    with _bench_errors():
        figures = calibrated(
            lambda: cli_suite(
                args.database_url,
                runs=args.runs,
                ready_timeout=args.ready_timeout,
                progress=progress,
                secure=not args.insecure,
            ),
            progress,
        )
    if args.output == JSON:
        emit_json(figures)
    else:
        print(figures_table(figures))
    return 0


def _faults(args: argparse.Namespace) -> int:
    """`attune bench faults` (services/bench/faults/): a table per fault, or one JSON object."""
    from attune_services.bench.faults import FAULT_NAMES, fault_options, fault_suite, faults_table

    names = [name.strip() for name in args.faults.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FAULT_NAMES))
    if unknown:
        raise UsageError(f"--faults: unknown {', '.join(unknown)}; choose from {', '.join(FAULT_NAMES)}")
    try:
        options = fault_options(
            short=args.short, scale=args.scale, secure=not args.insecure, ready_timeout=args.ready_timeout
        )
    except ValueError as err:  # --scale out of range
        raise UsageError(str(err)) from err
    with _bench_errors():
        try:
            figures = fault_suite(args.database_url, names, options, progress)
        except ValueError as err:
            raise CliError(str(err)) from err
    if args.output == JSON:
        emit_json(figures)
    else:
        print(faults_table(figures))
    return 1 if figures.get("failed") else 0
