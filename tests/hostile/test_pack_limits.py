"""Pack limits over raw RegisterPack calls (issue #13): each limit at its value is accepted, one
past it is refused with INVALID_ARGUMENT (RESOURCE_EXHAUSTED past the gRPC message limit) naming
the file or field and the limit; nothing is stored and the scheduler serves the next call.

The shared cluster runs with the default limits (docs/operations.md, Limits).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from attune.grpcutil.channel import open_channel
from attune.grpcutil.errors import Violation, violations_of
from attune.packs import DEFAULT_LIMITS
from attune.packs._limits import TASK_NAME_MAX_LENGTH
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.storage import Database
from attune.storage.schema import actions, pack_files, packs
from tests.integration.cluster import Cluster
from tests.packs.test_pack_yaml_limits import billion_laughs, laughs

LIMITS = DEFAULT_LIMITS
MIB = 1024 * 1024


def unique_ref() -> str:
    return f"hostile_{uuid.uuid4().hex[:8]}"


def pack(ref: str, extra: Mapping[str, bytes] | None = None, *, description: str = "") -> dict[str, bytes]:
    """A valid pack: pack.yaml and one noop action, plus `extra` files."""
    files = {
        "pack.yaml": f"ref: {ref}\nversion: '1.0.0'\n".encode(),
        "actions/hello.yaml": f'ref: {ref}.hello\nrunner_type: noop\ndescription: "{description}"\n'.encode(),
    }
    files.update(extra or {})
    return files


def request(files: Mapping[str, bytes]) -> registry_pb2.RegisterPackRequest:
    return registry_pb2.RegisterPackRequest(
        files=[registry_pb2.PackFile(path=path, content=content) for path, content in files.items()]
    )


@dataclass
class Refused:
    code: grpc.StatusCode
    details: str
    violations: list[Violation]

    def only(self) -> Violation:
        assert len(self.violations) == 1, self.violations
        return self.violations[0]


async def refused(call: Awaitable[object]) -> Refused:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    return Refused(err.code(), err.details() or "", violations_of(err))


async def stored(cluster: Cluster, ref: str) -> tuple[int, int, int]:
    """Rows of the pack, its files and its actions in the registry's tables."""
    db = Database(cluster.database_url)
    try:
        async with db.read() as conn:
            counts = []
            for table, column in ((packs, packs.c.ref), (pack_files, pack_files.c.pack_ref), (actions, actions.c.pack)):
                query = sa.select(sa.func.count()).select_from(table).where(column == ref)
                counts.append((await conn.execute(query)).scalar_one())
        return counts[0], counts[1], counts[2]
    finally:
        await db.close()


async def assert_healthy(cluster: Cluster) -> None:
    assert cluster.processes["scheduler"].poll() is None, cluster.log_tail("scheduler")
    reply = await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="core.noop"), timeout=10)
    assert reply.action.ref == "core.noop"


async def register(cluster: Cluster, files: Mapping[str, bytes]) -> registry_pb2.RegisterPackResponse:
    response: registry_pb2.RegisterPackResponse = await cluster.registry.RegisterPack(request(files), timeout=60)
    return response


async def refused_registration(cluster: Cluster, files: Mapping[str, bytes], ref: str) -> Refused:
    """Registers `files` expecting INVALID_ARGUMENT; checks that nothing of `ref` was stored."""
    outcome = await refused(cluster.registry.RegisterPack(request(files), timeout=60))
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert await stored(cluster, ref) == (0, 0, 0)
    await assert_healthy(cluster)
    return outcome


def filler(total: int, *, file_size: int = LIMITS.max_file_bytes - 1000) -> dict[str, bytes]:
    """Files under data/ whose paths and contents come to exactly `total` bytes."""
    files: dict[str, bytes] = {}
    while total > 0:
        path = f"data/{len(files)}"
        size = min(file_size, total - len(path))
        files[path] = b"x" * size
        total -= len(path) + size
    return files


def upload_size(files: Mapping[str, bytes]) -> int:
    return sum(len(path.encode()) + len(content) for path, content in files.items())


# --- the upload as a whole ------------------------------------------------------------------------


