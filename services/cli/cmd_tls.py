"""``attune tls init DIR``: a certificate authority and a certificate per service and for the CLI
(docs/operations.md, TLS)."""

from __future__ import annotations

import argparse
from pathlib import Path

from attune.security.certificates import init_material
from attune.security.tls import IDENTITIES, TlsError
from attune_services.cli.client import CliError
from attune_services.cli.output import JSON, emit_json, progress


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``tls init``."""
    tls = commands.add_parser("tls", help="TLS material for the services and the CLI")
    actions = tls.add_subparsers(dest="tls_command", metavar="COMMAND", required=True)
    init = actions.add_parser(
        "init",
        parents=[parent],
        help="create a CA and a certificate per service and for the CLI",
        description=(
            f"Writes ca.pem, ca.key and <identity>.pem / <identity>.key for {', '.join(IDENTITIES)} into DIR; "
            "point ATTUNE_TLS_DIR at it. Each certificate is valid for localhost, its identity's name, "
            "attune-<identity>, 127.0.0.1, ::1 and every --host."
        ),
    )
    init.add_argument("dir", type=Path, metavar="DIR", help="the folder to write (created if missing)")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP address the services are reached at (repeatable)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing CA and every certificate")
    init.set_defaults(handler=init_command, sync=True)


def init_command(args: argparse.Namespace) -> int:
    """Writes the material and lists the files."""
    try:
        written = init_material(args.dir, hosts=args.host, force=args.force)
    except TlsError as err:
        raise CliError(str(err)) from err
    except OSError as err:
        raise CliError(f"cannot write TLS material to {args.dir}: {err.strerror}") from err
    if getattr(args, "output", None) == JSON:
        emit_json({"dir": str(args.dir), "files": [str(path) for path in written]})
    else:
        for path in written:
            print(path)
    progress(f"set ATTUNE_TLS_DIR={args.dir} for every service and the CLI; keep ca.key out of what services mount")
    return 0
