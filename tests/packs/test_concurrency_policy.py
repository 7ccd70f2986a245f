"""`concurrency:` of an action file: checked at registration naming the field, and its key
rendered over the parameters by the engine's sandboxed templates."""

from __future__ import annotations

from typing import Any

import pytest

from attune.packs import ConcurrencyKeyError, ConcurrencyPolicy
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
