"""The parsed, validated form of a workflow document (docs/workflows.md).

Legacy task fields (``on_success``, ``decision``, task-level ``publish``, …) are
already folded into ``next`` here, so the rest of the engine sees one shape.
Every class converts to and from plain JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["COMMAND_RETRIES", "ENGINE_COMMANDS", "RetrySpec", "TaskSpec", "TransitionSpec", "WorkflowSpec"]

Publish = tuple[tuple[str, Any], ...]
#: Engine commands: reserved words a transition's ``do`` may name besides tasks (docs/workflows.md).
ENGINE_COMMANDS = frozenset({"continue", "fail", "noop", "retry"})
#: How many times ``do: retry`` runs a task again when the task has no ``retry`` block.
COMMAND_RETRIES = 3
#: The longest retry wait, in seconds: a century.
_LONGEST_WAIT = 100 * 365 * 24 * 3600.0


@dataclass(frozen=True)
class RetrySpec:
    """``retry``: re-run up to ``count`` times, waiting ``delay`` with ``backoff``."""

    count: int
    delay: float = 0.0
    backoff: str = "constant"  # constant | linear | exponential
    max_delay: float | None = None
    when: str | None = None

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based), at most a century (so a long
        exponential backoff neither overflows nor sets a timer that never fires)."""
        if self.backoff == "linear":
            wait = self.delay * retry_number
        elif self.backoff == "exponential":
            wait = self.delay * 2.0 ** min(retry_number - 1, 1000)
        else:
            wait = self.delay
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        return min(float(wait), _LONGEST_WAIT)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "delay": self.delay,
            "backoff": self.backoff,
            "max_delay": self.max_delay,
            "when": self.when,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetrySpec:
        return cls(count=d["count"], delay=d["delay"], backoff=d["backoff"], max_delay=d["max_delay"], when=d["when"])


@dataclass(frozen=True)
class TransitionSpec:
    """One ``next`` entry: fires when ``when`` holds (None = always).

    ``origin`` is the document path it came from (``next[0]``, ``decision[1]``,
    ``on_success``…) and ``do_field``/``publish_field`` the paths of its parts,
    so errors point at what the author wrote, legacy forms included.
    """

    when: str | bool | None = None
    publish: Publish = ()
    do: tuple[str, ...] = ()
    origin: str = "next"
    do_field: str = "next.do"
    publish_field: str = "next.publish"

    def to_dict(self) -> dict[str, Any]:
        return {
            "when": self.when,
            "publish": [[k, v] for k, v in self.publish],
            "do": list(self.do),
            "origin": self.origin,
            "do_field": self.do_field,
            "publish_field": self.publish_field,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransitionSpec:
        return cls(
            when=d["when"],
            publish=tuple((k, v) for k, v in d["publish"]),
            do=tuple(d["do"]),
            origin=d["origin"],
            do_field=d["do_field"],
            publish_field=d["publish_field"],
        )


@dataclass(frozen=True)
class TaskSpec:
    """One task of a workflow."""

    name: str
    action: str
    input: dict[str, Any] = field(default_factory=dict)
    next: tuple[TransitionSpec, ...] = ()
    join: str | int | None = None  # "all" | N
    with_items: str | list[Any] | None = None
    #: The named form ``host, command in {{ … }}``: the names each item binds (``with_items``
    #: then holds the expression after ``in``); empty for the plain form (``item`` is the element).
    item_names: tuple[str, ...] = ()
    concurrency: int | str | None = None
    retry: RetrySpec | None = None
    timeout: float | None = None
    delay: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "action": self.action,
            "input": self.input,
            "next": [t.to_dict() for t in self.next],
            "join": self.join,
            "with_items": self.with_items,
            "concurrency": self.concurrency,
            "retry": self.retry.to_dict() if self.retry else None,
            "timeout": self.timeout,
            "delay": self.delay,
        }
        if self.item_names:  # only when used, so workflows compiled before it keep their digest
            d["item_names"] = list(self.item_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(
            name=d["name"],
            action=d["action"],
            input=d["input"],
            next=tuple(TransitionSpec.from_dict(t) for t in d["next"]),
            join=d["join"],
            with_items=d["with_items"],
            item_names=tuple(d.get("item_names", ())),
            concurrency=d["concurrency"],
            retry=RetrySpec.from_dict(d["retry"]) if d["retry"] else None,
            timeout=d["timeout"],
            delay=d["delay"],
        )


@dataclass(frozen=True)
class WorkflowSpec:
    """A validated workflow. ``vars`` and ``output_map`` keep document order."""

    source: str
    tasks: tuple[TaskSpec, ...]
    version: str | None = None
    vars: Publish = ()
    output_map: Publish = ()
    timeout: float | None = None
    cancellation_policy: str = "allow_finish"
    ref: str | None = None
    label: str | None = None
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> TaskSpec:
        """The task called ``name`` (KeyError if there is none)."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "tasks": [t.to_dict() for t in self.tasks],
            "vars": [[k, v] for k, v in self.vars],
            "output_map": [[k, v] for k, v in self.output_map],
            "timeout": self.timeout,
            "cancellation_policy": self.cancellation_policy,
            "ref": self.ref,
            "label": self.label,
            "description": self.description,
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkflowSpec:
        return cls(
            source=d["source"],
            version=d["version"],
            tasks=tuple(TaskSpec.from_dict(t) for t in d["tasks"]),
            vars=tuple((k, v) for k, v in d["vars"]),
            output_map=tuple((k, v) for k, v in d["output_map"]),
            timeout=d["timeout"],
            cancellation_policy=d["cancellation_policy"],
            ref=d["ref"],
            label=d["label"],
            description=d["description"],
            parameters=d["parameters"],
        )
