"""``attune secrets rotate|new-key``: the keys that seal secret parameters at rest.

Both work on the configured key ring and the database directly (like the migration command), not
through the scheduler: rotation rewrites stored rows, and a key never travels over the API.
"""

from __future__ import annotations

import argparse

from attune import eventloop
from attune.config import Settings, normalize_database_url
from attune.security.rotation import RotationReport, rotate
from attune.security.sealing import Sealer, SecretKeyError, new_key_text, require, sealer_from_settings
from attune.storage import Database
from attune_services.cli.client import CliError
from attune_services.cli.output import JSON, emit_json


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``secrets rotate`` and ``secrets new-key``."""
    secrets = commands.add_parser("secrets", parents=[parent], help="the keys sealing secret parameters at rest")
    verbs = secrets.add_subparsers(dest="verb", metavar="VERB", required=True)
    rotate_cmd = verbs.add_parser(
        "rotate",
        parents=[parent],
        help="re-seal every stored secret under the newest key (the first of ATTUNE_SECRET_KEY or its file)",
    )
    rotate_cmd.add_argument(
        "--database-url", default="", metavar="URL", help="the database (default $ATTUNE_DATABASE_URL, as the services)"
    )
    rotate_cmd.set_defaults(handler=rotate_command, sync=True)
    new_key = verbs.add_parser("new-key", parents=[parent], help="print a fresh random key (base64 of 32 bytes)")
    new_key.set_defaults(handler=new_key_command, sync=True)


def rotate_command(args: argparse.Namespace) -> int:
    """Re-seals what older keys sealed; prints how many values per column."""
    settings = Settings.from_env()
    if args.database_url:
        settings = settings.replace(database_url=normalize_database_url(args.database_url))
    try:
        sealer = require(sealer_from_settings(settings), "attune secrets rotate")
        report = eventloop.run(_rotate(settings, sealer))
    except SecretKeyError as err:
        raise CliError(str(err)) from err
    if args.output == JSON:
        emit_json({"key_id": sealer.newest.id, "resealed": report.resealed, "skipped": report.skipped})
    else:
        for column, count in report.resealed.items():
            skipped = report.skipped[column]
            print(
                f"{column}: {count} re-sealed" + (f", {skipped} rows changed meanwhile (left as is)" if skipped else "")
            )
        if any(report.skipped.values()):
            print("run it again to re-seal the rows changed meanwhile")
        else:
            print(f"every sealed value is now under key {sealer.newest.id}")
    return 0


async def _rotate(settings: Settings, sealer: Sealer) -> RotationReport:
    db = Database(settings.database_url)
    try:
        return await rotate(db, sealer)
    finally:
        await db.close()


def new_key_command(args: argparse.Namespace) -> int:
    """Prints a fresh key: put it first in ATTUNE_SECRET_KEY (or its file), then rotate."""
    key = new_key_text()
    if args.output == JSON:
        emit_json({"key": key})
    else:
        print(key)
    return 0
