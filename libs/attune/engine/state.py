"""``WorkflowState``: one workflow execution's state, held as independent entries.

Each entry is a key → JSON value, so the coordinator persists only the entries an
event changed (``Step.changed``), never a whole snapshot. Entry keys:

==========================  ===================================================
``wf``                      status, closing reason, errors (+ how many more), caps, template limits,
                            depth, flags (``fail_output``: a ``do: fail`` ended it, render output_map)
``params``                  the workflow's parameters
``v:<name>``                ``{"value": …}`` a workflow variable (``vars``; last write wins)
``res:<task>``              ``{"value": …}`` the latest result of ``<task>``
``runs:<task>``             how many runs of ``<task>`` were started (run cap)
``k:<task/run/item/att>``   a child execution that is running (TaskRunKey.as_str)
``t:<timer_id>``            a pending timer (task delay or retry wait)
``run:<task>/<run>``        counters of a with_items run (next, active, failed; why it failed; for a
                            task that may ``do: retry``, the first and highest attempt numbers —
                            kept with ``items:`` until its transitions have fired)
``items:<task>/<run>``      the evaluated item list of a with_items run (named items: mappings)
``ir:<task>/<run>/<i>``     ``{"value": …}`` the result of one item of a with_items run
``j:<task>``                an open join barrier: how many sources arrived
``ja:<task>/<source>``      the barrier generation ``source`` last arrived at
``jgen:<task>``             barrier generation of a join on a cycle (one per run)
``jdone:<task>``            a join not on a cycle already ran (later arrivals dropped)
==========================  ===================================================

No entry value is ever None (None in ``Step.changed`` means "deleted"), which is
why data that may be null is wrapped as ``{"value": …}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.states import WORKFLOW_TERMINAL

from ._bounds import DEFAULT_LIMITS, TemplateLimits
from ._states import RUNNING
from .errors import WorkflowStateError

__all__ = ["TERMINAL_STATUSES", "WorkflowState"]

TERMINAL_STATUSES = WORKFLOW_TERMINAL
_META = "wf"


class WorkflowState:
    """Entries of one workflow execution plus in-memory indexes rebuilt on load.

    The machine functions (``start``, ``task_ended``…) are the only writers; they
    record every change so ``Step.changed`` is exactly the entries touched.
    """

    def __init__(self, entries: dict[str, Any]) -> None:
        if not isinstance(entries.get(_META), dict):
            raise WorkflowStateError("state entries have no 'wf' meta entry")
        self._entries = entries
        self._changed: dict[str, Any] = {}
        # insertion-ordered sets (dicts) so command order is deterministic
        self.running: dict[str, None] = {}
        self.timers: dict[str, None] = {}
        self.open_joins: dict[str, None] = {}
        self.held: dict[str, None] = {}  # launches held back while paused (``hold:k:``)
        for key in entries:
            self._index(key, present=True)
        #: What each template evaluation may build and do, as the workflow was started with.
        self.template_limits = TemplateLimits.from_meta(entries[_META])

    @classmethod
    def new(
        cls,
        *,
        parameters: dict[str, Any],
        depth: int = 0,
        run_cap: int = 1000,
        depth_cap: int = 10,
        template_limits: TemplateLimits = DEFAULT_LIMITS,
    ) -> WorkflowState:
        """A fresh state for a workflow about to ``start``; ``depth`` is its nesting level."""
        meta: dict[str, Any] = {
            "status": RUNNING,
            "closing": None,
            "errors": [],
            "depth": depth,
            "depth_cap": depth_cap,
            "run_cap": run_cap,
            "started": False,
            "timeout_timer": False,
            **template_limits.to_meta(),
        }
        return cls({_META: meta, "params": dict(parameters)})

    @classmethod
    def from_entries(cls, entries: Mapping[str, Any]) -> WorkflowState:
        """Rebuild a state from persisted entries (as returned by ``to_entries``)."""
        return cls(dict(entries))

    def to_entries(self) -> dict[str, Any]:
        """All entries (a new dict; values are shared, treat them as read-only)."""
        return dict(self._entries)

    # -- read ---------------------------------------------------------------
    @property
    def status(self) -> str:
        """running | canceling | pausing | paused | succeeded | failed | cancelled | timeout (an ``ExecutionState``
        value; read back from stored JSON it is the plain string, which compares equal)."""
        return self._entries[_META]["status"]  # type: ignore[no-any-return]  # a JSON string

    @property
    def meta(self) -> dict[str, Any]:
        """The ``wf`` entry (read-only; change it with ``update_meta``)."""
        # Entries hold JSON values; the wf entry is always an object.
        return self._entries[_META]  # type: ignore[no-any-return]

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def closing(self) -> str | None:
        """Why the workflow stopped scheduling (failed | cancelled | timeout) or None."""
        return self._entries[_META]["closing"]  # type: ignore[no-any-return]  # a JSON string or null

    @property
    def parameters(self) -> dict[str, Any]:
        # Entries hold JSON values; the params entry is always an object.
        return self._entries["params"]  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Scan for keys (O(entries): only for rare whole-namespace reads)."""
        return [k for k in self._entries if k.startswith(prefix)]

    # -- write --------------------------------------------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        """Read a wrapped data entry (``v:``, ``res:``, ``ir:``)."""
        box = self._entries.get(key)
        return default if box is None else box["value"]

    def set_value(self, key: str, value: Any) -> None:
        """Write a data entry wrapped as ``{"value": value}`` (value may be None)."""
        self.set(key, {"value": value})

    def set(self, key: str, value: Any) -> None:
        """Set an entry and record the change (value must not be None: None means deleted)."""
        if value is None:
            raise WorkflowStateError(f"entry {key!r} cannot be set to None (None marks a deletion)")
        if key not in self._entries:
            self._index(key, present=True)
        self._entries[key] = value
        self._changed[key] = value

    def delete(self, key: str) -> None:
        """Delete an entry (if present) and record the change as None."""
        if key in self._entries:
            del self._entries[key]
            self._index(key, present=False)
            self._changed[key] = None

    def update_meta(self, **fields: Any) -> None:
        self.set(_META, {**self._entries[_META], **fields})

    def take_changes(self) -> dict[str, Any]:
        """Return and reset the entries changed since the last call."""
        changed, self._changed = self._changed, {}
        return changed

    def _index(self, key: str, *, present: bool) -> None:
        if key.startswith("k:"):
            index, name = self.running, key[2:]
        elif key.startswith("t:"):
            index, name = self.timers, key[2:]
        elif key.startswith("j:"):
            index, name = self.open_joins, key[2:]
        elif key.startswith("hold:k:"):
            index, name = self.held, key[7:]
        else:
            return
        if present:
            index[name] = None
        else:
            index.pop(name, None)
