"""The browsing commands without a server: ``execution list``'s filters as the request they
send, and ``pack list|get|delete`` as parsed; one run of them against the shared cluster."""

from __future__ import annotations

import pytest

from attune.common.v1 import common_pb2
from attune_services.cli.cmd_pack import delete_pack, get_pack, list_packs
from attune_services.cli.history_options import listing_request
from attune_services.cli.main import build_parser, run
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster


def test_execution_list_filters_become_the_request() -> None:
    options = "--state failed --state timeout --requested-by ops --include-children --action core.echo --since 2h"
    args = build_parser().parse_args(["execution", "list", *options.split()])
    request = listing_request(args, page_size=7, page_token="t")
    assert list(request.states) == [common_pb2.EXECUTION_STATE_FAILED, common_pb2.EXECUTION_STATE_TIMEOUT]
    assert (request.requested_by, request.include_children, request.action_ref) == ("ops", True, "core.echo")
    assert (request.page_size, request.page_token, request.HasField("created_after")) == (7, "t", True)
    plain = listing_request(build_parser().parse_args(["execution", "list"]), page_size=1, page_token="")
    assert (list(plain.states), plain.include_children, plain.parent_id) == ([], False, "")  # top-level only


def test_a_state_the_contract_does_not_name_is_a_usage_error() -> None:
    assert run(["execution", "list", "--state", "sleeping"]) == 2


def test_pack_commands_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["pack", "list"]).handler is list_packs
    got = parser.parse_args(["pack", "get", "core"])
    assert (got.handler, got.ref) == (get_pack, "core")
    deleted = parser.parse_args(["pack", "delete", "demo", "--force"])
    assert (deleted.handler, deleted.ref, deleted.force) == (delete_pack, "demo", True)
    assert parser.parse_args(["pack", "delete", "demo"]).force is False


@pytest.mark.integration
async def test_pack_get_and_a_top_level_list_against_the_cluster(ready_cluster: Cluster) -> None:
    env = ready_cluster.cli_env()
    packs = await attune("pack", "list", "--output", "json", env=env)
    assert packs.code == 0, packs.stderr
    assert {"core", "examples"} <= {p["ref"] for p in packs.json()["packs"]}
    core = await attune("pack", "get", "core", "--output", "json", env=env)
    assert core.code == 0, core.stderr
    assert "core.echo" in [a["ref"] for a in core.json()["actions"]] and core.json()["pack"]["registered_at"]
    run = await attune("run", "examples.single_echo", "-p", "message=top", "--wait", "--output", "json", env=env)
    assert run.code == 0, run.stderr
    child = run.json()["children"][0]["id"]
    listed = await attune("execution", "list", "--limit", "1000", "--output", "json", env=env)
    assert listed.code == 0, listed.stderr
    ids = [e["id"] for e in listed.json()["executions"]]
    assert run.json()["id"] in ids and child not in ids
    everything = await attune("execution", "list", "--include-children", "--limit", "1000", "--output", "json", env=env)
    assert child in [e["id"] for e in everything.json()["executions"]]
