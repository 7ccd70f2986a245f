"""What `attune up` leaves in ATTUNE_HOME for the local CLI to find: its TLS material, or a marker
saying it runs without TLS. Kept apart from the launcher so a client command need not import it."""

from __future__ import annotations

from pathlib import Path

#: In ATTUNE_HOME: the TLS material of `attune up`, and the marker of one running with --insecure.
TLS_FOLDER = "tls"
INSECURE_MARKER = "insecure"


def local_tls_dir(home: Path) -> Path | None:
    """The TLS material `attune up` made in `home` for the local CLI, unless it runs there with
    --insecure; None when there is none."""
    tls = home / TLS_FOLDER
    if (tls / "cli.pem").exists() and not (home / INSECURE_MARKER).exists():
        return tls
    return None
