"""The code type-checks: mypy over libs/attune and services (config in pyproject.toml) finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_errors() -> None:
    # mypy's incremental cache is the default .mypy_cache under the repo root (git-ignored): a
    # cold run (fresh clone) takes ~25 s, a warm one ~1 s.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "libs/attune", "services"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mypy exited {result.returncode}:\n{result.stdout}{result.stderr}"
