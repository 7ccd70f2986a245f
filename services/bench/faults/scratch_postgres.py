"""A PostgreSQL cluster of the benchmark's own, in a scratch directory, so that the database
faults (restart, a stop of several seconds) hit nobody else's server.

It listens on 127.0.0.1 on a free port with its unix socket in the scratch directory and trusts
every local connection (`initdb -A trust`). PostgreSQL refuses to run as root, so a root process
runs `initdb` and `pg_ctl` as the `postgres` user (`setpriv`), owning the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from attune_services.cli.launcher import free_port

#: Where Debian and the official images put the server binaries when they are not on PATH.
_SERVER_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")
_RUN_AS = "postgres"
#: pg_ctl's wait for start, stop and restart (crash recovery after an immediate stop included).
_WAIT_S = 60


class ScratchPostgresError(Exception):
    """initdb or pg_ctl failed; the message carries its output."""


def server_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`, or None when there is no PostgreSQL server here."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for pattern in _SERVER_GLOBS:
        for folder in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
                return folder
    return None


def unavailable_reason() -> str | None:
    """Why no scratch cluster can run here (None when one can)."""
    if server_binaries() is None:
        return "initdb and pg_ctl were not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return f"running as root and there is no {_RUN_AS!r} user to run PostgreSQL as"
        if shutil.which("setpriv") is None:
            return "running as root without setpriv to run PostgreSQL as another user"
    return None


class ScratchPostgres:
    """One throw-away cluster: `start()`, fault it (`restart`, `stop`, `start`), `destroy()`."""

    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise ScratchPostgresError("initdb and pg_ctl were not found")
        self._bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="attune-bench-pg-"))
        self.data = self.folder / "data"
        self.socket_dir = self.folder / "socket"
        self.log_file = self.folder / "postgres.log"
        self.port = free_port()
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(_RUN_AS)
            self._prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]
            self.socket_dir.mkdir()
            for path in (self.folder, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        else:
            self.socket_dir.mkdir()

    @property
    def url(self) -> str:
        """The URL of its `postgres` database as the `postgres` superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._prefix, str(self._bin / tool), *args]
        # Output to a file, not a pipe: the server pg_ctl starts inherits it and would hold a pipe
        # open for as long as it runs.
        with tempfile.TemporaryFile("w+", dir=self.folder) as output:
            code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if code != 0:
                output.seek(0)
                raise ScratchPostgresError(f"{tool} {' '.join(args)} failed ({code}): {output.read().strip()}")

    def start(self) -> None:
        """initdb on first use, then start and wait until it accepts connections."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", str(_WAIT_S), "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m `mode` (smart, fast or immediate), waiting until it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", str(_WAIT_S), "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """pg_ctl restart -m `mode`, waiting until it accepts connections again."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", str(_WAIT_S), "-m", mode, "restart"
        )

    def destroy(self) -> None:
        """Stops the cluster if it runs (immediately: its data is thrown away) and removes it."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ScratchPostgresError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
