"""``attune health ADDRESS``: one grpc.health.v1 check of any Attune service, for probes.

Kubernetes' native gRPC probe and a plain ``grpc_health_probe`` cannot present a client
certificate, and the coordinator and completion services demand one under TLS. This check opens
the one channel the services use (`attune.grpcutil.channel.open_channel`), so it speaks TLS and
presents the certificate of ``ATTUNE_IDENTITY`` from ``ATTUNE_TLS_DIR`` exactly as the service in
the same container does. Health needs no token. Exit status 0 when the service answers SERVING,
1 otherwise (with one line on stderr saying what it answered).

A service with a database answers NOT_SERVING while that database is unreachable or not migrated
to the service's revision, and SERVING again by itself once it is (`attune.grpcutil.server`);
the reason is in the service's log, which the health protocol has no field for. That is what a
readiness probe wants; a liveness probe wants `--live`, which passes whenever the service answers.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune import eventloop
from attune.config import ConfigError, Settings
from attune.grpcutil.channel import open_channel
from attune_services.cli.client import CliError
from attune_services.cli.output import JSON, emit_json

# What a status may mean, said after it: the health protocol carries no reason.
_WHY: dict[int, str] = {
    health_pb2.HealthCheckResponse.NOT_SERVING: (
        " (starting, stopping, or its database is unreachable or not migrated: its log says which)"
    ),
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``health``."""
    health = commands.add_parser("health", help="check that a service at ADDRESS is SERVING (for probes)")
    health.add_argument("target", metavar="ADDRESS", help="HOST:PORT of any Attune service")
    health.add_argument("--service", default="", help="a gRPC service name to check (default: the server as a whole)")
    health.add_argument(
        "--live",
        action="store_true",
        help="pass when the service answers at all, SERVING or not (a liveness probe: a service whose "
        "database is away is alive, and restarting it would not bring the database back)",
    )
    health.add_argument("--timeout", type=float, default=2.0, metavar="S", help="seconds to wait (default 2)")
    health.set_defaults(handler=health_command, sync=True)


def health_command(args: argparse.Namespace) -> int:
    """Prints SERVING and returns 0, or raises CliError naming what the service answered; with
    --live, prints whatever it answered and returns 0."""
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        raise CliError(str(err)) from err
    status = eventloop.run(check(args.target, settings, service=args.service, timeout=args.timeout))
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status != health_pb2.HealthCheckResponse.SERVING and not args.live:
        raise CliError(f"{args.target} is {name}{_WHY.get(status, '')}", code=name)
    if getattr(args, "output", None) == JSON:
        emit_json({"address": args.target, "status": name})
        return 0
    print(name)
    sys.stdout.flush()
    return 0


async def check(address: str, settings: Settings, *, service: str = "", timeout: float = 2.0) -> int:
    """The serving status `address` reports (a HealthCheckResponse.ServingStatus value)."""
    try:
        channel = open_channel(address, settings)
    except ConfigError as err:  # TLS configured but a file is missing: the message names it
        raise CliError(str(err)) from err
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)  # type: ignore[attr-defined]
        except grpc.aio.AioRpcError as err:
            raise CliError(
                f"health check of {address} failed: {err.code().name}: {err.details()}", code=err.code().name
            ) from err
    status: int = response.status
    return status
