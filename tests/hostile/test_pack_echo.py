"""core.echo prints any message the parameter limits allow, however long (the environment carries
up to 32 KiB; past that it reads stdin), and fails with a clear error for a NUL, which text output
cannot carry (issue #13: it printed an empty line for both)."""

from __future__ import annotations

import pytest

from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from tests.integration.cluster import Cluster


@pytest.mark.parametrize("length", [32 * 1024, 32 * 1024 + 1, 200_000])
async def test_a_long_message_is_printed_whole(cluster: Cluster, length: int) -> None:
    message = ("0123456789abcdé\"'$`\\" * (length // 20 + 1))[:length]
    reply = await cluster.run("core.echo", {"message": message})
    assert execution_state_from_proto(reply.execution.state) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.result)["stdout"] == message + "\n"


async def test_a_nul_in_the_message_fails_saying_why(cluster: Cluster) -> None:
    reply = await cluster.run("core.echo", {"message": "before\0after"})
    assert execution_state_from_proto(reply.execution.state) == "failed"
    result = dict_from_struct(reply.execution.result)
    assert result["stdout"] == ""
    assert "core.echo: the message contains a NUL character, which text output cannot carry" in result["stderr"]
