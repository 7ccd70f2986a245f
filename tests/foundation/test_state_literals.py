"""States are spelled `ExecutionState.X` in services/, never as bare strings: a typo in a string
("canceled") compares unequal silently, a typo in a member name fails at import.

A string constant equal to a state's value counts unless it names a field rather than a state: a
mapping key (`row["timeout"]`, `{"succeeded": False}`, `request.get("timeout")`). SQL text and
comments never match, as the whole string would have to be the state's name.
"""

from __future__ import annotations

import ast
from pathlib import Path

from attune.states import ExecutionState

SERVICES = Path(__file__).resolve().parents[2] / "services"
STATE_NAMES = frozenset(state.value for state in ExecutionState)
_KEY_METHODS = frozenset({"get", "pop", "setdefault"})


def _is_mapping_key(node: ast.Constant, parent: ast.AST) -> bool:
    if isinstance(parent, ast.Subscript):
        return parent.slice is node
    if isinstance(parent, ast.Dict):
        return any(key is node for key in parent.keys)
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute):
        return parent.func.attr in _KEY_METHODS and bool(parent.args) and parent.args[0] is node
    return False


def bare_state_literals(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: "state"` for each string constant in `source` that spells a state."""
    tree = ast.parse(source, filename)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    return [
        f'{filename}:{node.lineno}: "{node.value}"'
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in STATE_NAMES
        and not _is_mapping_key(node, parents[node])
    ]


def test_the_finder_flags_states_and_spares_field_names() -> None:
    source = "\n".join(
        [
            'if row["state"] == "failed": pass',  # flagged
            'GiveUp(row_id, "abandoned", "worker lost")',  # flagged
            'timeout = row["timeout"] or request.get("timeout")',  # field names
            'result = {"succeeded": False}',  # a field of a workflow result
            "sql = \"UPDATE executions SET state = 'running'\"",  # SQL text
        ]
    )
    assert bare_state_literals(source) == ['<source>:1: "failed"', '<source>:2: "abandoned"']


def test_services_spell_states_as_execution_state_members() -> None:
    files = sorted(SERVICES.rglob("*.py"))
    assert len(files) > 50, f"found only {len(files)} Python files under {SERVICES}"
    found = [hit for path in files for hit in bare_state_literals(path.read_text(), str(path.relative_to(SERVICES)))]
    assert not found, "use attune.states.ExecutionState instead of these strings:\n" + "\n".join(found)