async def test_file_count_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    files = pack(ref, {f"data/{i}": b"" for i in range(LIMITS.max_files - 2)})
    assert len(files) == LIMITS.max_files
    assert (await register(cluster, files)).pack.ref == ref
    assert (await stored(cluster, ref))[1] == LIMITS.max_files

    over = unique_ref()
    outcome = await refused_registration(
        cluster, pack(over, {f"data/{i}": b"" for i in range(LIMITS.max_files - 1)}), over
    )
    assert outcome.only() == Violation(
        "files", "1,001 files, over the limit of 1,000 files per pack (ATTUNE_MAX_PACK_FILES)"
    )


async def test_total_size_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    files = pack(ref)
    files.update(filler(LIMITS.max_bytes - upload_size(files)))
    assert upload_size(files) == LIMITS.max_bytes
    assert (await register(cluster, files)).pack.ref == ref

    over = unique_ref()
    files = pack(over)
    files.update(filler(LIMITS.max_bytes + 1 - upload_size(files)))
    outcome = await refused_registration(cluster, files, over)
    assert outcome.only() == Violation(
        "files", "3,145,729 bytes of files and paths, over the limit of 3,145,728 (ATTUNE_MAX_PACK_BYTES)"
    )


async def test_file_size_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    assert (await register(cluster, pack(ref, {"data/big": b"x" * LIMITS.max_file_bytes}))).pack.ref == ref

    over = unique_ref()
    outcome = await refused_registration(cluster, pack(over, {"data/big": b"x" * (LIMITS.max_file_bytes + 1)}), over)
    assert outcome.only() == Violation(
        "data/big", "1,048,577 bytes, over the limit of 1,048,576 bytes per file (ATTUNE_MAX_PACK_FILE_BYTES)"
    )


async def test_path_length_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    at_limit = "data/" + "p" * (LIMITS.max_path_length - 5)
    assert (await register(cluster, pack(ref, {at_limit: b"ok"}))).pack.ref == ref

    over = unique_ref()
    outcome = await refused_registration(cluster, pack(over, {at_limit + "p": b"no"}), over)
    violation = outcome.only()
    assert violation.field == "data/" + "p" * 75 + "… (256 characters)"
    assert violation.description == "256 characters, over the limit of 255 for a path (ATTUNE_MAX_PACK_PATH_LENGTH)"


async def test_an_upload_over_the_grpc_message_limit_is_resource_exhausted(cluster: Cluster, tmp_path: Path) -> None:
    """gRPC refuses it before the scheduler reads it: why ATTUNE_MAX_PACK_BYTES stays below
    ATTUNE_MAX_MESSAGE_BYTES (docs/operations.md, Limits)."""
    ref = unique_ref()
    files = pack(ref, filler(5 * MIB))
    # A client allowed to send more than the scheduler accepts.
    settings = cluster.client_settings.replace(max_message_bytes=8 * MIB)
    async with open_channel(cluster.addresses["scheduler"], settings, token=cluster.admin_token) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        outcome = await refused(stub.RegisterPack(request(files), timeout=60))
    assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, outcome
    assert await stored(cluster, ref) == (0, 0, 0)
    await assert_healthy(cluster)


# --- names and texts that go into columns ---------------------------------------------------------


async def test_pack_ref_length_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    at_limit = ref + "r" * (LIMITS.max_name_length - len(ref))
    response = await register(cluster, {"pack.yaml": f"ref: {at_limit}\nversion: '1'\n".encode()})
    assert response.pack.ref == at_limit
    assert (await stored(cluster, at_limit))[0] == 1

    outcome = await refused_registration(
        cluster, {"pack.yaml": f"ref: {at_limit}r\nversion: '1'\n".encode()}, at_limit + "r"
    )
    assert outcome.only() == Violation(
        "pack.yaml: ref", "256 characters, over the limit of 255 (ATTUNE_MAX_NAME_LENGTH)"
    )


async def test_action_ref_length_at_the_limit_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    name = "a" * (LIMITS.max_name_length - len(ref) - 1)
    response = await register(
        cluster, pack(ref, {"actions/long.yaml": f"ref: {ref}.{name}\nrunner_type: noop\n".encode()})
    )
    assert f"{ref}.{name}" in [a.ref for a in response.actions]
    reply = await cluster.run(f"{ref}.{name}")
    assert reply.execution.action_ref == f"{ref}.{name}"  # executions.action_ref holds it too

    over = unique_ref()
    name = "a" * (LIMITS.max_name_length - len(over))
    outcome = await refused_registration(
        cluster, pack(over, {"actions/long.yaml": f"ref: {over}.{name}\nrunner_type: noop\n".encode()}), over
    )
    assert outcome.only() == Violation(
        "actions/long.yaml: ref", "256 characters, over the limit of 255 (ATTUNE_MAX_NAME_LENGTH)"
    )


