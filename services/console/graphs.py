"""The graph of a workflow action's tasks, as the execution view draws it.

The scheduler derives a graph from a definition (RegistryService.ValidateWorkflow); the console
asks it for the definition the action has now (GetAction) and keeps each graph by the
definition's digest, so a page refreshed or watched live costs one GetAction, not a validation
of a 1,000-task workflow each time. An execution of an action whose definition changed since it
ran is drawn with the current tasks: its task runs still name theirs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from attune.registry.v1 import registry_pb2
from attune_services.console.errors import ApiError
from attune_services.console.scheduler import Metadata, Scheduler, call
from attune_services.console.views import graph_view

#: How many graphs are kept (the least recently used is dropped beyond it).
MAX_GRAPHS = 64


class GraphCache:
    """Graphs by definition digest."""

    def __init__(self, max_graphs: int = MAX_GRAPHS) -> None:
        self._graphs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max = max_graphs

    async def of_action(self, scheduler: Scheduler, metadata: Metadata, action_ref: str) -> dict[str, Any] | None:
        """The graph of the workflow action `action_ref` now; None when it has no definition
        (or is gone: the execution is still shown, without its graph). ApiError when the scheduler
        refuses the caller."""
        try:
            reply = await call(
                scheduler.registry.GetAction(
                    registry_pb2.GetActionRequest(ref=action_ref), metadata=metadata, timeout=10
                )
            )
        except ApiError as err:
            if err.code == "NOT_FOUND":
                return None
            raise
        action = reply.action
        if not action.definition:
            return None
        key = hashlib.sha256(f"{action.pack}\0{action.definition}".encode()).hexdigest()
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            return graph
        request = registry_pb2.ValidateWorkflowRequest(definition=action.definition, pack=action.pack)
        try:
            checked = await call(scheduler.registry.ValidateWorkflow(request, metadata=metadata, timeout=30))
        except ApiError as err:
            if err.code == "INVALID_ARGUMENT":  # a definition beyond today's limits: no graph
                return None
            raise
        if not checked.HasField("graph"):
            return None
        graph = graph_view(checked.graph)
        self._graphs[key] = graph
        while len(self._graphs) > self._max:
            self._graphs.popitem(last=False)
        return graph
