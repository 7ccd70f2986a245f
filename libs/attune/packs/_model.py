"""What a registered pack is: its metadata, its actions, and every file it ships."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attune.packs._concurrency import ConcurrencyPolicy

__all__ = ["RUNNER_TYPES", "SLOT_FREE_RUNTIMES", "ActionDefinition", "PackBundle", "pack_digest"]

# "workflow" actions are orchestrated by the coordinator and never reach a worker; nor do "ask"
# actions (approvals, `core.ask`): the scheduler holds them `pending` until they are answered.
RUNNER_TYPES = ("shell", "python", "nodejs", "noop", "ask", "workflow")
#: Runtimes that start no process: the worker runs them in its own event loop, so they hold no
#: slot of its capacity (which bounds concurrent action processes) and never wait for one; the
#: scheduler never counts them against a worker and the worker's release of one is not urgent.
SLOT_FREE_RUNTIMES = frozenset({"noop"})


@dataclass(frozen=True, kw_only=True)
class ActionDefinition:
    """One action of a pack, as registered.

    ``entry_point`` and ``workflow_source`` are pack-relative posix paths (``actions/echo.sh``).
    ``parameters`` is the normalised inline schema (see :mod:`attune.packs._schema`).
    """

    ref: str
    pack: str
    name: str
    label: str
    description: str
    enabled: bool
    runner_type: str
    entry_point: str | None
    parameters: dict[str, dict[str, Any]]
    output: dict[str, Any]
    timeout: float | None
    tags: list[str]
    workflow_source: str | None = None
    workflow_yaml: str | None = None  # the coordinator parses this text again at run time
    concurrency: ConcurrencyPolicy | None = None  # `concurrency:` of the action file

    @property
    def is_workflow(self) -> bool:
        return self.runner_type == "workflow"


@dataclass(frozen=True, kw_only=True)
class PackBundle:
    """A validated pack. Workers fetch ``files`` from the scheduler by ``digest``."""

    ref: str
    label: str
    version: str
    description: str
    actions: list[ActionDefinition]
    files: dict[str, bytes]
    digest: str

    def action(self, ref: str) -> ActionDefinition:
        """The action named ``ref``; KeyError names the pack when it has no such action."""
        for action in self.actions:
            if action.ref == ref:
                return action
        raise KeyError(f"pack {self.ref!r} has no action {ref!r}")


def pack_digest(files: Mapping[str, bytes]) -> str:
    """sha256 (hex) over the files sorted by path: each path and content length-prefixed.

    Length prefixes make the encoding unambiguous, so two different packs never collide by
    moving bytes between a path and a content.
    """
    digest = hashlib.sha256()
    for path in sorted(files):
        encoded = path.encode("utf-8")
        content = files[path]
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()