async def test_task_name_length_at_the_limit_and_over(cluster: Cluster) -> None:
    def workflow(ref: str, task: str) -> bytes:
        return f"ref: {ref}.flow\nversion: 1\ntasks:\n  - name: {task}\n    action: core.noop\n".encode()

    ref = unique_ref()
    task = "t" * TASK_NAME_MAX_LENGTH  # below ATTUNE_MAX_NAME_LENGTH: its children's request ids hold it
    await register(cluster, pack(ref, {"workflows/flow.workflow.yaml": workflow(ref, task)}))
    reply = await cluster.run(f"{ref}.flow")  # its task run is stored by name
    assert [c.link.task_name for c in reply.children] == [task]

    over = unique_ref()
    outcome = await refused_registration(
        cluster, pack(over, {"workflows/flow.workflow.yaml": workflow(over, task + "t")}), over
    )
    violation = outcome.only()
    assert violation.field == f'workflows/flow.workflow.yaml: task "{"t" * 80}… (129 characters)"'
    assert violation.description == "its name: 129 characters, over the limit of 128 for a task name"


async def test_version_length_at_the_column_width_and_over(cluster: Cluster) -> None:
    ref = unique_ref()
    files = pack(ref)
    files["pack.yaml"] = f"ref: {ref}\nversion: '{'1' * 64}'\n".encode()
    assert (await register(cluster, files)).pack.version == "1" * 64

    over = unique_ref()
    files = pack(over)
    files["pack.yaml"] = f"ref: {over}\nversion: '{'1' * 65}'\n".encode()
    outcome = await refused_registration(cluster, files, over)
    assert outcome.only() == Violation(
        "pack.yaml: version", "65 characters, over the limit of 64 (the registry's column width)"
    )


async def test_a_nul_in_a_description_is_refused(cluster: Cluster) -> None:
    ref = unique_ref()
    outcome = await refused_registration(cluster, pack(ref, description="a\\0b"), ref)
    assert outcome.only() == Violation(
        "actions/hello.yaml: description", "contains a NUL character, which cannot be stored"
    )


async def test_create_action_refuses_a_ref_longer_than_the_limit(cluster: Cluster) -> None:
    """Pack and name each within ATTUNE_MAX_NAME_LENGTH, but not the ref they make."""
    ref = unique_ref()
    await register(cluster, pack(ref))
    long_name = "n" * (LIMITS.max_name_length - len(ref))  # the ref would be 256 characters
    create = registry_pb2.CreateActionRequest(action=registry_pb2.Action(pack=ref, name=long_name, runner_type="noop"))
    outcome = await refused(cluster.registry.CreateAction(create, timeout=10))
    assert (outcome.code, outcome.only()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        Violation(
            "action.name",
            "makes the action's ref (pack.name) 256 characters, over the limit of 255 (ATTUNE_MAX_NAME_LENGTH)",
        ),
    )
    assert (await stored(cluster, ref))[2] == 1  # only the pack's own action
    create.action.name = long_name[:-1]
    assert len((await cluster.registry.CreateAction(create, timeout=10)).action.ref) == LIMITS.max_name_length
    await assert_healthy(cluster)


# --- YAML ----------------------------------------------------------------------------------------


def vm_peak_kib(cluster: Cluster) -> int:
    """The scheduler's peak resident set so far (VmHWM)."""
    pid = cluster.processes["scheduler"].pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("where", ["actions/bomb.yaml", "workflows/bomb.workflow.yaml", "pack.yaml"])
