"""Looking at processes from tests: whether one has ended, and the pid a script wrote."""

from __future__ import annotations

from pathlib import Path


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody has reaped yet (PID 1 here may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # the latter: it vanished while we read
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def written(path: Path) -> str:
    """What a script wrote to `path` ('' while it has written nothing yet)."""
    return path.read_text().strip() if path.exists() else ""
