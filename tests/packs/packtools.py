"""Helpers for pack tests (a uniquely named module: several test folders have a conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from attune.packs import PackError, load_pack

MakePack = Callable[..., Path]

PACK_YAML = "ref: demo\nlabel: Demo\nversion: '1.0.0'\ndescription: A pack made by a test.\n"
ECHO_YAML = """\
ref: demo.hello
runner_type: shell
entry_point: hello.sh
parameters:
  who: {type: string, default: world}
"""


def refusal(path: Path, *, known_action_refs: Collection[str] = ()) -> PackError:
    """Load a pack that must be refused; return the error."""
    with pytest.raises(PackError) as caught:
        load_pack(path, known_action_refs=known_action_refs)
    return caught.value


def problem_lines(err: PackError) -> list[str]:
    return str(err).splitlines()
