"""Advancing workflows: events (child outcomes, timers, cancels) queue in the workflow's mailbox;
each batch goes through the engine under the workflow's lock, is persisted as one step in a
group-committed transaction, and only then are its commands handed to the `Carrier`.

Running workflows are held in memory (compiled definition + engine state + row version), so an
event costs no reload. Anything that goes wrong between computing a step and committing it drops
the in-memory copy: the next event reloads the workflow from the database, which is the truth.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from opentelemetry.trace import SpanKind

from attune import metrics
from attune.config import Settings
from attune.engine import (
    CompiledWorkflow,
    Step,
    TaskEnded,
    TaskRunKey,
    TemplateLimits,
    WorkflowState,
    cancel,
    child_paused,
    pause,
    resume,
    seed_entries,
    start,
    start_from,
    task_ended,
    timer_fired,
)
from attune.grpcutil.convert import execution_state_from_proto, loads
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.logs import ThrottledLog
from attune.security.sealing import Sealer
from attune.states import TERMINAL, ExecutionState
from attune.storage import Database, is_unavailable, log_failed_round
from attune.storage.batching import GroupCommitter
from attune.storage.schema import executions
from attune.telemetry import messaging_attributes, start_span, tracer
from attune_services.coordinator.carrier import Carrier
from attune_services.coordinator.commands import PendingChild, PendingFinish, Refusal
from attune_services.coordinator.definitions import DefinitionCache, DefinitionError
from attune_services.coordinator.mailbox import Mailboxes, WorkflowLocks
from attune_services.coordinator.pg_steps import needs_transaction, whole_on_fast_path, write_steps_asyncpg
from attune_services.coordinator.rows import (
    DefinitionRow,
    EndedRun,
    NewWorkflow,
    RunRef,
    StepOutcome,
    StepWrite,
    TimerRow,
    WorkflowFinish,
)
from attune_services.coordinator.secrets import WorkflowSecrets
from attune_services.coordinator.steps import LoadedWorkflow, add_step
from attune_services.coordinator.store import load_workflow, write_steps

log = logging.getLogger(__name__)
_tracer = tracer(__name__)
_START_MESSAGE = messaging_attributes("process", "attune.internal.workflow.v1.CoordinatorService/StartWorkflows")
_ADVANCE_MESSAGES = messaging_attributes("process", "attune.internal.workflow.v1.CoordinatorService/ReportOutcomes")
# While the database is away every event fails alike (and is sent again): one line per interval.
_outages = ThrottledLog(log)

Event = Callable[[CompiledWorkflow, WorkflowState, float], Step]

#: How often a batch of events is recomputed after losing a compare-and-set race before giving up.
MAX_CONFLICT_RETRIES = 5
#: How long outcomes that failed with the database away are applied again before they are left to
#: the completion service to send again (it does on a new stream, or after its safety interval).
OUTCOME_RETRY_S = 60.0


class EventOutcome(enum.StrEnum):
    """What became of one event submitted to a workflow's mailbox."""

    APPLIED = "applied"  # committed as (part of) a step
    UNCHANGED = "unchanged"  # nothing to write (a duplicate, a stale timer)
    UNKNOWN = "unknown"  # no such workflow, or one that failed at start


@dataclass(frozen=True)
class Pending:
    """One event waiting in a workflow's mailbox, with the bookkeeping rows it also touches."""

    event: Event
    ended_run: EndedRun | None = None
    fired_timer: str | None = None


