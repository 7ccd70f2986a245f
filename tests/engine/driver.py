"""Runs a YAML fixture through the engine, simulating children and a fake clock.

A fixture holds ``workflow`` (the document), optional ``parameters``, ``depth``,
``run_cap``, ``template_limits`` (``max_bytes``, ``max_steps``), ``cancel_at`` (time to call
``cancel``), ``pause_at`` and ``resume_at`` (times to call ``pause`` and ``resume``),
``outcomes`` (per task: a list consumed one per started child, or one map for
every child; each
``{state, result, duration, error}``, default ``succeeded``/``{}``/0/none — ``error`` is the
child execution's error text) and ``expect``.

Children end FIFO by (end time, start order); timers fire as the clock reaches
them. After every event the driver checks: the entries survive a JSON round trip
(and the engine continues from the reloaded copy), ``Step.changed`` applied to
the previous entries gives the new ones, a repeated ``task_ended`` is a no-op,
and a running workflow always has something running or a timer pending.
"""

from __future__ import annotations

import copy
import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attune.engine import (
    CancelTask,
    CancelTimer,
    CompiledWorkflow,
    FinishWorkflow,
    SetTimer,
    StartTask,
    Step,
    TaskEnded,
    TaskRunKey,
    TemplateLimits,
    WorkflowSpecError,
    WorkflowState,
    cancel,
    command_from_dict,
    compile_workflow,
    parse_workflow,
    pause,
    resume,
    start,
    task_ended,
    timer_fired,
)

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Run:
    """What happened when a fixture ran."""

    starts: list[StartTask] = field(default_factory=list)
    timers: list[SetTimer] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    finish: FinishWorkflow | None = None
    finished_at: float | None = None
    max_in_flight: dict[str, int] = field(default_factory=dict)
    state: WorkflowState | None = None


class Simulation:
    def __init__(self, fixture: dict[str, Any], source: str, *, compiled: CompiledWorkflow | None = None) -> None:
        """Simulate ``fixture``; ``compiled`` stands for its ``workflow`` when given."""
        if compiled is None:
            compiled = compile_workflow(parse_workflow(fixture["workflow"], source=source))
        self.wf = CompiledWorkflow.from_dict(json.loads(json.dumps(compiled.to_dict())))
        assert self.wf.digest == compiled.digest
        self.state = WorkflowState.new(
            parameters=fixture.get("parameters") or {},
            depth=fixture.get("depth", 0),
            run_cap=fixture.get("run_cap", 1000),
            template_limits=TemplateLimits(**fixture.get("template_limits", {})),
        )
        self.outcomes = copy.deepcopy(fixture.get("outcomes") or {})
        self.queue: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.running: dict[str, int] = {}  # key -> sequence number of its pending end event
        self.timer_ids: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.run = Run()
        if "cancel_at" in fixture:
            self._push(float(fixture["cancel_at"]), "cancel", None)
        for kind in ("pause", "resume"):
            if f"{kind}_at" in fixture:
                self._push(float(fixture[f"{kind}_at"]), kind, None)

    def _push(self, at: float, kind: str, payload: Any) -> int:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, payload))
        return self.seq

    def _outcome(self, task: str) -> dict[str, Any]:
        script = self.outcomes.get(task)
        if isinstance(script, list):
            return script.pop(0) if script else {}
        return script or {}

    def apply(self, step: Step, before: dict[str, Any]) -> None:
        after = self.state.to_entries()
        merged = dict(before)
        for key, value in step.changed.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        assert _json(merged) == _json(after), "Step.changed does not match the state"
        self.state = WorkflowState.from_entries(json.loads(json.dumps(after)))
        for command in step.commands:
            copied = command_from_dict(json.loads(json.dumps(command.to_dict())))
            assert _json(copied.to_dict()) == _json(command.to_dict())
            self._carry_out(command)

    def _carry_out(self, command: Any) -> None:
        if isinstance(command, StartTask):
            self.run.starts.append(command)
            outcome = self._outcome(command.key.task)
            key = command.key.as_str()
            seq = self._push(
                self.now + float(outcome.get("duration", 0)),
                "end",
                (key, outcome.get("state", "succeeded"), outcome.get("result", {}), outcome.get("error")),
            )
            self.running[key] = seq
            task = command.key.task
            self.in_flight[task] = self.in_flight.get(task, 0) + 1
            self.run.max_in_flight[task] = max(self.run.max_in_flight.get(task, 0), self.in_flight[task])
        elif isinstance(command, CancelTask):
            key = command.key.as_str()
            self.run.cancels.append(key)
            if key in self.running:
                self.running[key] = self._push(self.now, "end", (key, "cancelled", {}, "cancelled"))
        elif isinstance(command, SetTimer):
            self.run.timers.append(command)
            self.timer_ids[command.timer_id] = self._push(command.fire_at, "timer", command.timer_id)
        elif isinstance(command, CancelTimer):
            self.timer_ids.pop(command.timer_id, None)
        elif isinstance(command, FinishWorkflow):
            assert self.run.finish is None, "FinishWorkflow issued twice"
            self.run.finish = command
            self.run.finished_at = self.now

    def _event(self, kind: str, payload: Any, seq: int) -> Step | None:
        if kind == "cancel":
            return cancel(self.wf, self.state, now=self.now)
        if kind == "pause":
            return pause(self.wf, self.state, now=self.now)
        if kind == "resume":
            return resume(self.wf, self.state, now=self.now)
        if kind == "timer":
            if self.timer_ids.get(payload) != seq:
                return None  # cancelled or replaced
            del self.timer_ids[payload]
            return timer_fired(self.wf, self.state, payload, now=self.now)
        key, state, result, error = payload
        if self.running.get(key) != seq:
            return None  # superseded by a cancellation
        del self.running[key]
        task = key.rsplit("/", 3)[0]
        self.in_flight[task] -= 1
        ended = TaskEnded(TaskRunKey.parse(key), state, copy.deepcopy(result), error)
        step = task_ended(self.wf, self.state, ended, now=self.now)
        return step

    def execute(self, max_events: int = 200_000) -> Run:
        before = self.state.to_entries()
        self.apply(start(self.wf, self.state, now=0.0), copy.deepcopy(before))
        for _ in range(max_events):
            self._check_not_hanging()
            if not self.queue:
                break
            at, seq, kind, payload = heapq.heappop(self.queue)
            self.now = at
            was_finished = self.state.finished
            before = json.loads(json.dumps(self.state.to_entries()))
            step = self._event(kind, payload, seq)
            if step is None:
                continue
            if was_finished:
                assert step.changed == {} and step.commands == [], f"event after finish changed something: {step}"
            self.apply(step, before)
            if kind == "end":
                ended = TaskEnded(TaskRunKey.parse(payload[0]), payload[1], payload[2], payload[3])
                dup = task_ended(self.wf, self.state, ended, now=self.now)
                assert dup.changed == {} and dup.commands == [], "duplicate task_ended was not a no-op"
        else:
            raise AssertionError("simulation did not settle")
        self.run.state = self.state
        return self.run

    def _check_not_hanging(self) -> None:
        if self.state.status in ("running", "canceling"):
            assert self.queue, f"workflow is {self.state.status} with nothing running and no timers"


