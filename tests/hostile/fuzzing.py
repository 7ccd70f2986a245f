"""How many examples a fuzzing property runs, the same way for every fuzzing test file.

In CI a property runs its own small number of examples, always the same ones (derandomized, no
example database), so a CI failure reproduces. ``ATTUNE_FUZZ_EXAMPLES=<n>`` runs n examples per
property with a fresh seed instead: a long run, by hand
(``ATTUNE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/hostile/test_fuzz_rpcs.py``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

LONG_RUN_VARIABLE = "ATTUNE_FUZZ_EXAMPLES"


def long_run_examples() -> int:
    """The examples per property ATTUNE_FUZZ_EXAMPLES asks for; 0 when it is unset (CI)."""
    text = os.environ.get(LONG_RUN_VARIABLE) or "0"
    try:
        examples = int(text)
    except ValueError:
        examples = -1
    if examples < 0:
        raise ValueError(f"{LONG_RUN_VARIABLE}={text!r}: expected a number of examples (0 or more)")
    return examples


def fuzz_settings(*, ci_examples: int, deadline: timedelta | None) -> settings:
    """Hypothesis settings for a fuzzing property: `ci_examples` fixed examples in CI, or the
    long run's number with a fresh seed. `deadline` is a hang, not a slow machine (None: the
    property bounds its own waits)."""
    long_run = long_run_examples()
    return settings(
        max_examples=long_run or ci_examples,
        derandomize=not long_run,
        deadline=deadline,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
