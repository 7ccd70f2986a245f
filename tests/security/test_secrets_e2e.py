"""Secrets through real services on both stores: never in plain text in any table, masked in what
actions print and return, never in API responses, logs or spans; old keys dropped after rotation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.config import normalize_database_url
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.security.masking import MASK
from attune.security.rotation import rotate
from attune.security.sealing import Sealer, SecretKey, new_key_text
from attune.storage import Database
from attune.storage.schema import metadata
from tests.integration.cluster import Cluster, ClusterFactory

SECRETPACK = Path(__file__).parent / "packs" / "secretpack"


@pytest.fixture(scope="session")
async def secretpack(cluster: Cluster) -> Cluster:
    await cluster.register_pack(SECRETPACK)
    return cluster


def _state(execution: execution_pb2.Execution) -> str:
    return execution_state_from_proto(execution.state)


async def _every_table_as_text(database_url: str) -> str:
    """Every row of every table of the schema, each value as text (bytes decoded as Latin-1, so
    any byte sequence a secret could be stored as shows)."""
    db = Database(normalize_database_url(database_url))
    parts: list[str] = []
    try:
        async with db.read() as conn:
            for table in metadata.sorted_tables:
                for row in await conn.execute(sa.select(table)):
                    for value in row:
                        parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    finally:
        await db.close()
    return "\n".join(parts)


async def test_no_secret_is_stored_in_plain_text_in_any_table(secretpack: Cluster) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    direct_secret = f"d1rect-{uuid.uuid4().hex}"
    label = f"visible-{uuid.uuid4().hex}"
    flow = await secretpack.run("secretpack.secret_flow", {"password": secret, "label": label})
    assert _state(flow.execution) == "succeeded", flow.execution.error
    direct = await secretpack.run("secretpack.reveal", {"password": direct_secret, "label": label}, request_id=label)
    assert _state(direct.execution) == "succeeded", direct.execution.error
    # The workflow mapped the secret variable to its output: it comes out masked.
    output = dict_from_struct(flow.execution.result)
    assert (output["label"], output["leaked"]) == (label, MASK)
    # Its children got the real values: 1 for `first`, then 2 with_items children.
    assert len(flow.children) == 3
    for child in flow.children:
        assert _state(child) == "succeeded", child.error
    await asyncio.sleep(0.3)  # let bookkeeping that lingers (dispatched children, outbox) land
    stored = await _every_table_as_text(secretpack.database_url)
    assert label in stored, "the scan sees the non-secret parameter, so it would see a secret"
    assert secret not in stored
    assert direct_secret not in stored
    for log in secretpack.workdir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert secret not in text and direct_secret not in text, f"a secret leaked into {log.name}"
    spans = json.dumps(secretpack.spans())
    assert secret not in spans and direct_secret not in spans


async def test_a_secret_an_action_prints_is_masked_in_stdout_stderr_result_and_error(secretpack: Cluster) -> None:
    secret = f"pr1nted-{uuid.uuid4().hex}"
    reply = await secretpack.run(
        "secretpack.reveal",
        {"password": secret, "label": "x", "fail": True, "expect_sha256": hashlib.sha256(secret.encode()).hexdigest()},
    )
    execution = reply.execution
    assert _state(execution) == "failed"
    result = dict_from_struct(execution.result)
    shown = json.dumps(result) + execution.error
    assert secret not in shown
    assert "the password is ********" in result["stderr"]
    assert f'"echo": "{MASK}"' in result["stdout"]
    assert "failed holding ********" in result["stderr"] + execution.error
    printed = json.loads(result["stdout"])
    assert printed["matches"], "the action itself got the real value"
    assert not printed["in_argv"] and not printed["in_environment"] and not printed["param_variable"], (
        "a secret reaches the action on stdin only: not argv, not the environment, no ATTUNE_PARAM_ variable"
    )


async def test_get_and_list_never_return_a_secret(secretpack: Cluster) -> None:
    secret = f"l1sted-{uuid.uuid4().hex}"
    reply = await secretpack.run("secretpack.secret_flow", {"password": secret, "label": "listed"})
    assert _state(reply.execution) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.parameters)["password"] == MASK
    listed = await secretpack.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=100), timeout=10)
    got = await secretpack.executions.GetExecution(execution_pb2.GetExecutionRequest(id=reply.execution.id), timeout=10)
    for message in (reply, listed, got):
        assert secret not in str(message)
    assert any(dict_from_struct(e.parameters).get("password") == MASK for e in listed.executions)


async def test_old_keys_can_be_dropped_after_rotation_and_a_missing_key_is_named(
    fresh_cluster: ClusterFactory,
) -> None:
    a_text, b_text, c_text = new_key_text(), new_key_text(), new_key_text()
    b_id = SecretKey.from_base64(b_text, where="").id
    c = await fresh_cluster(ATTUNE_SECRET_KEY=a_text)
    await c.start(workers=1)
    await c.register_bundled_packs()
    await c.register_pack(SECRETPACK)
    params: dict[str, Any] = {"password": f"r0tated-{uuid.uuid4().hex}", "label": "rotation"}
    first = await c.run("secretpack.reveal", params, request_id="rotation-1")
    assert _state(first.execution) == "succeeded", first.execution.error

    async def retry() -> execution_pb2.Execution:
        # A retry with the same request_id is compared with the stored parameters: the scheduler
        # must open the sealed password to tell a retry from a different request.
        return await c.request("secretpack.reveal", params, request_id="rotation-1")

    c.terminate("scheduler")
    db = Database(normalize_database_url(c.database_url))
    try:
        ring = Sealer([SecretKey.from_base64(t, where="") for t in (b_text, a_text)])
        assert (await rotate(db, ring)).total >= 1
    finally:
        await db.close()
    c.env["ATTUNE_SECRET_KEY"] = b_text  # key A dropped
    await c.start_service("scheduler")
    assert (await retry()).id == first.execution.id

    c.terminate("scheduler")
    c.env["ATTUNE_SECRET_KEY"] = c_text  # the key that sealed it is gone
    await c.start_service("scheduler")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await retry()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"needs secret key '{b_id}', which is not configured" in (refused.value.details() or "")
    assert params["password"] not in (refused.value.details() or "")
