"""How `attune bench faults` scores a fault (pure: synthetic rows, no services) and what its load,
its table and its skipping of the database faults look like."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import attune_services.bench.faults as faults_suite
from attune_services.bench.faults import FaultOptions, fault_options, fault_suite, faults_table
from attune_services.bench.faults.load import LOGGED_SLEEP, Request, mixed_load
from attune_services.bench.faults.records import ExecutionRecord
from attune_services.bench.faults.score import FIGURES, Observation, score, total
from attune_services.cli.launcher import LaunchError

BACK_AT = 1000.0


def record(id: str, **fields: Any) -> ExecutionRecord:
    values: dict[str, Any] = {
        "parent_id": None,
        "action_ref": "core.noop",
        "runner_type": "noop",
        "state": "succeeded",
        "result": {"exit_code": 0},
        "error": None,
        "worker_id": "worker-1",
        "task_name": None,
        "task_run": None,
        "item_index": None,
        "attempt": None,
        "created_at": BACK_AT - 5,
        "finished_at": BACK_AT - 4,
    }
    values.update(fields)
    values.setdefault("updated_at", values["finished_at"] or values["created_at"])
    return ExecutionRecord(id=id, **values)


def child(id: str, parent: str, task: str = "t", **fields: Any) -> ExecutionRecord:
    return record(id, parent_id=parent, task_name=task, task_run=1, attempt=1, **fields)


def observe(
    pairs: Sequence[tuple[Request, ExecutionRecord | None]],
    *extra: ExecutionRecord,
    task_run_rows: dict[tuple[Any, ...], int] | None = None,
    starts: Counter[str] | None = None,
    killed: tuple[str, ...] = (),
) -> Observation:
    ids = {request.request_id: rec.id for request, rec in pairs if rec is not None}
    records = {rec.id: rec for _, rec in pairs if rec is not None} | {rec.id: rec for rec in extra}
    return Observation(
        requests=[request for request, _ in pairs],
        ids=ids,
        records=records,
        task_run_rows=task_run_rows or {},
        starts=starts or Counter(),
        killed_workers=killed,
        back_at=BACK_AT,
    )


def noop() -> Request:
    return Request("core.noop", {}, {"exit_code": 0})


def workflow() -> Request:
    return Request("examples.sequence", {"name": "ada"}, {"shouted": "HELLO, ADA!"})


def test_an_execution_ending_as_expected_counts_nowhere() -> None:
    figures = score("f", observe([(noop(), record("a"))]))
    assert (figures.lost, figures.stuck, figures.wrong, figures.abandoned) == (0, 0, 0, 0)


def test_a_request_never_taken_is_lost_and_an_unfinished_one_stuck() -> None:
    figures = score("f", observe([(noop(), None), (noop(), record("b", state="running", finished_at=None))]))
    assert (figures.lost, figures.stuck, figures.wrong) == (1, 1, 0)


def test_another_state_or_result_is_wrong() -> None:
    pairs = [(noop(), record("a", state="failed")), (noop(), record("b", result={"exit_code": 1}))]
    assert score("f", observe(pairs)).wrong == 2


def test_the_logged_action_must_print_its_own_execution_id() -> None:
    def logged() -> Request:
        return Request(LOGGED_SLEEP, {"log_file": "x", "seconds": 0}, {}, echoes_id="execution_id")

    right = record("a", result={"execution_id": "a"})
    other = record("b", result={"execution_id": "a"})
    assert score("f", observe([(logged(), right), (logged(), other)])).wrong == 1


def test_abandoned_is_allowed_only_on_a_killed_worker() -> None:
    pairs = [
        (noop(), record("a", state="abandoned", worker_id="worker-1")),
        (noop(), record("b", state="abandoned", worker_id="worker-2")),
    ]
    figures = score("f", observe(pairs, killed=("worker-1",)))
    assert (figures.abandoned, figures.wrong) == (1, 1)
    assert score("f", observe(pairs)).wrong == 2


def test_a_workflow_failed_by_a_child_abandoned_on_a_killed_worker_is_abandoned() -> None:
    parent = record("w", runner_type="workflow", state="failed", result=None)
    lost_child = child("c", "w", state="abandoned", worker_id="worker-1")
    assert score("f", observe([(workflow(), parent)], lost_child, killed=("worker-1",))).abandoned == 1
    assert score("f", observe([(workflow(), parent)], lost_child, killed=("worker-2",))).wrong == 1


def test_a_task_run_carried_out_twice_is_a_duplicate_counted_once() -> None:
    parent = record("w", runner_type="workflow", result={"shouted": "HELLO, ADA!"})
    twice = [child("c1", "w"), child("c2", "w"), child("c3", "w", task="other")]
    rows = {("w", "t", 1, None, 1): 2, ("w", "other", 1, None, 1): 1}
    assert score("f", observe([(workflow(), parent)], *twice, task_run_rows=rows)).duplicate_task_runs == 1
    rows_only = {("w", "t", 1, None, 1): 3}
    assert score("f", observe([(workflow(), parent)], task_run_rows=rows_only)).duplicate_task_runs == 2


def test_process_starts_beyond_the_first_are_duplicates() -> None:
    figures = score("f", observe([(noop(), record("a"))], starts=Counter({"a": 3, "b": 1, "c": 2})))
    assert figures.duplicate_process_starts == 3


def test_recovery_waits_for_both_actions_and_workflows_to_move() -> None:
    action = record("a", created_at=BACK_AT - 3, finished_at=BACK_AT + 1.5)
    flow = record("w", runner_type="workflow", created_at=BACK_AT - 3, finished_at=BACK_AT + 9, result=None)
    step = child("c", "w", created_at=BACK_AT + 0.5)
    figures = score("f", observe([(noop(), action), (workflow(), flow)], step))
    assert figures.recovery_s == 1.5
    stalled = record("a", created_at=BACK_AT - 3, finished_at=BACK_AT + 1.5)
    slow_flow = record("w", runner_type="workflow", created_at=BACK_AT - 3, finished_at=BACK_AT + 7, result=None)
    assert score("f", observe([(noop(), stalled), (workflow(), slow_flow)])).recovery_s == 7.0


def test_recovery_waits_for_every_workflow_in_flight_and_p50_for_the_median_one() -> None:
    flows = [
        record(f"w{i}", runner_type="workflow", created_at=BACK_AT - 3, finished_at=None, result=None) for i in range(3)
    ]
    flows = [replace(flow, state="running") for flow in flows]
    nested = child("inner", "w2", runner_type="workflow", created_at=BACK_AT - 2)
    steps = [child("c0", "w0", created_at=BACK_AT + 0.5), child("c1", "w1", created_at=BACK_AT + 9)]
    deep = child("g", "inner", created_at=BACK_AT + 1)  # w2 moves through the workflow nested in it
    figures = score("f", observe([(workflow(), flow) for flow in flows], nested, *steps, deep))
    assert (figures.recovery_s, figures.recovery_p50_s) == (9.0, 1.0)


def test_recovery_counts_an_end_when_it_was_recorded_not_when_the_worker_saw_it() -> None:
    # Ended on the worker 0.5 s after the completion service was back, recorded 20 s later.
    late = record("a", created_at=BACK_AT - 3, finished_at=BACK_AT + 0.5, updated_at=BACK_AT + 20)
    assert score("f", observe([(noop(), late)])).recovery_s == 20.0


def test_recovery_is_none_when_nothing_was_in_flight() -> None:
    assert score("f", observe([(noop(), record("a"))])).recovery_s is None


def test_the_total_sums_the_counts_and_keeps_the_worst_recovery() -> None:
    rows = [
        score("a", observe([(noop(), None)])),
        score("b", observe([(noop(), record("x", created_at=BACK_AT - 1, finished_at=BACK_AT + 2))])),
    ]
    summed = total(rows)
    assert list(summed) == list(FIGURES)
    assert (summed["lost"], summed["recovery_s"]) == (1, 2.0)


def test_the_full_load_has_30_workflows_of_each_example_shape_and_300_actions(tmp_path: Path) -> None:
    load = mixed_load(1.0, tmp_path / "starts.log", long_s=6.0)
    workflows = Counter(r.ref for r in load if r.is_workflow)
    assert len(workflows) == 8 and set(workflows.values()) == {30}
    actions = [r for r in load if not r.is_workflow]
    assert len(actions) == 300
    assert sum(1 for r in actions if float(r.parameters.get("seconds", 0)) >= 4) >= 30
    assert sum(1 for r in actions if r.ref == LOGGED_SLEEP) >= 100
    assert len({r.request_id for r in load}) == len(load)


def test_the_table_has_a_row_per_fault_the_total_and_the_skipped() -> None:
    row = score("kill-worker", observe([(noop(), record("a"))])).as_json()
    text = faults_table({"faults": [row], "total": total([]), "skipped": [{"fault": "db-stop-10s", "reason": "no"}]})
    lines = text.splitlines()
    assert lines[0].split() == ["FAULT", *(name.upper() for name in FIGURES)]
    assert lines[1].split()[0] == "kill-worker" and lines[2].split()[0] == "total"
    assert lines[3] == "skipped db-stop-10s: no"


def test_without_initdb_the_database_faults_are_skipped_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults_suite, "unavailable_reason", lambda: "initdb and pg_ctl were not found")
    messages: list[str] = []
    figures = fault_suite("", ["db-restart-fast", "db-stop-10s"], FaultOptions(), messages.append)
    assert figures["faults"] == []
    assert [s["fault"] for s in figures["skipped"]] == ["db-restart-fast", "db-stop-10s"]
    assert all("initdb" in s["reason"] for s in figures["skipped"])
    assert any("skipped" in message for message in messages)


def test_short_is_a_tenth_of_the_load_and_scale_multiplies_it() -> None:
    assert fault_options(short=True, scale=None, secure=True, ready_timeout=60).scale == pytest.approx(0.1)
    assert fault_options(short=False, scale=0.5, secure=True, ready_timeout=60).scale == 0.5
    with pytest.raises(ValueError, match="--scale"):
        fault_options(short=False, scale=0, secure=True, ready_timeout=60)


def test_a_fault_whose_services_do_not_start_is_reported_failed_and_the_rest_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faults_suite, "unavailable_reason", lambda: "initdb and pg_ctl were not found")
    ran: list[str] = []

    async def run_fault(fault: Any, *_: Any) -> Any:
        ran.append(fault.name)
        if fault.name == "kill-scheduler":
            raise LaunchError("scheduler-2 exited with status 1 during start\n  its output")
        return score(fault.name, observe([(noop(), record("a"))]))

    monkeypatch.setattr(faults_suite, "run_fault", run_fault)
    figures = fault_suite("", ["kill-scheduler", "kill-worker"], FaultOptions(), lambda _: None)
    assert ran == ["kill-scheduler", "kill-worker"]
    assert [row["fault"] for row in figures["faults"]] == ["kill-worker"]
    assert figures["failed"] == [{"fault": "kill-scheduler", "error": "scheduler-2 exited with status 1 during start"}]
    assert "FAILED kill-scheduler: scheduler-2 exited" in faults_table(figures)


def test_the_none_baseline_runs_first_and_stays_out_of_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults_suite, "unavailable_reason", lambda: "initdb and pg_ctl were not found")

    async def run_fault(fault: Any, *_: Any) -> Any:
        return score(fault.name, observe([(noop(), None if fault.name == "none" else record("a"))]))

    monkeypatch.setattr(faults_suite, "run_fault", run_fault)
    figures = fault_suite("", [], FaultOptions(), lambda _: None)
    assert figures["faults"][0]["fault"] == "none" and figures["faults"][0]["lost"] == 1
    assert len(figures["faults"]) == 9 and len(figures["skipped"]) == 3
    assert figures["total"]["lost"] == 0
