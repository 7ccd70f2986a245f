"""Every process of a run ends with the run — setsid'd and double-forked ones too — under both
kinds of containment (a cgroup per run; the worker as subreaper), against real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from attune_services.worker.runtimes import (
    ActionProcess,
    Containment,
    ContainmentError,
    RunRequest,
    detect_runtimes,
    open_containment,
)
from attune_services.worker.runtimes._cgroup import CgroupContainment
from tests.support.polling import eventually
from tests.worker.processes import gone, written

INTERPRETERS = detect_runtimes()

# Starts a grandchild in a session of its own, and a daemon that forks twice (its parent exits,
# so it is re-parented); each writes its own pid. With `hidden`, a third one also starts with an
# empty environment: nothing about it says which run it came from, except its cgroup.
DETACHING = """
dir="$ATTUNE_PARAM_DIR"
setsid sh -c 'echo $$ > "$0/setsid.pid"; exec sleep 300' "$dir" </dev/null >/dev/null 2>&1 &
( setsid sh -c 'echo $$ > "$0/daemon.pid"; exec sleep 300' "$dir" </dev/null >/dev/null 2>&1 & )
if [ -n "${ATTUNE_PARAM_HIDDEN:-}" ]; then
  ( env -i /bin/sh -c 'setsid sh -c "echo \\$\\$ > $0/hidden.pid; exec sleep 300"' "$dir" </dev/null >/dev/null 2>&1 & )
fi
echo $$ > "$dir/leader.pid"
"""


@pytest.fixture(params=["cgroup", "subreaper"])
def containment(request: pytest.FixtureRequest) -> Iterator[Containment]:
    try:
        opened = open_containment(request.param)
    except ContainmentError as err:
        pytest.skip(str(err))
    yield opened
    opened.close()


def detaching(
    tmp_path: Path, tail: str, containment: Containment, *, timeout_s: float | None = None, kill_grace_s: float = 5.0
) -> ActionProcess:
    actions = tmp_path / "actions"
    actions.mkdir()
    script = actions / "detach.sh"
    script.write_text(DETACHING + tail + "\n")
    parameters = {"dir": str(tmp_path), "hidden": "1" if containment.kind == "cgroup" else ""}
    request = RunRequest(
        execution_id=f"contain-{tmp_path.name}",
        action_ref="contain.detach",
        runtime="shell",
        entry_point=script,
        working_dir=actions,
        parameters=parameters,
        timeout_s=timeout_s,
        kill_grace_s=kill_grace_s,
    )
    return ActionProcess(request, INTERPRETERS, containment=containment)


async def started_processes(folder: Path, containment: Containment) -> dict[str, int]:
    """The pids the script and its detached processes wrote, once all are running."""
    names = ["leader", "setsid", "daemon", *(["hidden"] if containment.kind == "cgroup" else [])]
    pids: dict[str, int] = {}
    for name in names:
        path = folder / f"{name}.pid"
        pids[name] = int(await eventually(partial(written, path), within=5, what=str(path)))
    assert not [name for name, pid in pids.items() if gone(pid)]
    return pids


async def all_end(pids: dict[str, int], containment: Containment) -> None:
    def left() -> list[str]:
        return [name for name, pid in pids.items() if not gone(pid)]

    await eventually(lambda: not left(), within=5.0, what=lambda: f"{left()} to end")
    if containment.kind == "subreaper":  # the worker adopted them, so it reaps them too
        detached = [pids["setsid"], pids["daemon"]]
        await eventually(
            lambda: not any(os.path.exists(f"/proc/{pid}") for pid in detached), within=5.0, what="zombies reaped"
        )


async def test_cancel_ends_every_process_of_the_run(tmp_path: Path, containment: Containment) -> None:
    process = detaching(tmp_path, "sleep 300", containment, kill_grace_s=0.2)
    await process.start()
    pids = await started_processes(tmp_path, containment)
    process.cancel()
    outcome = await asyncio.wait_for(process.wait(), 10)
    assert outcome.state == "cancelled"
    await all_end(pids, containment)


async def test_timeout_ends_every_process_of_the_run(tmp_path: Path, containment: Containment) -> None:
    process = detaching(tmp_path, "sleep 300", containment, timeout_s=2.0, kill_grace_s=0.2)
    await process.start()
    pids = await started_processes(tmp_path, containment)
    outcome = await asyncio.wait_for(process.wait(), 10)
    assert outcome.state == "timeout"
    await all_end(pids, containment)


async def test_what_a_finished_run_left_running_ends_with_it(tmp_path: Path, containment: Containment) -> None:
    # The script waits for its detached processes to write their pids, then exits 0.
    wait_for_pids = 'while [ ! -s "$dir/setsid.pid" ] || [ ! -s "$dir/daemon.pid" ]; do sleep 0.01; done'
    process = detaching(tmp_path, wait_for_pids, containment)
    await process.start()
    outcome = await asyncio.wait_for(process.wait(), 10)
    assert outcome.state == "succeeded", outcome.error
    pids = {name: int(written(tmp_path / f"{name}.pid")) for name in ("setsid", "daemon")}
    await all_end(pids, containment)


async def test_detached_processes_get_term_before_kill(tmp_path: Path, containment: Containment) -> None:
    # A detached process that handles TERM gets the grace to do so, like the action itself.
    tail = (
        'setsid sh -c \'trap "echo TERM > $0/term; exit 0" TERM; while :; do sleep 0.02; done\' "$dir" &\n'
        "trap 'sleep 1; exit 0' TERM\n"
        "sleep 300"
    )
    process = detaching(tmp_path, tail, containment, kill_grace_s=3.0)
    await process.start()
    await started_processes(tmp_path, containment)
    await asyncio.sleep(0.2)  # the trapping one is running
    process.cancel()
    outcome = await asyncio.wait_for(process.wait(), 10)
    assert outcome.state == "cancelled"
    assert written(tmp_path / "term") == "TERM"


def test_a_containment_leaves_nothing_behind(tmp_path: Path) -> None:
    try:
        opened = open_containment("cgroup")
    except ContainmentError as err:
        pytest.skip(str(err))
    assert isinstance(opened, CgroupContainment)
    root = opened.cgroup.root
    assert root.is_dir() and (root / "cgroup.kill").exists()
    opened.close()
    assert not root.exists()


def test_an_unknown_mode_is_refused_naming_the_variable() -> None:
    with pytest.raises(ContainmentError, match=r"ATTUNE_WORKER_CONTAINMENT='jail': expected one of auto, cgroup"):
        open_containment("jail")
    env = {**os.environ, "ATTUNE_WORKER_CONTAINMENT": "jail", "ATTUNE_HOME": tempfile.gettempdir()}
    worker = subprocess.run(
        [sys.executable, "-m", "attune_services.worker"], env=env, capture_output=True, text=True, timeout=30
    )
    assert worker.returncode == 2
    assert worker.stderr == "attune-worker: ATTUNE_WORKER_CONTAINMENT='jail': expected one of auto, cgroup, subreaper\n"
