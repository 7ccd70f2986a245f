"""Pack files stay inside the pack (issue #13): the registry refuses a path that could leave it,
naming the file, whatever a raw RegisterPack sends; `attune pack register` uploads regular files
only, refusing links and special files by name. Nothing is stored; the scheduler serves on."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from attune.grpcutil.errors import Violation
from attune.registry.v1 import registry_pb2
from tests.cli.e2e import attune
from tests.hostile.test_pack_limits import (
    assert_healthy,
    pack,
    refused,
    refused_registration,
    register,
    request,
    stored,
    unique_ref,
)
from tests.integration.cluster import Cluster


@pytest.mark.parametrize(
    ("path", "field", "description"),
    [
        ("../../x", "../../x", "has a .. segment, which would leave the pack"),
        ("actions/../../x", "actions/../../x", "has a .. segment, which would leave the pack"),
        ("/etc/cron.d/x", "/etc/cron.d/x", "an absolute path; a pack's paths are relative to its folder"),
        ("actions\\..\\x", "actions\\..\\x", "contains a backslash; a pack's paths separate folders with /"),
        ("actions/x\0.sh", "actions/x\\x00.sh", "contains a NUL character"),
        ("actions/\x1b[2J.sh", "actions/\\x1b[2J.sh", "contains a control character"),
        ("actions//x.sh", "actions//x.sh", "has an empty or . segment"),
        ("./x.sh", "./x.sh", "has an empty or . segment"),
        ("actions/", "actions/", "has an empty or . segment"),
        ("", "(empty)", "a file without a path"),
    ],
)
async def test_a_path_leaving_the_pack_is_refused_naming_it(
    cluster: Cluster, path: str, field: str, description: str
) -> None:
    ref = unique_ref()
    outcome = await refused_registration(cluster, pack(ref, {path: b"echo pwned\n"}), ref)
    violation = outcome.only()
    assert violation.field == field
    assert violation.description.startswith(description)
    assert field in outcome.details


async def test_a_path_sent_twice_or_both_file_and_folder_is_refused(cluster: Cluster) -> None:
    ref = unique_ref()
    files = [*pack(ref).items(), ("actions/hello.sh", b"one"), ("actions/hello.sh", b"two")]
    outcome = await refused(
        cluster.registry.RegisterPack(
            registry_pb2.RegisterPackRequest(files=[registry_pb2.PackFile(path=p, content=c) for p, c in files])
        )
    )
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert outcome.only() == Violation("actions/hello.sh", "sent twice; each path names one file")

    outcome = await refused_registration(cluster, pack(ref, {"lib": b"", "lib/x.sh": b""}), ref)
    assert outcome.only() == Violation("lib", "is both a file and a folder of the pack")
    assert await stored(cluster, ref) == (0, 0, 0)


async def test_a_refused_path_leaves_the_registered_version_intact(cluster: Cluster) -> None:
    ref = unique_ref()
    first = await register(cluster, pack(ref, description="v1"))
    before = await stored(cluster, ref)
    outcome = await refused(
        cluster.registry.RegisterPack(request(pack(ref, {"../../escape.sh": b"x"}, description="v2")), timeout=30)
    )
    assert (outcome.code, outcome.only().field) == (grpc.StatusCode.INVALID_ARGUMENT, "../../escape.sh")
    assert await stored(cluster, ref) == before
    action = (await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=f"{ref}.hello"))).action
    assert (action.description, action.pack_digest) == ("v1", first.pack.digest)
    await assert_healthy(cluster)


def pack_folder(root: Path, ref: str) -> Path:
    folder = root / ref
    for path, content in pack(ref).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return folder


async def test_the_cli_refuses_a_link_out_of_the_pack_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    ref = unique_ref()
    folder = pack_folder(tmp_path, ref)
    (folder / "actions" / "leak.sh").symlink_to("/etc/hostname")
    os.mkfifo(folder / "actions" / "pipe")  # would block a reader that opened it
    outcome = await attune("pack", "register", str(folder), env=cluster.cli_env(), timeout=30)
    assert outcome.code == 1, outcome
    assert f"cannot read pack '{folder}' (2 problems)" in outcome.stderr
    assert "actions/leak.sh: is a symbolic link (to /etc/hostname)" in outcome.stderr
    assert "actions/pipe: is a fifo, not a regular file" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert await stored(cluster, ref) == (0, 0, 0)

    (folder / "actions" / "leak.sh").unlink()
    (folder / "actions" / "pipe").unlink()
    outcome = await attune("pack", "register", str(folder), env=cluster.cli_env(), timeout=30)
    assert outcome.code == 0, outcome.stderr
    assert (await stored(cluster, ref))[0] == 1


async def test_the_cli_names_the_limit_of_a_pack_too_large_to_send(cluster: Cluster, tmp_path: Path) -> None:
    ref = unique_ref()
    folder = pack_folder(tmp_path, ref)
    for i in range(5):
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / str(i)).write_bytes(b"x" * 1_000_000)
    outcome = await attune("pack", "register", str(folder), env=cluster.cli_env(), timeout=30)
    assert outcome.code == 1, outcome
    assert "more than 3,145,728 bytes of files and paths, over the limit of 3,145,728 (ATTUNE_MAX_PACK_BYTES)" in (
        outcome.stderr
    )
    # Allowed by this CLI's pack limit, the pack is still over the gRPC message limit.
    env = {**cluster.cli_env(), "ATTUNE_MAX_PACK_BYTES": str(8 * 1024 * 1024)}
    outcome = await attune("pack", "register", str(folder), env=env, timeout=30)
    assert outcome.code == 1, outcome
    assert "bytes to send, over the gRPC message limit of 4,194,304 bytes (ATTUNE_MAX_MESSAGE_BYTES)" in outcome.stderr
    assert await stored(cluster, ref) == (0, 0, 0)
