"""The gRPC contract: generated code matches the protos, `buf lint` passes, and the public API
(everything outside protos/attune/internal/) has no breaking change against its committed
snapshot, protos/breaking/public_api.binpb (CONTRIBUTING.md, Changing the contract)."""

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


#: A `buf build` image of the public protos, refreshed only on purpose (CONTRIBUTING.md).
PUBLIC_API_IMAGE = PROTO_ROOT / "breaking" / "public_api.binpb"


def _buf_breaking(proto_root: Path) -> subprocess.CompletedProcess[str]:
    """`buf breaking` (rules of protos/buf.yaml) of the public protos under proto_root against the snapshot."""
    return subprocess.run(
        [_buf(), "breaking", "--against", str(PUBLIC_API_IMAGE), "--exclude-path", "attune/internal"],
        cwd=proto_root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_public_api_has_no_breaking_change() -> None:
    result = _buf_breaking(PROTO_ROOT)
    assert result.returncode == 0, (
        "the public API changed incompatibly; if that is deliberate, record it in docs/architecture.md "
        "(Contract changes) and refresh the snapshot as CONTRIBUTING.md says:\n" + result.stdout + result.stderr
    )


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        (
            "  string request_id = 3;\n",
            "",
            'Previously present field "3" with name "request_id" on message "RequestExecutionRequest" was deleted.',
        ),
        (
            "  rpc GetExecution(",
            "  rpc FetchExecution(",
            'Previously present RPC "GetExecution" on service "ExecutionService" was deleted.',
        ),
    ],
    ids=["removed field", "renamed rpc"],
)
def test_buf_breaking_reports_a_break(tmp_path: Path, old: str, new: str, reported: str) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(PROTO_ROOT, protos, ignore=shutil.ignore_patterns("breaking"))
    proto = protos / "attune" / "execution" / "v1" / "execution.proto"
    text = proto.read_text()
    assert text.count(old) == 1, f"the test's edit no longer applies to {proto.name}: {old!r}"
    proto.write_text(text.replace(old, new))
    result = _buf_breaking(protos)
    assert result.returncode != 0, "buf breaking missed the change"
    assert reported in result.stdout, result.stdout + result.stderr


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
