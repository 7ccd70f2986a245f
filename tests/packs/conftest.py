"""Fixtures for pack tests: build a pack folder in tmp_path from a {path: text} mapping."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.packs.packtools import ECHO_YAML, PACK_YAML, MakePack


@pytest.fixture
def make_pack(tmp_path: Path) -> MakePack:
    """``make_pack({"actions/x.yaml": "..."})``: a pack with pack.yaml and demo.hello unless overridden.

    A value of None leaves that file out (``{"pack.yaml": None}`` makes a pack without one).
    """

    def make(files: dict[str, str | bytes | None], *, base: bool = True) -> Path:
        root = tmp_path / "demo"
        contents: dict[str, str | bytes | None] = {}
        if base:
            contents = {
                "pack.yaml": PACK_YAML,
                "actions/hello.yaml": ECHO_YAML,
                "actions/hello.sh": 'printf "hello %s\\n" "$ATTUNE_PARAM_WHO"\n',
            }
        contents.update(files)
        for rel, content in contents.items():
            if content is None:
                continue
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content))
        return root

    return make