class Workflows:
    """Starts workflows and applies outcomes, timers and cancellations to them."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        definitions: DefinitionCache,
        carrier: Carrier,
        sealer: Sealer | None = None,
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._owner = owner  # this replica's lease id, recorded on the commands it commits
        self._sealer = sealer  # opens secret parameters; seals stored entries that hold them
        self._settings = settings
        self._definitions = definitions
        self._carrier = carrier
        self._cache: dict[str, LoadedWorkflow] = {}
        self._locks = WorkflowLocks()
        self._mailboxes: Mailboxes[Pending, EventOutcome] = Mailboxes(self._apply)
        self._committer: GroupCommitter[StepWrite, StepOutcome | Exception] = GroupCommitter(self._flush)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self.on_timer_set: Callable[[float], None] = lambda fire_at: None
        self._reports: set[asyncio.Task[None]] = set()  # nested workflows telling their parent they paused
        carrier.on_refused = self.apply_refusals
        carrier.on_reported = self.forget

    # --- events ------------------------------------------------------------------------------

    async def start_many(self, starts: Sequence[coordinator_pb2.WorkflowStart]) -> list[str]:
        """Records and starts each workflow (idempotent per execution id); returns the accepted ids."""
        async with self._busy():
            done = await asyncio.gather(*(self._start(s) for s in starts), return_exceptions=True)
        accepted = []
        for s, outcome in zip(starts, done, strict=True):
            if isinstance(outcome, BaseException):
                _log_failure(
                    outcome,
                    "starting workflows",
                    "workflow %s could not be started (the scheduler hands it over again)",
                    s.execution_id,
                )
            else:
                accepted.append(s.execution_id)
        return accepted

    async def apply_outcomes(self, outcomes: Sequence[coordinator_pb2.TaskOutcome]) -> list[str]:
        """Feeds child outcomes to their workflows; returns the execution ids now applied (or that
        need nothing: duplicates, unknown workflows)."""
        log.debug("applying %d outcomes", len(outcomes))
        async with self._busy():
            done = await self._each_until_available(outcomes)
        acked = []
        for o, outcome in zip(outcomes, done, strict=True):
            if isinstance(outcome, BaseException):
                _log_failure(
                    outcome, "applying outcomes", "outcome of %s not applied (it is sent again)", o.execution_id
                )
            else:
                acked.append(o.execution_id)
        return acked

    async def _each_until_available(
        self, outcomes: Sequence[coordinator_pb2.TaskOutcome]
    ) -> list[BaseException | None]:
        """Applies the outcomes; those that failed because the database is away are applied again
        every retry interval until it answers (for up to OUTCOME_RETRY_S, and not while draining).
        So a workflow moves on as soon as the database is back, instead of waiting for the
        completion service to send the outcome again."""
        done = await _each([self._outcome(o) for o in outcomes])
        deadline = time.monotonic() + OUTCOME_RETRY_S
        while not self._draining and time.monotonic() < deadline:
            again = [i for i, err in enumerate(done) if err is not None and is_unavailable(err)]
            if not again:
                break
            log_failed_round(_outages, "applying outcomes", done[again[0]] or RuntimeError())
            await asyncio.sleep(self._settings.retry_interval)
            for i, err in zip(again, await _each([self._outcome(outcomes[i]) for i in again]), strict=True):
                done[i] = err
        return done

    async def apply_refusals(self, refusals: Sequence[Refusal]) -> None:
        """Child requests the scheduler refused (or that were cancelled before dispatch) end their
        task runs as failed / cancelled, with why they never started."""
        async with self._busy():
            await asyncio.gather(
                *(
                    self.task_ended(
                        r.workflow_id,
                        TaskEnded(TaskRunKey.parse(r.run_key), r.state, {"error": r.error}, f"not started: {r.error}"),
                    )
                    for r in refusals
                )
            )

    async def _outcome(self, o: coordinator_pb2.TaskOutcome) -> None:
        link = o.link
        state = execution_state_from_proto(o.state)
        if not link.workflow_execution_id or not link.task_name or state not in TERMINAL:
            log.warning("outcome of %s ignored: no workflow link or state '%s' is not terminal", o.execution_id, state)
            return
        result = loads(o.result_json, {})
        if isinstance(result, dict) and o.error and "error" not in result:
            result = {**result, "error": o.error}
        key = TaskRunKey(
            link.task_name, link.run or 1, None if link.item_index < 0 else link.item_index, link.attempt or 1
        )
        ended = TaskEnded(key, state, result, o.error or None)
        if (
            await self.task_ended(link.workflow_execution_id, ended, child_execution_id=o.execution_id)
            == EventOutcome.UNKNOWN
        ):
            log.warning(
                "outcome of %s is for unknown workflow %s; acknowledged", o.execution_id, link.workflow_execution_id
            )

    async def task_ended(self, workflow_id: str, ended: TaskEnded, *, child_execution_id: str = "") -> EventOutcome:
        """Applies one task run's end (the outcome of `child_execution_id`, if it had a child);
        UNKNOWN when the workflow is not recorded."""
        run = EndedRun(ended.key.as_str(), ended.state, time.time(), child_execution_id)
        return await self._mailboxes.submit(
            workflow_id, Pending(lambda wf, st, now: task_ended(wf, st, ended, now=now), ended_run=run)
        )

    async def fire_timer(self, workflow_id: str, timer_id: str) -> EventOutcome:
        """Fires one due timer (a timer the engine no longer knows is just deleted)."""
        async with self._busy():
            return await self._mailboxes.submit(
                workflow_id, Pending(lambda wf, st, now: timer_fired(wf, st, timer_id, now=now), fired_timer=timer_id)
            )

    async def cancel(self, workflow_id: str) -> EventOutcome:
        """Cancels a workflow per its cancellation policy; UNKNOWN when it is not recorded."""
        async with self._busy():
            return await self._mailboxes.submit(workflow_id, Pending(lambda wf, st, now: cancel(wf, st, now=now)))

    async def pause(self, workflow_id: str) -> EventOutcome:
        """Pauses a workflow (docs/workflows.md, Pause and resume); UNKNOWN when it is not
        recorded. The scheduler pauses its nested workflows, each in turn."""
        async with self._busy():
            return await self._mailboxes.submit(workflow_id, Pending(lambda wf, st, now: pause(wf, st, now=now)))

    async def resume(self, workflow_id: str) -> EventOutcome:
        """Resumes a paused workflow; UNKNOWN when it is not recorded."""
        async with self._busy():
            return await self._mailboxes.submit(workflow_id, Pending(lambda wf, st, now: resume(wf, st, now=now)))

    async def _report_paused(self, workflow_id: str) -> None:
        """Tells the parent of a nested workflow that it is paused (its link is the child
        execution's, as the completion service forwards outcomes)."""
        query = sa.select(
            executions.c.workflow_execution_id,
            executions.c.task_name,
            executions.c.task_run,
            executions.c.item_index,
            executions.c.attempt,
        ).where(executions.c.id == workflow_id)
        try:
            async with self._db.read() as conn:
                link = (await conn.execute(query)).first()
            if link is None or not link.workflow_execution_id or not link.task_name:
                return
            key = TaskRunKey(link.task_name, link.task_run or 1, link.item_index, link.attempt or 1)
            await self._mailboxes.submit(
                link.workflow_execution_id, Pending(lambda wf, st, now: child_paused(wf, st, key, now=now))
            )
        except Exception as err:  # the parent stays pausing; a later step of the child reports again
            _log_failure(
                err, "reporting a pause", "pause of nested workflow %s not reported to its parent", workflow_id
            )

    def forget(self, workflow_ids: Sequence[str]) -> None:
        """Drops finished workflows from memory (their results are reported)."""
        for workflow_id in workflow_ids:
            loaded = self._cache.get(workflow_id)
            if loaded is not None and loaded.state.finished:
                del self._cache[workflow_id]

    async def drain(self) -> None:
        """Waits for in-flight events to be applied, then writes what is queued."""
        self._draining = True
        await self._idle.wait()
        await self._committer.close()

    # --- internals ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _busy(self) -> AsyncIterator[None]:
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _flush(self, batch: list[StepWrite]) -> list[StepOutcome | Exception]:
        try:
            if not self._db.is_sqlite and all(whole_on_fast_path(w) for w in batch):
                rows = max(max(len(w.new_runs), len(w.ended_runs), len(w.entries)) for w in batch)
                async with self._db.asyncpg(transaction=needs_transaction(batch), rows=rows) as raw:
                    return list(await write_steps_asyncpg(raw, batch, owner=self._owner))
            async with self._db.write() as conn:
                return list(await write_steps(conn, batch, owner=self._owner))
        except (
            sa.exc.IntegrityError,
            sa.exc.DataError,
            asyncpg.IntegrityConstraintViolationError,
            asyncpg.DataError,
        ) as err:
            if len(batch) == 1:
                return [err]
        # One bad step (a value its column refuses) must not fail the steps of other workflows it
        # shared a batch with; other errors (the database is away) fail the whole batch.
        results: list[StepOutcome | Exception] = []
        for write in batch:
            results.extend(await self._flush([write]))
        return results

    async def _commit(self, write: StepWrite) -> StepOutcome:
        """Group-commits one step: APPLIED, CONFLICT or EXISTS; raises what failed it."""
        outcome = await self._committer.submit(write)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _start(self, s: coordinator_pb2.WorkflowStart) -> None:
        if not s.execution_id:
            raise ValueError("a WorkflowStart has no execution_id")
        async with self._locks.hold(s.execution_id):
            if s.execution_id in self._cache:
                return  # already started by this process
            seed = await self._rerun_seed(s.rerun_of) if s.from_tasks else None
            now = time.time()
            # The start is a message processed (the scheduler's hand-off): a CONSUMER span, under
            # the workflow's execution span, and the parent of the entry tasks' executions.
            span, step_traceparent = start_span(
                _tracer,
                "workflow.start",
                s.trace.traceparent,
                {"attune.execution.id": s.execution_id, "attune.action.ref": s.action_ref, **_START_MESSAGE},
                kind=SpanKind.CONSUMER,
            )
            try:
                traceparent = s.trace.traceparent or step_traceparent
                loaded, write = self._begin(s, traceparent, now, seed)
                write.traceparent = step_traceparent
            except BaseException as err:
                span.record_exception(err)
                raise
            finally:
                span.end()
            secrets = loaded.secrets if loaded is not None else None
            if await self._commit(write if secrets is None else secrets.stored(write)) != StepOutcome.APPLIED:
                return  # recorded before (a retried hand-off): nothing to do again
            if write.definition is not None:
                self._definitions.stored(write.definition.digest)
            if loaded is not None and not loaded.state.finished:
                self._cache[s.execution_id] = loaded
            self._after_commit(s.execution_id, depth=s.depth, traceparent=traceparent, write=write)
            metrics.WORKFLOW_STEPS.inc()

    async def _rerun_seed(self, original_id: str) -> dict[str, Any] | None:
        """The state entries of the workflow run a re-run starts from; None when it is not recorded."""
        async with self._db.read() as conn:
            found = await load_workflow(conn, original_id)
        if found is None:
            return None
        entries, _ = WorkflowSecrets.of_entries(self._sealer, found.entries)
        return entries

    def _begin(
        self, s: coordinator_pb2.WorkflowStart, traceparent: str, now: float, seed: dict[str, Any] | None = None
    ) -> tuple[LoadedWorkflow | None, StepWrite]:
        """Compiles and starts a workflow in memory (a re-run from some tasks: seeded from the
        original run's entries, `seed`); a definition that cannot be used fails it."""
        new = NewWorkflow(s.execution_id, s.action_ref, "", s.depth, traceparent, now)
        try:
            compiled = self._definitions.compile(s.workflow_yaml, source=s.workflow_source, timeout=s.timeout_seconds)
            parameters = loads(s.parameters_json, {})
            if not isinstance(parameters, dict):
                raise DefinitionError(f"parameters of workflow {s.execution_id} are not a JSON object")
            # A SecretKeyError (a ValueError naming the key id) fails the workflow like a bad definition.
            parameters, secrets = WorkflowSecrets.of_parameters(self._sealer, parameters)
            if s.from_tasks and seed is None:
                raise DefinitionError(f"re-run of {s.rerun_of}: its workflow run is not recorded (purged?)")
            task_inputs = loads(s.task_inputs_json, {}) if s.task_inputs_json else {}
            if not isinstance(task_inputs, dict):
                raise DefinitionError(f"task inputs of re-run {s.execution_id} are not a JSON object")
        except (DefinitionError, ValueError) as err:
            error = str(err)
            log.warning("workflow %s failed at start: %s", s.execution_id, error)
            write = StepWrite(
                s.execution_id,
                None,
                status=ExecutionState.FAILED,
                create=new,
                finish=WorkflowFinish(ExecutionState.FAILED, {"succeeded": False, "error": error}, error, now),
            )
            return None, write
        digest = compiled.workflow.digest
        state = WorkflowState.new(
            parameters=parameters,
            depth=s.depth,
            run_cap=self._settings.workflow_run_cap,
            depth_cap=self._settings.workflow_max_depth,
            template_limits=TemplateLimits(
                max_bytes=self._settings.template_max_bytes, max_steps=self._settings.template_max_steps
            ),
        )
        if s.from_tasks and seed is not None:
            from_tasks = list(s.from_tasks)
            step = start_from(
                compiled.workflow,
                state,
                seed=seed_entries(seed, from_tasks),
                from_tasks=from_tasks,
                task_inputs=task_inputs,
                now=now,
            )
        else:
            step = start(compiled.workflow, state, now=now)
        loaded = LoadedWorkflow(
            s.execution_id, s.action_ref, compiled.workflow, state, 1, s.depth, traceparent, 1, secrets
        )
        write = StepWrite(
            s.execution_id,
            None,
            status=state.status,
            create=NewWorkflow(s.execution_id, s.action_ref, digest, s.depth, traceparent, now),
            definition=DefinitionRow(digest, compiled.json) if self._definitions.needs_storing(digest) else None,
        )
        add_step(write, loaded, step, now)
        write.entries = state.to_entries()  # a new workflow writes all its entries, not just the changed
        return loaded, write

    async def _load(self, workflow_id: str) -> LoadedWorkflow | None:
        async with self._db.read() as conn:
            found = await load_workflow(conn, workflow_id)
        if found is None:
            return None
        row = found.row
        if not row.definition_digest:
            return None  # failed at start: no definition, nothing can advance it
        compiled = await self._definitions.by_digest(row.definition_digest)
        entries, secrets = WorkflowSecrets.of_entries(self._sealer, found.entries)
        state = WorkflowState.from_entries(entries)
        return LoadedWorkflow(
            row.id, row.action_ref, compiled, state, row.version, row.depth, row.traceparent, found.next_seq, secrets
        )

    async def _apply(self, workflow_id: str, batch: list[Pending]) -> list[EventOutcome]:
        """Applies a mailbox batch as one step; recomputed from a fresh load on a lost CAS race."""
        for _ in range(MAX_CONFLICT_RETRIES):
            async with self._locks.hold(workflow_id):
                loaded = self._cache.get(workflow_id)
                fresh = loaded is None
                if loaded is None:
                    loaded = await self._load(workflow_id)
                if loaded is None:  # unknown, or failed at start: nothing can advance it
                    timers: dict[str, TimerRow | None] = {p.fired_timer: None for p in batch if p.fired_timer}
                    if timers:
                        await self._commit(StepWrite(workflow_id, None, timers=timers))
                    return [EventOutcome.UNKNOWN] * len(batch)
                write = self._compute(loaded, batch, fresh=fresh)
                if write is None:
                    return [EventOutcome.UNCHANGED] * len(batch)
                try:
                    outcome = await self._commit(write if loaded.secrets is None else loaded.secrets.stored(write))
                except BaseException:
                    self._cache.pop(workflow_id, None)  # memory is ahead of the database now
                    raise
                if outcome == StepOutcome.CONFLICT:
                    self._cache.pop(workflow_id, None)
                    metrics.WORKFLOW_CONFLICTS.inc()
                    log.info("workflow %s moved on elsewhere; recomputing %d events", workflow_id, len(batch))
                    continue
                if write.bump:
                    loaded.version += 1
                if loaded.state.finished:
                    self._cache.pop(workflow_id, None)
                else:
                    self._cache[workflow_id] = loaded
                self._after_commit(workflow_id, depth=loaded.depth, traceparent=loaded.traceparent, write=write)
                if write.status == ExecutionState.PAUSED and loaded.depth > 0:
                    report = asyncio.create_task(self._report_paused(workflow_id))
                    self._reports.add(report)
                    report.add_done_callback(self._reports.discard)
                metrics.WORKFLOW_STEPS.inc()
                return [EventOutcome.APPLIED] * len(batch)
        raise RuntimeError(f"workflow {workflow_id}: gave up after {MAX_CONFLICT_RETRIES} compare-and-set conflicts")

    def _compute(self, loaded: LoadedWorkflow, batch: list[Pending], *, fresh: bool) -> StepWrite | None:
        """Runs the events through the engine into one write; None when there is nothing to write."""
        now = time.time()
        write = StepWrite(loaded.id, loaded.version)
        changed = False
        # Not the SDK's current-span machinery: with nothing exported, it cost as much per step as
        # the engine itself (profiled on a 200-step chain).
        # Task outcomes and timers processed as one batch: a CONSUMER span, under the workflow's
        # execution span, and the parent of the executions of the tasks the step starts.
        span, write.traceparent = start_span(
            _tracer,
            "workflow.advance",
            loaded.traceparent,
            {"attune.execution.id": loaded.id, "messaging.batch.message_count": len(batch), **_ADVANCE_MESSAGES},
            kind=SpanKind.CONSUMER,
        )
        try:
            for pending in batch:
                if pending.fired_timer is not None:
                    write.timers[pending.fired_timer] = None
                step = pending.event(loaded.compiled, loaded.state, now)
                if step.changed or step.commands:
                    changed = True
                    add_step(write, loaded, step, now)
                if pending.ended_run is not None:
                    write.ended_runs.append(pending.ended_run)
        except BaseException as err:
            span.record_exception(err)
            raise
        finally:
            span.end()
        if changed:
            write.status = loaded.state.status
            return write
        if fresh and not write.ended_runs and not write.timers:
            return None
        # Nothing for the engine (duplicates, stale timers): only bookkeeping rows, but check the
        # version — a cached copy may be stale if another replica advanced the workflow.
        write.bump = False
        return write

    def _after_commit(self, workflow_id: str, *, depth: int, traceparent: str, write: StepWrite) -> None:
        """Hands the committed step's commands to the carrier and the timer loop."""
        children = [
            PendingChild.of(
                workflow_id,
                run.run_key,
                run.task_name,
                run.run,
                run.item_index,
                run.attempt,
                run.action_ref,
                run.request,
                depth=depth,
                traceparent=write.traceparent or traceparent,
            )
            for run in write.new_runs
        ]
        if children:
            self._carrier.add_children(children)
        if write.cancel_runs:
            self._carrier.add_cancels([RunRef(workflow_id, key) for key in write.cancel_runs])
        for timer in write.timers.values():
            if timer is not None:
                self.on_timer_set(timer.fire_at)
        if (f := write.finish) is not None:
            self._carrier.add_finish(
                PendingFinish(workflow_id, f.status, f.result, f.error, write.traceparent or traceparent, f.at)
            )


def _log_failure(err: BaseException, what: str, msg: str, execution_id: str) -> None:
    """An event that failed: an outage once per interval for all events alike (`what` names
    them), anything else with the execution's id and the traceback."""
    if is_unavailable(err):
        log_failed_round(_outages, what, err)
    else:
        log.error(msg, execution_id, exc_info=err)


async def _each(calls: list[Coroutine[Any, Any, None]]) -> list[BaseException | None]:
    """Runs the calls concurrently; each one's exception or None. A single call (a chain's
    outcome) is awaited in place: a task for it would cost a loop turn on every step."""
    if len(calls) == 1:
        try:
            await calls[0]
        except Exception as err:
            return [err]
        return [None]
    return list(await asyncio.gather(*calls, return_exceptions=True))
