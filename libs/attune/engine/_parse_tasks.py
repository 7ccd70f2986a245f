"""Validation of one task map and folding of legacy fields into ``next``."""

from __future__ import annotations

import re
from typing import Any

from ._problems import Problems, is_seconds, where
from .spec import ENGINE_COMMANDS, Publish, RetrySpec, TaskSpec, TransitionSpec

TASK_FIELDS = frozenset(
    {
        "name",
        "action",
        "input",
        "next",
        "join",
        "with_items",
        "concurrency",
        "retry",
        "timeout",
        "delay",
        "description",
        # legacy forms, folded into next
        "on_success",
        "on_failure",
        "on_timeout",
        "on_complete",
        "decision",
        "publish",
    }
)
_LEGACY_WHEN = {
    "on_success": "{{ succeeded() }}",
    "on_failure": "{{ failed() }}",
    "on_timeout": "{{ timed_out() }}",
    "on_complete": None,
}
_NEXT_FIELDS = frozenset({"when", "publish", "do"})
_RETRY_FIELDS = frozenset({"count", "delay", "backoff", "max_delay", "when"})
_BACKOFFS = ("constant", "linear", "exponential")
TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_ACTION_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)+$")
#: ``host, command in `` before the ``{{`` of a named with_items (the names are checked one by one).
_NAMED_ITEMS = re.compile(r"\s*(.*?)\s+in\s*", re.DOTALL)
_ITEM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_targets(value: Any, p: Problems, task: str, field: str) -> tuple[str, ...]:
    """``do`` targets: a name, a comma-separated string, or a list of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",")]
    elif isinstance(value, list) and all(isinstance(n, str) for n in value):
        names = [n.strip() for n in value]
    else:
        p.add(where(task, field), f"must be a task name, a comma-separated string or a list of names, got {value!r}")
        return ()
    if any(not n for n in names):
        p.add(where(task, field), f"has an empty task name in {value!r}")
    names = [n for n in names if n]
    _check_commands(names, p, task, field)
    return tuple(names)


def _check_commands(names: list[str], p: Problems, task: str, field: str) -> None:
    """Engine commands: at most one per ``do``, after its task names; ``noop`` stands alone."""
    commands = [n for n in names if n in ENGINE_COMMANDS]
    if not commands:
        return
    if len(commands) > 1:
        p.add(where(task, field), f"names more than one engine command ({', '.join(commands)}); use one")
    elif names[-1] != commands[0]:
        p.add(where(task, field), f"engine command `{commands[0]}` must come after the task names")
    elif commands[0] == "noop" and len(names) > 1:
        p.add(where(task, field), "`noop` starts nothing, so it cannot be listed with task names")


def parse_publish(value: Any, p: Problems, task: str | None, field: str) -> Publish:
    """``publish``/``vars``/``output_map``: a list of ``name: value`` maps or one mapping."""
    if value is None:
        return ()
    if isinstance(value, dict):
        maps: list[tuple[str, dict[str, Any]]] = [(field, value)]
    elif isinstance(value, list):
        maps = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict) or not entry:
                p.add(where(task, f"{field}[{i}]"), f"must be a `name: value` map, got {entry!r}")
                continue
            maps.append((f"{field}[{i}]", entry))
    else:
        p.add(where(task, field), f"must be a list of `name: value` maps or a mapping, got {value!r}")
        return ()
    items: list[tuple[str, Any]] = []
    for prefix, mapping in maps:
        for name, expr in mapping.items():
            if not isinstance(name, str) or not name:
                p.add(where(task, prefix), f"name {name!r} must be a non-empty string")
                continue
            p.templates(expr, task, f"{prefix}.{name}")
            items.append((name, expr))
    return tuple(items)


def _parse_when(value: Any, p: Problems, task: str, field: str) -> str | bool | None:
    if value is None or isinstance(value, bool):
        return value
    p.expression(value, task, field)
    return value if isinstance(value, str) else None


def _parse_next(raw: Any, p: Problems, task: str) -> list[TransitionSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add(where(task, "next"), f"must be a list of {{when, publish, do}} maps, got {raw!r}")
        return []
    out = []
    for i, entry in enumerate(raw):
        f = f"next[{i}]"
        if not isinstance(entry, dict):
            p.add(where(task, f), f"must be a map with when, publish, do; got {entry!r}")
            continue
        for key in entry:
            if key not in _NEXT_FIELDS:
                p.add(where(task, f"{f}.{key}"), "unknown field (expected when, publish, do)")
        out.append(
            TransitionSpec(
                when=_parse_when(entry.get("when"), p, task, f"{f}.when"),
                publish=parse_publish(entry.get("publish"), p, task, f"{f}.publish"),
                do=parse_targets(entry.get("do"), p, task, f"{f}.do"),
                origin=f,
                do_field=f"{f}.do",
                publish_field=f"{f}.publish",
            )
        )
    return out


def _fold_legacy(raw: dict[str, Any], p: Problems, task: str) -> list[TransitionSpec]:
    """Fold decision/on_*/publish into next entries, in that order (after ``next``)."""
    out: list[TransitionSpec] = []
    decision = raw.get("decision")
    if decision is not None:
        if not isinstance(decision, list):
            p.add(where(task, "decision"), f"must be a list of {{when, next}} maps, got {decision!r}")
        else:
            for i, entry in enumerate(decision):
                f = f"decision[{i}]"
                if not isinstance(entry, dict):
                    p.add(where(task, f), f"must be a map with when and next, got {entry!r}")
                    continue
                for key in entry:
                    if key not in ("when", "next"):
                        p.add(where(task, f"{f}.{key}"), "unknown field (expected when, next)")
                out.append(
                    TransitionSpec(
                        when=_parse_when(entry.get("when"), p, task, f"{f}.when"),
                        do=parse_targets(entry.get("next"), p, task, f"{f}.next"),
                        origin=f,
                        do_field=f"{f}.next",
                        publish_field=f"{f}.publish",
                    )
                )
    for legacy, when in _LEGACY_WHEN.items():
        if legacy in raw:
            out.append(
                TransitionSpec(
                    when=when,
                    do=parse_targets(raw[legacy], p, task, legacy),
                    origin=legacy,
                    do_field=legacy,
                    publish_field="publish",
                )
            )
    return out


def _attach_publish(entries: list[TransitionSpec], publish: Publish) -> list[TransitionSpec]:
    """Task-level publish joins the first ``succeeded()`` entry (or leads a new one)."""
    for i, entry in enumerate(entries):
        if isinstance(entry.when, str) and entry.when.replace(" ", "") == "{{succeeded()}}":
            # the task-level publish runs first, so its paths are named `publish.<var>`
            entries[i] = TransitionSpec(
                entry.when,
                publish + entry.publish,
                entry.do,
                entry.origin,
                entry.do_field,
                "publish" if not entry.publish else entry.publish_field,
            )
            return entries
    return [TransitionSpec("{{ succeeded() }}", publish, (), "publish", "publish", "publish"), *entries]


def _duration(raw: dict[str, Any], key: str, p: Problems, task: str, positive: bool, prefix: str = "") -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_seconds(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        p.add(where(task, prefix + key), f"must be a number of seconds {bound}, got {value!r}")
        return None
    return float(value)


def _parse_retry(raw: Any, p: Problems, task: str) -> RetrySpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        p.add(where(task, "retry"), f"must be a map with count, delay, backoff, max_delay, when; got {raw!r}")
        return None
    for key in raw:
        if key not in _RETRY_FIELDS:
            p.add(where(task, f"retry.{key}"), "unknown field (expected count, delay, backoff, max_delay, when)")
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        p.add(where(task, "retry.count"), f"must be an integer >= 1, got {count!r}")
        count = 1
    delay = _duration(raw, "delay", p, task, positive=False, prefix="retry.")
    max_delay = _duration(raw, "max_delay", p, task, positive=False, prefix="retry.")
    backoff = raw.get("backoff", "constant")
    if backoff not in _BACKOFFS:
        p.add(where(task, "retry.backoff"), f"must be one of {', '.join(_BACKOFFS)}, got {backoff!r}")
        backoff = "constant"
    when = raw.get("when")
    if when is not None:
        p.expression(when, task, "retry.when")
    return RetrySpec(
        count=count,
        delay=delay or 0.0,
        backoff=backoff,
        max_delay=max_delay,
        when=when if isinstance(when, str) else None,
    )


def _parse_with_items(value: Any, p: Problems, task: str) -> tuple[str | list[Any] | None, tuple[str, ...]]:
    """``with_items``: an expression, a literal list, or the named form ``a, b in {{ … }}``.

    Gives the items (the expression after ``in`` for the named form) and the item names.
    """
    if value is None:
        return None, ()
    if isinstance(value, list):
        p.templates(value, task, "with_items")
        return value, ()
    if not isinstance(value, str):
        p.add(where(task, "with_items"), f"must be an expression or a list, got {value!r}")
        return None, ()
    head, brace, rest = value.partition("{{")
    if not brace or not head.strip() or "{%" in head or "{#" in head:  # the plain form, or no {{ }}
        p.expression(value, task, "with_items")
        return value, ()
    found = _NAMED_ITEMS.fullmatch(head)
    if found is None:
        p.add(
            where(task, "with_items"),
            f"must be an expression, a list or `name[, name…] in {{{{ expression }}}}`, got {value!r}",
        )
        return None, ()
    names = _item_names(found.group(1), p, task)
    expression = brace + rest
    p.expression(expression, task, "with_items")
    return expression, names


def _item_names(text: str, p: Problems, task: str) -> tuple[str, ...]:
    """The names before ``in``: identifiers, distinct, not ``index``."""
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            p.add(where(task, "with_items"), f"has an empty item name in {text.strip()!r}")
        elif not _ITEM_NAME.match(name):
            p.add(
                where(task, "with_items"),
                f"item name {name!r} is not a name (letters, digits and _, not starting with a digit)",
            )
        elif name == "index":
            p.add(where(task, "with_items"), "item name 'index' is taken: `index` is the item's position")
        elif name in names:
            p.add(where(task, "with_items"), f"item name {name!r} is given twice")
        else:
            names.append(name)
    return tuple(names)


def parse_task(raw: Any, p: Problems, label: str) -> TaskSpec | None:
    """Validate one task map; ``label`` names it in errors until its name is known."""
    if not isinstance(raw, dict):
        p.add(f"field {label}", f"must be a task map, got {raw!r}")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not TASK_NAME.match(name):
        p.add(f"field {label}.name", f"task name must match {TASK_NAME.pattern}, got {name!r}")
        return None
    if name in ENGINE_COMMANDS:
        p.add(
            where(name, "name"),
            f'"{name}" is an engine command ({", ".join(sorted(ENGINE_COMMANDS))}) and cannot name a task',
        )
        return None
    for key in raw:
        if key not in TASK_FIELDS:
            p.add(where(name, key), "unknown field")
    action = raw.get("action")
    if action is None:
        p.add(where(name, "action"), "missing action")
    elif not isinstance(action, str) or not _ACTION_REF.match(action):
        p.add(where(name, "action"), f"must be an action ref like pack.name, got {action!r}")
    inp = raw.get("input")
    if inp is None:
        inp = {}
    elif not isinstance(inp, dict):
        p.add(where(name, "input"), f"must be a mapping, got {inp!r}")
        inp = {}
    p.templates(inp, name, "input")
    nxt = _parse_next(raw.get("next"), p, name) + _fold_legacy(raw, p, name)
    if "publish" in raw:
        nxt = _attach_publish(nxt, parse_publish(raw["publish"], p, name, "publish"))
    join = raw.get("join")
    if join is not None and join != "all" and (not isinstance(join, int) or isinstance(join, bool) or join < 1):
        p.add(where(name, "join"), f"must be 'all' or an integer >= 1, got {join!r}")
        join = None
    with_items, item_names = _parse_with_items(raw.get("with_items"), p, name)
    concurrency = raw.get("concurrency")
    if concurrency is not None:
        if "with_items" not in raw:
            p.add(where(name, "concurrency"), "only applies to a task with with_items")
        if isinstance(concurrency, str):
            p.expression(concurrency, name, "concurrency")
        elif not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            p.add(where(name, "concurrency"), f"must be an integer >= 1 or an expression, got {concurrency!r}")
            concurrency = None
    return TaskSpec(
        name=name,
        action=action if isinstance(action, str) else "",
        input=inp,
        next=tuple(nxt),
        join=join,
        with_items=with_items,
        item_names=item_names,
        concurrency=concurrency,
        retry=_parse_retry(raw.get("retry"), p, name),
        timeout=_duration(raw, "timeout", p, name, positive=True),
        delay=_duration(raw, "delay", p, name, positive=False),
    )
