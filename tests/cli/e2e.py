"""Running the installed `attune` console script as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def attune_script() -> str:
    """The `attune` console script of this environment (python -m as a fallback)."""
    beside = Path(sys.executable).parent / "attune"
    if beside.exists():
        return str(beside)
    found = shutil.which("attune")
    if found is None:
        raise RuntimeError("the attune console script is not installed (pip install -e .)")
    return found


@dataclass
class Outcome:
    """What one `attune` invocation did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as exactly one JSON document (json.loads refuses trailing data)."""
        return json.loads(self.stdout)


async def attune(*args: str, env: Mapping[str, str], timeout: float = 60.0) -> Outcome:
    """Runs `attune ARGS` with `env` (over ours) and returns its exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        attune_script(),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Outcome(proc.returncode, out.decode(), err.decode())