def _json(value: Any) -> str:
    """Canonical JSON text: equal for equal data, NaN included (which never equals itself)."""
    return json.dumps(value, sort_keys=True)


def load(name: str) -> dict[str, Any]:
    """Load fixture ``name`` (file stem)."""
    fixture: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    return fixture


def run_fixture(name: str) -> tuple[dict[str, Any], Run]:
    """Run fixture ``name`` and return it with what happened."""
    fixture = load(name)
    source = fixture.get("source", f"workflows/{name}.workflow.yaml")
    return fixture, Simulation(fixture, source).execute()


def _label(start: StartTask) -> str:
    key = start.key
    text = key.task
    if key.item is not None:
        text += f"[{key.item}]"
    if key.attempt > 1:
        text += f"#{key.attempt}"
    return text


def check_expectations(expect: dict[str, Any], run: Run) -> None:
    """Assert every expectation a fixture lists."""
    assert run.finish is not None, "workflow never finished"
    finish = run.finish
    if "sequence" in expect:
        assert [_label(s) for s in run.starts] == expect["sequence"]
    if "keys" in expect:
        assert [s.key.as_str() for s in run.starts] == expect["keys"]
    if "status" in expect:
        assert finish.status == expect["status"], f"{finish.status}: {finish.error}"
    if "result" in expect:
        assert finish.result == expect["result"]
    errors = expect.get("error_contains", [])
    for fragment in [errors] if isinstance(errors, str) else errors:
        assert finish.error is not None and fragment in finish.error, f"{fragment!r} not in {finish.error!r}"
    if "error" in expect:
        assert finish.error == expect["error"]
    if "timers" in expect:
        assert [[t.purpose, t.fire_at] for t in run.timers] == expect["timers"]
    for task, inputs in (expect.get("inputs") or {}).items():
        assert [s.input for s in run.starts if s.key.task == task] == inputs
    for task, timeout in (expect.get("timeouts") or {}).items():
        assert {s.timeout for s in run.starts if s.key.task == task} == {timeout}
    if "cancels" in expect:
        assert run.cancels == expect["cancels"]
    for task, limit in (expect.get("max_in_flight") or {}).items():
        assert run.max_in_flight.get(task) == limit
    if "finished_at" in expect:
        assert run.finished_at == expect["finished_at"]
    assert run.state is not None
    for name, value in (expect.get("vars") or {}).items():
        assert run.state.get_value("v:" + name) == value


def check_refused(expect: dict[str, Any], document: Any, source: str) -> None:
    """Assert ``parse_workflow`` refuses ``document`` with every fragment of ``expect["refused"]``.

    ``refused`` is one fragment or a list; each must occur in one of the errors, which read
    ``<source>: <where>: <message>``.
    """
    fragments = expect["refused"]
    try:
        parse_workflow(document, source=source)
    except WorkflowSpecError as err:
        lines = [str(e) for e in err.errors]
    else:
        raise AssertionError(f"the workflow was accepted, expected it refused with {fragments!r}")
    for fragment in [fragments] if isinstance(fragments, str) else fragments:
        assert any(fragment in line for line in lines), f"{fragment!r} not in {lines}"
