"""Whether a service's database can serve this code: reachable, and migrated to its revision.

Alembic records the revision a database is migrated to in the one-row table `alembic_version`
(`version_num`); the code's revision is the head of the bundled migrations
(`attune.storage.migrations/versions`). The server bootstrap asks `database_problem` periodically
and reports NOT_SERVING while there is one (`attune.grpcutil.server`).
"""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path

import sqlalchemy as sa

from attune.storage.database import Database, is_unavailable

# attune.storage.migrate.MIGRATIONS_DIR's versions, named here so as not to import Alembic.
_VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

#: How long one check may take before the database counts as unreachable.
CHECK_TIMEOUT_S = 5.0
_REVISION = re.compile(r'^revision\s*(?::\s*str\s*)?=\s*"(?P<id>[^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision\s*(?::[^=]*)?=\s*"(?P<id>[^"]+)"', re.MULTILINE)
_VERSION = sa.text("SELECT version_num FROM alembic_version")


@functools.cache
def code_revision() -> str:
    """The head of the bundled migrations: the revision no other revises.

    Read from the migration files' `revision` and `down_revision` lines rather than through
    Alembic, so that serving does not load Alembic (it costs a service ~0.13 s and memory)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in _VERSIONS_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if (found := _REVISION.search(text)) is not None:
            revisions.add(found["id"])
        if (down := _DOWN_REVISION.search(text)) is not None:
            revised.add(down["id"])
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {_VERSIONS_DIR} have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


async def database_problem(db: Database) -> str | None:
    """What keeps the database from serving this code (unreachable, not migrated, migrated to
    another revision), or None when it is ready. For the log: it may quote the driver."""
    # Any failure is a problem to report, never an exception: the check runs in a loop.
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with db.read() as conn:
                stored = (await conn.execute(_VERSION)).scalar()
    except TimeoutError:
        return f"the database did not answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as err:
        if _no_version_table(err):
            return "the database is not migrated: run `python -m attune.storage.migrate upgrade`"
        if is_unavailable(err):
            return f"the database is unreachable: {_first_line(err)}"
        return f"the database check failed: {_first_line(err)}"
    expected = code_revision()
    if stored is None:
        return "the database is not migrated: run `python -m attune.storage.migrate upgrade`"
    if stored != expected:
        return (
            f"the database is migrated to revision {stored}, this code needs {expected}: "
            "run `python -m attune.storage.migrate upgrade` with this release"
        )
    return None


def _no_version_table(err: BaseException) -> bool:
    text = str(getattr(err, "orig", None) or err).lower()
    return "alembic_version" in text and ("no such table" in text or "does not exist" in text)


def _first_line(err: BaseException) -> str:
    cause = getattr(err, "orig", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