async def test_a_yaml_bomb_is_refused_fast_and_the_old_version_stays(cluster: Cluster, where: str) -> None:
    ref = unique_ref()
    first = await register(cluster, pack(ref, description="v1"))
    before = await stored(cluster, ref)
    bomb = billion_laughs().replace("demo.", f"{ref}.").encode()
    if where == "pack.yaml":
        bomb = f"ref: {ref}\nversion: '2'\nkeywords:\n{laughs('  ')}".encode()
    peak = vm_peak_kib(cluster)
    started = time.monotonic()
    outcome = await refused(
        cluster.registry.RegisterPack(request(pack(ref, {where: bomb}, description="v2")), timeout=60)
    )
    elapsed = time.monotonic() - started
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert elapsed < 1.0, f"refused after {elapsed:.2f}s"
    assert [v.field for v in outcome.violations] == [where]
    assert "ATTUNE_MAX_YAML" in outcome.violations[0].description
    assert vm_peak_kib(cluster) - peak < 100 * 1024, "the scheduler's memory grew by over 100 MB"
    assert await stored(cluster, ref) == before
    action = (await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=f"{ref}.hello"))).action
    assert (action.description, action.pack_digest) == ("v1", first.pack.digest)
    await assert_healthy(cluster)


def action_file(ref: str, body: str) -> bytes:
    return f"ref: {ref}.big\nrunner_type: noop\n{body}".encode()


def yaml_cases(ref: str) -> dict[str, tuple[bytes, bytes, str]]:
    """Per limit: an action file at it, one past it, and the setting the refusal names."""
    fixed = len(action_file(ref, "description: ''\n"))  # the file around the description's text
    items = LIMITS.yaml.max_nodes - 7  # the mapping, its 3 keys, 2 scalar values and the list
    anchor = "output: {a: &a 1, b: [" + ", ".join(["*a"] * LIMITS.yaml.max_aliases) + "]}\n"
    default = "parameters: {p: {type: object, default: " + "{a: " * 29 + "1" + "}" * 31 + "\n"
    return {
        "bytes": (
            action_file(ref, "description: '" + "x" * (LIMITS.yaml.max_bytes - fixed) + "'\n"),
            action_file(ref, "description: '" + "x" * (LIMITS.yaml.max_bytes - fixed + 1) + "'\n"),
            f"over the limit of {LIMITS.yaml.max_bytes:,} bytes for a YAML file (ATTUNE_MAX_YAML_BYTES)",
        ),
        "aliases": (
            action_file(ref, anchor),
            action_file(ref, anchor.replace("*a]", "*a, *a]")),
            "1,001 aliases, over the limit of 1,000 (ATTUNE_MAX_YAML_ALIASES)",
        ),
        "nodes": (
            action_file(ref, "tags: [" + ",".join(["a"] * items) + "]\n"),
            action_file(ref, "tags: [" + ",".join(["a"] * (items + 1)) + "]\n"),
            "100,001 keys and values, over the limit of 100,000 (ATTUNE_MAX_YAML_NODES)",
        ),
        "depth": (
            action_file(ref, default),
            action_file(ref, default.replace("{a: ", "{a: {a: ", 1).replace("}\n", "}}\n")),
            "nested 33 deep, over the limit of 32 (ATTUNE_MAX_YAML_DEPTH)",
        ),
    }


@pytest.mark.parametrize("limit", ["bytes", "aliases", "nodes", "depth"])
async def test_yaml_limits_at_their_value_and_over(cluster: Cluster, limit: str) -> None:
    ref = unique_ref()
    at_limit, _, _ = yaml_cases(ref)[limit]
    response = await register(cluster, pack(ref, {"actions/big.yaml": at_limit}))
    assert f"{ref}.big" in [a.ref for a in response.actions]

    over = unique_ref()
    _, past, message = yaml_cases(over)[limit]
    outcome = await refused_registration(cluster, pack(over, {"actions/big.yaml": past}), over)
    violation = outcome.only()
    assert violation.field == "actions/big.yaml" and message in violation.description, violation


async def test_create_action_reads_its_workflow_file_within_the_limits(cluster: Cluster) -> None:
    """A YAML file below actions/ is not parsed at registration; CreateAction naming it as a
    workflow reads it as registration would."""
    ref = unique_ref()
    await register(cluster, pack(ref, {"actions/lib/bomb.yaml": billion_laughs().encode()}))
    create = registry_pb2.CreateActionRequest(
        action=registry_pb2.Action(pack=ref, name="flow", runner_type="workflow", workflow_file="lib/bomb.yaml")
    )
    outcome = await refused(cluster.registry.CreateAction(create, timeout=10))
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    violation = outcome.only()
    assert violation.field == "action.workflow_file" and "ATTUNE_MAX_YAML_NODES" in violation.description
    assert (await stored(cluster, ref))[2] == 1
    await assert_healthy(cluster)
