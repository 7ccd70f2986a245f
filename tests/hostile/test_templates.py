"""Templates see data, never Python objects (issue #13): on a live cluster, a dict method by
item access is an undefined name, a function written out is an error naming it, and the
variables' lazy view comes out as JSON — no Python repr in any result or error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.states import ExecutionState
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

PACK = Path(__file__).parent / "packs" / "failing"
REPR_MARKS = ("<", " at 0x", "bound method", "built-in", "_EntryView")


def _no_repr(text: str) -> None:
    assert not any(mark in text for mark in REPR_MARKS), text


async def test_a_dict_method_by_item_access_is_an_undefined_name(cluster: Cluster) -> None:
    await cluster.register_pack(PACK)
    outcome = await cluster.run("failing.dict_method")
    execution = outcome.execution
    assert execution_state_from_proto(execution.state) == ExecutionState.FAILED
    assert execution.error == (
        "task \"notify\", field input.message: expression \"{{ vars['items'] }}\": variable 'items' is undefined"
    )
    _no_repr(json.dumps(dict_from_struct(execution.result)))


async def test_a_function_written_out_is_an_error_naming_it(cluster: Cluster) -> None:
    await cluster.register_pack(PACK)
    outcome = await cluster.run("failing.function_value")
    assert execution_state_from_proto(outcome.execution.state) == ExecutionState.FAILED
    assert outcome.execution.error == (
        "field output_map.oops: expression '{{ range }}': 'range' is a function, not data: call it, as range()"
    )


async def test_views_and_method_named_keys_are_data(cluster: Cluster) -> None:
    await cluster.register_pack(PACK)
    outcome = await cluster.run("failing.json_view")
    execution = outcome.execution
    assert execution_state_from_proto(execution.state) == ExecutionState.SUCCEEDED, execution.error
    result = dict_from_struct(execution.result)
    assert result["as_json"] == '{"region": "eu", "zones": ["a", "b"]}'
    assert result["items"] == 3
