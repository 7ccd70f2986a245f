"""The code type-checks: `mypy` with no arguments (strict, over libs, services and tests, as
configured in pyproject.toml) finds nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MYPY_CONFIG = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def test_mypy_finds_no_errors(tmp_path: Path) -> None:
    # A fresh cache every run (~20 s): a warm incremental cache has reported modules as missing
    # attributes, or kept an import's old "untyped" verdict, after unrelated edits.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mypy exited {result.returncode}:\n{result.stdout}{result.stderr}"
    assert "no issues found" in result.stdout, result.stdout


def test_only_generated_modules_are_left_out() -> None:
    # The exclude pattern keeps generated code out of the sources, and `ignore_errors` covers
    # attune.<area>.v1.*: both are only right while v1 folders hold nothing hand-written.
    patterns = MYPY_CONFIG["exclude"]
    excluded = [re.compile(p) for p in ([patterns] if isinstance(patterns, str) else patterns)]
    # Sources only: the bytecode Python caches beside them (__pycache__/*_pb2.cpython-*.pyc) is no module.
    generated = sorted(p for p in (REPO_ROOT / "libs").rglob("*_pb2*.py*") if p.suffix in (".py", ".pyi"))
    assert generated, "no generated modules under libs/"
    for path in generated:
        rel = path.relative_to(REPO_ROOT).as_posix()
        assert any(p.search(rel) for p in excluded), f"{rel} is generated but mypy would check it"
    for root in ("libs", "services", "tests"):
        for path in (REPO_ROOT / root).rglob("*.py*"):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if path not in generated and path.suffix in (".py", ".pyi"):
                assert not any(p.search(rel) for p in excluded), f"{rel} is hand-written but excluded"
                assert path.parent.name != "v1" or path.name == "__init__.py", f"{rel} sits beside generated code"
