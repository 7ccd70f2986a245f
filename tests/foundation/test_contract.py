"""The gRPC contract: generated code matches the protos, and `buf lint` passes."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from attune.codegen import LIBS_ROOT, PROTO_ROOT, REPO_ROOT, generate


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "codegen produced nothing"
    stale = [
        str(rel)
        for rel in generated
        if not (LIBS_ROOT / rel).exists() or not filecmp.cmp(tmp_path / rel, LIBS_ROOT / rel, shallow=False)
    ]
    assert not stale, f"generated code is stale, run `python -m attune.codegen`: {stale}"


def _buf() -> str:
    local = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    if local.exists():
        return str(local)
    found = shutil.which("buf")
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("buf is not installed and npm is missing")
        pytest.skip("buf and npm are not installed")
    subprocess.run(
        [npm, "install", "--silent", "--prefix", str(REPO_ROOT / ".tools"), "@bufbuild/buf"], check=True, timeout=300
    )
    return str(local)


def test_buf_lint_passes() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=PROTO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rpc_and_message_has_a_doc_comment() -> None:
    for proto in PROTO_ROOT.rglob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith(("rpc ", "message ", "service ", "enum ")):
                assert lines[i - 1].strip().startswith("//"), f"{proto.name}:{i + 1} lacks a doc comment: {stripped}"
