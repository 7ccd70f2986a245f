"""Where in a workflow's YAML a problem is: the line and column of the node its field names.

Validation (`attune.packs`, the engine) reports a problem by task and field path
(``task "deploy", field next[1].when``; ``vars.x``; ``tasks[3].name``), which is what a person
reads; an editor needs the place in the text. The document is composed again with node marks
(`yaml.compose`: only after `load_yaml` has held it to the YAML limits) and the path is walked
from the task's node, or from the root for a field outside any task. A path that leaves the
document (a missing field, as in "missing action") stops at the closest node that exists.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["Position", "compose_marked", "locate"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INDEX = re.compile(r"\[(\d+)\]")

#: 1-based (line, column); (0, 0) when unknown.
Position = tuple[int, int]
UNKNOWN: Position = (0, 0)


def compose_marked(text: str) -> yaml.Node | None:
    """The document's node graph with marks; None for an empty document. Call only on text
    `load_yaml` accepted: composing is then bounded and cannot fail."""
    return yaml.compose(text, Loader=_Loader)


def locate(root: yaml.Node | None, task: str, field: str, *, last_task: bool = False) -> Position:
    """The position of `field` within `task` (the task's own node when `field` is empty), or
    within the document when `task` is empty. `last_task` picks the last task of that name
    (a duplicate), else the first."""
    if root is None:
        return UNKNOWN
    start = root
    if task:
        found = _task_node(root, task, last=last_task)
        if found is None:
            tasks = _value_of(root, "tasks")
            return _position(tasks if tasks is not None else root)
        start = found
    return _position(_walk(start, field))


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _value_of(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found: yaml.Node = value
                return found
    return None


def _task_node(root: yaml.Node, name: str, *, last: bool) -> yaml.Node | None:
    """The node of the task called `name`: the value under its key in the mapping form of
    `tasks`, the item whose `name` it is in the list form."""
    tasks = _value_of(root, "tasks")
    candidates: list[yaml.Node] = []
    if isinstance(tasks, yaml.MappingNode):
        candidates = [value for key, value in tasks.value if isinstance(key, yaml.ScalarNode) and key.value == name]
    elif isinstance(tasks, yaml.SequenceNode):
        for item in tasks.value:
            named = _value_of(item, "name")
            if isinstance(named, yaml.ScalarNode) and named.value == name:
                candidates.append(item)
    if not candidates:
        return None
    return candidates[-1] if last else candidates[0]


def _walk(node: yaml.Node, path: str) -> yaml.Node:
    """The node `path` (``next[1].when``, ``input.a.b``) names below `node`, or the deepest node
    on the way that exists. A mapping key may itself hold dots (``input: {"a.b": 1}``): the
    longest key that starts the rest of the path wins."""
    rest = path
    while rest:
        if isinstance(node, yaml.SequenceNode):
            index = _INDEX.match(rest)
            if index is None or int(index.group(1)) >= len(node.value):
                return node
            node = node.value[int(index.group(1))]
            rest = rest[index.end() :]
        elif isinstance(node, yaml.MappingNode):
            key, child = _longest_key(node, rest)
            if child is None:
                return node
            node = child
            rest = rest[len(key) :]
        else:
            return node
        rest = rest.removeprefix(".")
    return node


def _longest_key(node: yaml.MappingNode, rest: str) -> tuple[str, yaml.Node | None]:
    best: tuple[str, yaml.Node | None] = ("", None)
    for key_node, value in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key = str(key_node.value)
        if not key:
            continue  # an empty key would consume nothing of the path
        follows = rest[len(key) : len(key) + 1]
        if rest.startswith(key) and follows in ("", ".", "[") and len(key) >= len(best[0]):
            best = (key, value)
    return best
