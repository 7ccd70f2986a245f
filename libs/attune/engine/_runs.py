"""Starting task runs: joins, run cap, delays, with_items waves, attempts and retries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ._data import kind_of
from ._event import MAX_REASON, EndedRun, Event, clipped
from ._states import ABANDONED, CANCELLED, FAILED, SUCCEEDED, TIMEOUT
from .commands import SetTimer, StartTask, TaskEnded, TaskRunKey
from .context import NO_ITEM, base_context, run_context
from .errors import ExpressionError
from .expressions import NestedExpressionError, render
from .spec import COMMAND_RETRIES, TaskSpec

RETRYABLE_STATES = frozenset({FAILED, TIMEOUT, ABANDONED})


def transition_into(ev: Event, target: str, source: str | None) -> None:
    """A transition from ``source`` (None for entry tasks) fired into ``target``."""
    if ev.state.closing is not None:
        return
    task = ev.wf.tasks[target]
    if task.join is not None and source is not None and not _arrive(ev, task, source):
        return
    schedule_run(ev, task)


def _arrive(ev: Event, task: TaskSpec, source: str) -> bool:
    """Record ``source`` at the join barrier of ``task``; True when the barrier is met.

    Arrival markers hold the barrier generation they count toward, so meeting a
    barrier never has to delete them: a join on a cycle just moves to the next
    generation (a fresh barrier), other joins are closed by ``jdone``.
    """
    state, name = ev.state, task.name
    on_cycle = name in ev.wf.join_on_cycle
    if not on_cycle and state.get("jdone:" + name):
        return False  # the join already ran once: later arrivals are discarded
    generation = state.get("jgen:" + name, 0)
    mark = f"ja:{name}/{source}"
    if state.get(mark) == generation:
        return False  # this source already counted toward the open barrier
    barrier = state.get("j:" + name)
    arrived = (barrier["arrived"] if barrier else 0) + 1
    if arrived < ev.wf.join_required(task):
        state.set(mark, generation)
        state.set("j:" + name, {"arrived": arrived})
        return False
    state.delete("j:" + name)
    if on_cycle:
        state.set("jgen:" + name, generation + 1)
    else:
        state.set("jdone:" + name, True)
    return True


def schedule_run(ev: Event, task: TaskSpec) -> None:
    """Start a new run of ``task`` now, or after its ``delay`` (a durable timer)."""
    state, name = ev.state, task.name
    run = state.get("runs:" + name, 0) + 1
    cap = state.meta["run_cap"]
    if run > cap:
        ev.fail(
            f'task "{name}" would start run {run}, over the cap of {cap} runs per workflow '
            f"execution (a loop that never exits?)"
        )
        return
    state.set("runs:" + name, run)
    if task.delay:
        timer_id = f"delay:{name}/{run}"
        fire_at = ev.now + task.delay
        state.set("t:" + timer_id, {"purpose": "delay", "task": name, "run": run, "fire_at": fire_at})
        ev.emit(SetTimer(timer_id, fire_at, "delay"))
        return
    begin_run(ev, task, run)


def begin_run(ev: Event, task: TaskSpec, run: int) -> None:
    """Run ``task``: one attempt, or the first wave of its with_items children."""
    if task.with_items is None:
        inp = _render_input(ev, task, NO_ITEM, None)
        if inp is not None:
            start_attempt(ev, task, TaskRunKey(task.name, run, None, 1), inp)
        return
    ctx = base_context(ev.state)
    try:
        items = render(task.with_items, ctx)
    except ExpressionError as err:
        ev.fail(f'task "{task.name}", field with_items: {err}')
        return
    if not isinstance(items, list):
        ev.fail(f'task "{task.name}", field with_items: must give a list, got {kind_of(items)}')
        return
    if task.item_names:
        items = _bind_item_names(ev, task, items)
        if items is None:
            return
    concurrency = len(items)
    if task.concurrency is not None:
        try:
            concurrency = render(task.concurrency, ctx)
        except ExpressionError as err:
            ev.fail(f'task "{task.name}", field concurrency: {err}')
            return
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            ev.fail(f'task "{task.name}", field concurrency: must give an integer >= 1, got {concurrency!r}')
            return
    if not items:
        ev.run_ended(task, run, SUCCEEDED, [])
        return
    run_id = f"{task.name}/{run}"
    ev.state.set("items:" + run_id, list(items))
    ev.state.set("run:" + run_id, {"next": 0, "active": 0, "count": len(items), "concurrency": concurrency, "bad": []})
    _launch_items(ev, task, run)


def _bind_item_names(ev: Event, task: TaskSpec, items: list[Any]) -> list[dict[str, Any]] | None:
    """The named form: each element unpacked into ``{name: value}`` (one name takes the element
    whole). Every element is checked before any item starts; None when one does not fit."""
    names = task.item_names
    if len(names) == 1:
        return [{names[0]: element} for element in items]
    bound = []
    for index, element in enumerate(items):
        if isinstance(element, list) and len(element) == len(names):
            bound.append(dict(zip(names, element, strict=True)))
            continue
        if isinstance(element, list):
            what = f"has {len(element)} value{'' if len(element) == 1 else 's'}"
        else:
            what = f"is {kind_of(element)}"
        ev.fail(
            f'task "{task.name}", field with_items: item {index} {what}, '
            f"expected a list of {len(names)} values for {', '.join(names)}"
        )
        return None
    return bound


def _launch_items(ev: Event, task: TaskSpec, run: int) -> None:
    """Start items while fewer than ``concurrency`` are in flight."""
    run_id = f"{task.name}/{run}"
    rec = dict(ev.state.get("run:" + run_id))
    items = ev.state.get("items:" + run_id)
    while (
        rec["active"] < rec["concurrency"]
        and rec["next"] < rec["count"]
        and not rec["bad"]
        and ev.state.closing is None
    ):
        index = rec["next"]
        inp = _render_input(ev, task, items[index], index)
        if inp is None:
            break
        rec["next"] += 1
        rec["active"] += 1
        start_attempt(ev, task, TaskRunKey(task.name, run, index, rec.get("base", 1)), inp)
    ev.state.set("run:" + run_id, rec)


def _render_input(ev: Event, task: TaskSpec, item: Any, index: int | None) -> dict[str, Any] | None:
    try:
        rendered: dict[str, Any] = ev.wf.input_renderer(task)(base_context(ev.state, item=item, index=index))
    except NestedExpressionError as err:
        ev.fail(f'task "{task.name}", field input{err.subpath}: {err.detail}')
        return None
    except ExpressionError as err:
        ev.fail(f'task "{task.name}", field input: {err}')
        return None
    extra = ev.state.meta.get("rerun_inputs")  # a re-run's new input for the tasks it names (_rerun.py)
    if extra and task.name in extra:
        return {**rendered, **extra[task.name]}
    return rendered


def start_attempt(ev: Event, task: TaskSpec, key: TaskRunKey, inp: dict[str, Any]) -> None:
    """Ask for one child execution; remember its input only if a retry may need it."""
    keep = task.retry is not None or task.name in ev.wf.retried
    ev.state.set("k:" + key.as_str(), {"input": inp} if keep else {})
    ev.emit(StartTask(key, task.action, inp, task.timeout))


def attempt_ended(ev: Event, ended: TaskEnded) -> None:
    """A running child ended: retry it, or finish its item or run."""
    key = ended.key
    record = ev.state.get("k:" + key.as_str())
    if record is None:
        return  # not running: a duplicate or late report changes nothing
    ev.state.delete("k:" + key.as_str())
    task = ev.wf.tasks[key.task]
    if task.retry is not None and _maybe_retry(ev, task, ended, record):
        return
    if key.item is None:
        ev.run_ended(task, key.run, ended.state, ended.result, key.attempt, ended.error, record.get("input"))
    else:
        _item_finished(ev, task, ended)


def _maybe_retry(ev: Event, task: TaskSpec, ended: TaskEnded, record: dict[str, Any]) -> bool:
    """Schedule the next attempt when retry applies; True if the ending was consumed."""
    retry, key = task.retry, ended.key
    assert retry is not None
    if ev.state.closing is not None or key.attempt > retry.count:
        return False
    if retry.when is not None:
        item = NO_ITEM if key.item is None else ev.state.get(f"items:{task.name}/{key.run}")[key.item]
        ctx = run_context(ev.state, ended.state, ended.result, item=item, index=key.item)
        try:
            wanted = bool(render(retry.when, ctx))
        except ExpressionError as err:
            ev.fail(f'task "{task.name}", field retry.when: {err}')
            return True
    else:
        wanted = ended.state in RETRYABLE_STATES
    if not wanted:
        return False
    next_key = replace(key, attempt=key.attempt + 1)
    wait = retry.delay_before(key.attempt)
    if wait > 0:
        timer_id = "retry:" + next_key.as_str()
        fire_at = ev.now + wait
        ev.state.set(
            "t:" + timer_id,
            {"purpose": "retry", "key": next_key.as_str(), "input": record["input"], "fire_at": fire_at},
        )
        ev.emit(SetTimer(timer_id, fire_at, "retry"))
    else:
        start_attempt(ev, task, next_key, record["input"])
    return True


def _item_finished(ev: Event, task: TaskSpec, ended: TaskEnded) -> None:
    key, state = ended.key, ended.state
    run_id = f"{task.name}/{key.run}"
    rec = dict(ev.state.get("run:" + run_id))
    rec["active"] -= 1
    if task.name in ev.wf.retried:  # the highest attempt so far: `do: retry` numbers the next one above it
        rec["top"] = max(rec.get("top", 1), key.attempt)
    if state != SUCCEEDED:
        rec["bad"] = [*rec["bad"], state]
        if state != CANCELLED and "why" not in rec:
            rec["why"] = _item_reason(ended)  # the first item that failed says why the run did
    ev.state.set("run:" + run_id, rec)
    ev.state.set_value(f"ir:{run_id}/{key.item}", ended.result)
    _launch_items(ev, task, key.run)
    rec = ev.state.get("run:" + run_id)
    if rec["active"] > 0:
        return
    if rec["next"] < rec["count"] and not rec["bad"] and ev.state.closing is None:
        return  # cannot happen (launch keeps one in flight); kept as a guard
    results = []
    for i in range(rec["count"]):
        results.append(ev.state.get_value(f"ir:{run_id}/{i}"))
        ev.state.delete(f"ir:{run_id}/{i}")
    if task.name not in ev.wf.retried:  # else kept for `do: retry`; run_finished drops them
        ev.state.delete("run:" + run_id)
        ev.state.delete("items:" + run_id)
    ev.run_ended(task, key.run, _items_state(rec), results, 1, rec.get("why"))


def _item_reason(ended: TaskEnded) -> str:
    key = ended.key
    text = f"item {key.item} ended {ended.state}"
    if key.attempt > 1:
        text += f" after {key.attempt} attempts"
    return text if not ended.error else f"{text}: {clipped(ended.error, MAX_REASON - len(text) - 2)}"


def _items_state(rec: dict[str, Any]) -> str:
    bad = [s for s in rec["bad"] if s != CANCELLED]
    if bad:
        return FAILED
    if rec["bad"] or rec["next"] < rec["count"]:
        return CANCELLED
    return SUCCEEDED


def timer_elapsed(ev: Event, timer: dict[str, Any]) -> None:
    """A delay or retry timer fired: start what it was holding back."""
    if timer["purpose"] == "delay":
        begin_run(ev, ev.wf.tasks[timer["task"]], timer["run"])
    elif timer["purpose"] == "retry_items":
        _launch_items(ev, ev.wf.tasks[timer["task"]], timer["run"])
    else:
        key = TaskRunKey.parse(timer["key"])
        start_attempt(ev, ev.wf.tasks[key.task], key, timer["input"])


def retry_run(ev: Event, ended: EndedRun) -> bool:
    """``do: retry``: start the next attempt of the run that ended; False when none is left.

    One budget per run, shared with the task's ``retry`` block: at most ``retry.count`` (or
    COMMAND_RETRIES) retries, waiting as the block says (no wait without one). A with_items run
    runs every item again, numbered above the highest attempt any item reached."""
    task, state = ended.task, ev.state
    if state.closing is not None:
        return False
    limit = task.retry.count if task.retry is not None else COMMAND_RETRIES
    if task.with_items is None:
        if ended.attempts > limit or ended.input is None:
            return False
        key = TaskRunKey(task.name, ended.run, None, ended.attempts + 1)
        wait = task.retry.delay_before(ended.attempts) if task.retry is not None else 0.0
        if wait > 0:
            timer_id = "retry:" + key.as_str()
            fire_at = ev.now + wait
            state.set(
                "t:" + timer_id, {"purpose": "retry", "key": key.as_str(), "input": ended.input, "fire_at": fire_at}
            )
            ev.emit(SetTimer(timer_id, fire_at, "retry"))
        else:
            start_attempt(ev, task, key, ended.input)
        return True
    run_id = f"{task.name}/{ended.run}"
    rec = state.get("run:" + run_id)
    if rec is None or rec.get("top", 1) > limit:
        return False  # an empty list has nothing to run again
    top = rec.get("top", 1)
    base = top + 1
    fresh = {k: v for k, v in rec.items() if k != "why"}  # the new attempt's first failure says why
    state.set("run:" + run_id, {**fresh, "next": 0, "active": 0, "bad": [], "base": base, "top": base})
    wait = task.retry.delay_before(top) if task.retry is not None else 0.0
    if wait > 0:
        timer_id = f"retry:{run_id}/*/{base}"
        fire_at = ev.now + wait
        state.set("t:" + timer_id, {"purpose": "retry_items", "task": task.name, "run": ended.run, "fire_at": fire_at})
        ev.emit(SetTimer(timer_id, fire_at, "retry"))
    else:
        _launch_items(ev, task, ended.run)
    return True


def drop_items(ev: Event, ended: EndedRun) -> None:
    """Forget the item list and counters a with_items run kept for a ``do: retry`` not taken."""
    if ended.task.with_items is not None and ended.task.name in ev.wf.retried:
        ev.state.delete(f"run:{ended.task.name}/{ended.run}")
        ev.state.delete(f"items:{ended.task.name}/{ended.run}")


#: The state entries that hold a with_items run's progress: "run:<task>/<run>".
ITEM_RUN_PREFIX = "run:"


def item_counts(entries: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """How many items each with_items run not yet ended has, started or not, by (task, run), from
    a workflow's stored state entries (those whose key starts with ITEM_RUN_PREFIX suffice). A
    reader of a run's progress needs it: its task runs exist only for the items started."""
    counts: dict[tuple[str, int], int] = {}
    for key, value in entries.items():
        if not key.startswith(ITEM_RUN_PREFIX) or not isinstance(value, dict):
            continue
        task, _, run = key[len(ITEM_RUN_PREFIX) :].rpartition("/")
        count = value.get("count")
        if task and run.isdigit() and isinstance(count, int):
            counts[(task, int(run))] = count
    return counts
