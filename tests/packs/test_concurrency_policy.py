"""`concurrency:` of an action file: checked at registration naming the field, and its key
rendered over the parameters by the engine's sandboxed templates."""

from __future__ import annotations

from typing import Any

import pytest

from attune.packs import ConcurrencyKeyError, ConcurrencyPolicy, PackError, load_pack_files
from attune.packs._concurrency import check_concurrency


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ({"limit": 0}, "concurrency.limit", "from 1 to 10000"),
        ({"limit": 10_001}, "concurrency.limit", "from 1 to 10000"),
        ({"limit": True}, "concurrency.limit", "whole number"),
        ({"limit": "2"}, "concurrency.limit", "whole number"),
        ({"limit": 2, "on_limit": "drop"}, "concurrency.on_limit", "queue, cancel"),
        ({"limit": 2, "key": "{{ parameters.host"}, "concurrency.key", "syntax error"),
        ({"limit": 2, "key": 7}, "concurrency.key", "template string"),
        ({"limit": 2, "max": 3}, "concurrency.max", "unknown field"),
        ([2], "concurrency", "must be a mapping"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(value: Any, field: str, words: str) -> None:
    policy, problems = check_concurrency(value)
    assert policy is None
    assert any(f == field and words in message for f, message in problems), problems


def test_a_policy_renders_its_key_over_the_parameters() -> None:
    policy, problems = check_concurrency({"limit": 2, "key": "{{ parameters.host }}-{{ parameters.port }}"})
    assert problems == [] and policy is not None
    assert (policy.limit, policy.on_limit, policy.queues) == (2, "queue", True)
    assert policy.render_key({"host": "db1", "port": 5432}) == "db1-5432"
    assert ConcurrencyPolicy.from_json(policy.to_json()) == policy
    assert ConcurrencyPolicy(limit=1).render_key({"anything": 1}) == ""  # one key for all
    with pytest.raises(ConcurrencyKeyError, match=r"concurrency\.key"):
        policy.render_key({})  # `host` is undefined
    long = ConcurrencyPolicy(limit=1, key="{{ parameters.text }}")
    with pytest.raises(ConcurrencyKeyError, match="more than 255"):
        long.render_key({"text": "x" * 300})


_SOLO = b"ref: demo.solo\ntasks:\n  - name: run\n    action: core.noop\n"


def _pack(files: dict[str, bytes]) -> dict[str, bytes]:
    return {"pack.yaml": b"ref: demo\nlabel: Demo\nversion: '1.0.0'\n", **files}


def test_a_standalone_workflow_file_declares_a_policy_like_an_action_file() -> None:
    text = _SOLO + b'concurrency: {limit: 1, key: "{{ parameters.env }}"}\n'
    bundle = load_pack_files(_pack({"workflows/solo.workflow.yaml": text}), known_action_refs=("core.noop",))
    assert bundle.action("demo.solo").concurrency == ConcurrencyPolicy(limit=1, key="{{ parameters.env }}")
    bad = _SOLO + b"concurrency: {limit: 0, on_limit: drop}\n"
    with pytest.raises(PackError) as refused:
        load_pack_files(_pack({"workflows/solo.workflow.yaml": bad}), known_action_refs=("core.noop",))
    assert "workflows/solo.workflow.yaml: field concurrency.limit: must be a whole number" in str(refused.value)
    assert "field concurrency.on_limit" in str(refused.value)


def test_a_linked_workflow_file_leaves_the_policy_to_its_action_file() -> None:
    action = b"ref: demo.flow\nworkflow_file: workflows/flow.workflow.yaml\nconcurrency: {limit: 1}\n"
    flow = b"tasks:\n  - name: run\n    action: core.noop\nconcurrency: {limit: 2}\n"
    files = _pack({"actions/flow.yaml": action, "actions/workflows/flow.workflow.yaml": flow})
    with pytest.raises(PackError, match=r"flow\.workflow\.yaml: field concurrency: .*only in the action file"):
        load_pack_files(files, known_action_refs=("core.noop",))
