"""``attune bench [workflows]``: start the services and measure them against docs/architecture.md, Performance goals."""

from __future__ import annotations

import argparse

from attune_services.cli.client import CliError
from attune_services.cli.launcher import LaunchError
from attune_services.cli.output import JSON, emit_json, progress


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``bench``."""
    bench = commands.add_parser("bench", parents=[parent], help="benchmark freshly started services")
    bench.add_argument(
        "suite",
        nargs="?",
        choices=("core", "workflows"),
        default="core",
        help="core (default): no-op latency, throughput, shell overhead, idle memory; "
        "workflows: engine figures, an end-to-end fan-out and chain, "
        "the coordinator's memory holding running workflows",
    )
    bench.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="PostgreSQL URL to benchmark on (migrated first); default a temporary SQLite file",
    )
    bench.add_argument("--samples", type=int, default=200, help="sequential no-op executions for latency")
    bench.add_argument("--burst", type=int, default=2000, help="concurrent no-op executions for throughput")
    bench.add_argument("--fanout-width", type=int, default=1000, metavar="N", help="width of the workflows fan-out")
    bench.add_argument("--chain-length", type=int, default=200, metavar="N", help="length of the workflows chain")
    bench.add_argument(
        "--held-workflows",
        type=int,
        default=10_000,
        metavar="N",
        help="running workflows the coordinator holds while its memory is read",
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

    if min(args.samples, args.burst, args.fanout_width, args.chain_length, args.held_workflows) < 1:
        raise CliError("--samples, --burst, --fanout-width, --chain-length and --held-workflows must be at least 1")
    try:
        if args.suite == "workflows":
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
    except LaunchError as err:
        lines = str(err).splitlines()
        raise CliError(lines[0], lines[1:]) from err
    except RuntimeError as err:
        raise CliError(f"benchmark failed: {err}") from err
    if args.output == JSON:
        emit_json(figures)
    else:
        print(figures_table(figures))
    return 0
