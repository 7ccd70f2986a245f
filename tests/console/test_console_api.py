"""The console's HTTP API against a real cluster: sign-in and its cookie, CSRF, bearer access,
roles, running and watching an execution, error mapping, security headers, limits, and that the
console is a client without a database."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf import timestamp_pb2

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.execution.v1 import execution_pb2
from attune_services.console.sessions import Identity, SessionStore
from attune_services.console.tasks import summarize
from tests.integration.cluster import Cluster
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CONSOLE_PACKAGE = Path(__file__).resolve().parents[2] / "services" / "console"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with its own cookie jar (unsafe: it keeps cookies of 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(http: aiohttp.ClientSession, console: str, token: str) -> dict[str, Any]:
    """Signs `http` in; returns the session body (with its csrf_token)."""
    async with http.post(f"{console}/api/session", json={"token": token}, headers={"Origin": console}) as reply:
        assert reply.status == 200, await reply.text()
        body: dict[str, Any] = await reply.json()
        return body


async def test_sign_in_sets_an_http_only_same_site_cookie(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    async with http.post(
        f"{console}/api/session", json={"token": tokens["operator"]}, headers={"Origin": console}
    ) as reply:
        assert reply.status == 200
        cookie = reply.headers["Set-Cookie"]
        body = await reply.json()
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("attune_console=")
    assert {"httponly", "samesite", "path"} <= attributes and "SameSite=Strict" in cookie
    assert "secure" not in attributes  # served over plain http here
    assert body["role"] == "operator" and body["auth_enabled"] is True and len(body["csrf_token"]) >= 32
    async with http.get(f"{console}/api/session") as reply:
        assert (await reply.json())["name"] == body["name"]
    # Sign-out (with the CSRF header) ends the session.
    async with http.delete(f"{console}/api/session", headers={"X-CSRF-Token": body["csrf_token"]}) as reply:
        assert reply.status == 204
    async with http.get(f"{console}/api/session") as reply:
        assert reply.status == 401
    # Behind a TLS-terminating proxy the page's origin is https, and the cookie is Secure.
    https = {"Origin": f"https://{console.removeprefix('http://')}", "X-Forwarded-Proto": "https"}
    async with http.post(f"{console}/api/session", json={"token": tokens["viewer"]}, headers=https) as reply:
        assert reply.status == 200
        assert "secure" in {part.strip().lower() for part in reply.headers["Set-Cookie"].split(";")}


async def test_a_bad_token_or_another_origin_is_refused(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    async with http.post(f"{console}/api/session", json={"token": "attune_not-a-real-token"}) as reply:
        assert reply.status == 401
        assert (await reply.json())["error"]["code"] == "UNAUTHENTICATED"
        assert "Set-Cookie" not in reply.headers
    async with http.post(
        f"{console}/api/session", json={"token": tokens["admin"]}, headers={"Origin": "https://evil.example"}
    ) as reply:
        assert reply.status == 403
        assert "Set-Cookie" not in reply.headers
    async with http.get(f"{console}/api/packs") as reply:
        assert reply.status == 401


async def _created_since(cluster: Cluster, since: datetime.datetime) -> int:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(since)
    listing = execution_pb2.ListExecutionsRequest(created_after=stamp, include_children=True, page_size=100)
    return len((await cluster.executions.ListExecutions(listing, timeout=10)).executions)


async def test_a_revoked_token_ends_its_session(http: aiohttp.ClientSession, console: str, cluster: Cluster) -> None:
    stub = auth_pb2_grpc.TokenServiceStub(cluster.channel)
    name = f"console-revoked-{uuid.uuid4().hex[:6]}"
    made = await stub.CreateToken(auth_pb2.CreateTokenRequest(name=name, role=auth_pb2.ROLE_VIEWER), timeout=10)
    await sign_in(http, console, made.secret)
    async with http.get(f"{console}/api/packs") as reply:
        assert reply.status == 200
    await stub.RevokeToken(auth_pb2.RevokeTokenRequest(name=name), timeout=10)

    async def refused() -> int | None:
        async with http.get(f"{console}/api/session") as reply:
            return reply.status if reply.status == 401 else None

    assert await eventually(refused, within=5, interval=0.2, what=lambda: "the revoked session to end") == 401
    async with http.get(f"{console}/api/packs") as reply:  # the session is gone, not only refused once
        assert reply.status == 401


async def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str], cluster: Cluster
) -> None:
    session = await sign_in(http, console, tokens["operator"])
    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    run = {"action_ref": "core.noop", "parameters": {}}
    for headers in ({}, {"X-CSRF-Token": "wrong" + session["csrf_token"][5:]}):
        async with http.post(f"{console}/api/executions", json=run, headers=headers) as reply:
            assert reply.status == 403
            error = (await reply.json())["error"]
            assert error["code"] == "PERMISSION_DENIED" and "CSRF" in error["message"]
    assert await _created_since(cluster, since) == 0
    async with http.post(
        f"{console}/api/executions", json=run, headers={"X-CSRF-Token": session["csrf_token"]}
    ) as reply:
        assert reply.status == 201


async def test_a_bearer_token_works_without_csrf_and_roles_hold(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    run = {"action_ref": "core.noop", "parameters": {}}
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    async with http.post(f"{console}/api/executions", json=run, headers=bearer) as reply:
        assert reply.status == 201, await reply.text()
        assert (await reply.json())["id"]
    async with http.get(f"{console}/api/session", headers=bearer) as reply:
        assert (await reply.json())["role"] == "operator"
    viewer = await sign_in(http, console, tokens["viewer"])
    async with http.post(
        f"{console}/api/executions", json=run, headers={"X-CSRF-Token": viewer["csrf_token"]}
    ) as reply:
        assert reply.status == 403
        assert (await reply.json())["error"]["code"] == "PERMISSION_DENIED"
    async with http.get(f"{console}/api/packs") as reply:  # a viewer reads
        packs = {p["ref"]: p for p in (await reply.json())["packs"]}
    assert "core.echo" in {a["ref"] for a in packs["core"]["actions"]}


async def _events(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """Every event of an event stream until it ends."""
    events: list[tuple[str, Any]] = []
    async with http.get(url, headers=headers) as reply:
        assert reply.status == 200 and reply.content_type == "text/event-stream"
        kind = ""
        async for raw in reply.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: ") :])))
    return events


async def test_run_get_and_watch_a_workflow_until_it_succeeds(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    run = {"action_ref": "examples.single_echo", "parameters": {"message": "hello console"}}
    async with http.post(f"{console}/api/executions", json=run, headers=bearer) as reply:
        execution_id = (await reply.json())["id"]
    events = await asyncio.wait_for(_events(http, f"{console}/api/executions/{execution_id}/events", bearer), 30)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "end", kinds
    final = [data for kind, data in events if kind == "snapshot"][-1]
    assert final["id"] == execution_id and final["state"] == "succeeded" and final["is_workflow"] is True
    workflow = final["workflow"]
    assert workflow["state"] == "succeeded"
    assert workflow["tasks"]["echo"] == {"state": "succeeded", "runs": 1, "items_done": 0, "items_total": 0}
    assert [n["name"] for n in workflow["graph"]["nodes"]] == ["echo"]
    assert workflow["task_runs"][0]["child_execution_id"]
    async with http.get(f"{console}/api/executions/{execution_id}", headers=bearer) as reply:
        got = await reply.json()
    assert got["state"] == "succeeded" and got["parameters"] == {"message": "hello console"}
    assert got["workflow"]["tasks"] == workflow["tasks"]
    async with http.get(f"{console}/api/executions?action=examples.single_echo&page_size=5", headers=bearer) as reply:
        listed = await reply.json()
    assert execution_id in [e["id"] for e in listed["executions"]]
    logs = await asyncio.wait_for(_events(http, f"{console}/api/executions/{execution_id}/logs", bearer), 30)
    assert any(kind == "log" and "hello console" in data["text"] and data["task"] == "echo" for kind, data in logs)


async def test_a_busy_workflow_is_watched_in_at_most_four_snapshots_a_second(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    """Many task changes a second are coalesced; the items are counted on the task's node."""
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    names = [f"n{i}" for i in range(120)]
    run = {"action_ref": "examples.with_items", "parameters": {"names": names, "concurrency": 120}}
    async with http.post(f"{console}/api/executions", json=run, headers=bearer) as reply:
        execution_id = (await reply.json())["id"]
    began = time.monotonic()
    events = await asyncio.wait_for(_events(http, f"{console}/api/executions/{execution_id}/events", bearer), 60)
    took = time.monotonic() - began
    snapshots = [data for kind, data in events if kind == "snapshot"]
    assert len(snapshots) <= 2 + 4 * took, f"{len(snapshots)} snapshots in {took:.1f}s"
    final = snapshots[-1]["workflow"]
    assert final["tasks"]["greet_each"] == {"state": "succeeded", "runs": 1, "items_done": 120, "items_total": 120}
    assert len(final["task_runs"]) == 120


async def test_errors_map_to_statuses_with_violations(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    async with http.post(f"{console}/api/executions", json={"action_ref": "nowhere.nothing"}, headers=bearer) as reply:
        assert reply.status == 404
        assert (await reply.json())["error"]["code"] == "NOT_FOUND"
    async with http.post(
        f"{console}/api/executions",
        json={"action_ref": "core.sleep", "parameters": {"seconds": "soon"}},
        headers=bearer,
    ) as reply:
        assert reply.status == 400
        error = (await reply.json())["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["parameters.seconds"]
    async with http.get(f"{console}/api/executions?state=sleeping", headers=bearer) as reply:
        assert reply.status == 400
        assert (await reply.json())["error"]["violations"][0]["field"] == "state"
    async with http.post(
        f"{console}/api/executions",
        data=b"x" * (3 * 1024 * 1024),
        headers={**bearer, "Content-Type": "application/json"},
    ) as reply:
        assert reply.status == 400 and "larger" in (await reply.json())["error"]["message"]
    async with http.post(f"{console}/api/executions", data="action_ref=core.noop", headers=bearer) as reply:
        assert reply.status == 400  # a form body is not JSON: no cross-site form can post one


async def test_responses_carry_the_security_headers(http: aiohttp.ClientSession, console: str) -> None:
    for path in ("/", "/api/session", "/static/js/api.js"):
        async with http.get(f"{console}{path}") as reply:
            csp = reply.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
    async with http.get(f"{console}/api/session") as reply:
        assert reply.headers["Cache-Control"] == "no-store"


async def test_an_event_stream_ends_when_the_browser_goes_away(
    http: aiohttp.ClientSession, console: str, tokens: dict[str, str]
) -> None:
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    async with http.post(
        f"{console}/api/executions", json={"action_ref": "core.sleep", "parameters": {"seconds": 20}}, headers=bearer
    ) as reply:
        execution_id = (await reply.json())["id"]
    try:
        reply = await http.get(f"{console}/api/executions/{execution_id}/events", headers=bearer)
        assert (await reply.content.readline()).startswith(b"event: snapshot")
        assert await _open_streams(http, console) == 1
        reply.close()  # the browser leaves
        await _no_open_streams(http, console)
        # A quiet execution's logs stream opens all the same (within a second), and ends likewise.
        logs = await asyncio.wait_for(http.get(f"{console}/api/executions/{execution_id}/logs", headers=bearer), 5)
        assert logs.status == 200 and logs.content_type == "text/event-stream"
        assert await _open_streams(http, console) == 1
        logs.close()
        await _no_open_streams(http, console)
        async with http.get(f"{console}/api/executions/nothing-here/logs", headers=bearer) as reply:
            assert reply.status == 404 and (await reply.json())["error"]["code"] == "NOT_FOUND"
    finally:
        async with http.post(f"{console}/api/executions/{execution_id}/cancel", headers=bearer) as reply:
            cancelled = await reply.json()
    assert reply.status == 200 and cancelled["id"] == execution_id
    assert cancelled["state"] in ("canceling", "cancelled"), cancelled
    async with http.post(f"{console}/api/executions/{execution_id}/explode", headers=bearer) as reply:
        assert reply.status == 404 and (await reply.json())["error"]["code"] == "NOT_FOUND"


async def _no_open_streams(http: aiohttp.ClientSession, console: str) -> None:
    for _ in range(100):
        if await _open_streams(http, console) == 0:
            return
        await asyncio.sleep(0.05)
    assert await _open_streams(http, console) == 0


async def _open_streams(http: aiohttp.ClientSession, console: str) -> int:
    async with http.get(f"{console}/healthz") as reply:
        return int((await reply.json())["open_streams"])


def test_the_console_has_no_database() -> None:
    """A client like the CLI: it imports no database driver or storage code, and names no
    database setting."""
    heavy = ("sqlalchemy", "asyncpg", "aiosqlite", "alembic", "attune.storage")
    code = (
        "import sys, attune_services.console.app, attune_services.console.main\n"
        f"print([m for m in sys.modules if m.startswith({heavy!r})])"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]"
    sources = "\n".join(p.read_text() for p in CONSOLE_PACKAGE.glob("*.py"))
    assert "database_url" not in sources and "ATTUNE_DATABASE" not in sources


def test_a_console_whose_port_is_taken_says_so_and_exits() -> None:
    """What `attune up` shows as the console's last output when its port is in use."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
        env.update({"ATTUNE_CONSOLE_ADDRESS": f"127.0.0.1:{port}", "ATTUNE_LOG_FORMAT": "text"})
        outcome = subprocess.run(
            [sys.executable, "-m", "attune_services.console"], env=env, capture_output=True, text=True, timeout=60
        )
    assert outcome.returncode == 1
    output = outcome.stdout + outcome.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in output and "--console-port" in output
    assert "Traceback" not in output


def test_sessions_expire_and_stay_within_their_number() -> None:
    now = [1000.0]
    store = SessionStore(ttl=60, max_sessions=2, clock=lambda: now[0])
    who = Identity(name="ops", role="operator", auth_enabled=True)
    first, second = store.create("t1", who), store.create("t2", who)
    assert store.get(first.id) is first and first.id != second.id and first.csrf_token != second.csrf_token
    assert first.csrf_matches(first.csrf_token) and not first.csrf_matches(second.csrf_token)
    assert not first.csrf_matches(None)
    third = store.create("t3", who)  # over the cap: the oldest goes
    assert store.get(first.id) is None and store.get(third.id) is third and len(store) == 2
    now[0] += 61
    assert store.get(second.id) is None and store.get(third.id) is None


def _run(task: str, run: int, state: str, *, item: int = -1, attempt: int = 1) -> dict[str, Any]:
    return {"task_name": task, "run": run, "item_index": item, "attempt": attempt, "state": state}


def test_a_task_shows_its_latest_run_its_run_count_and_its_items() -> None:
    tasks = summarize(
        [
            _run("loop", 1, "succeeded"),
            _run("loop", 2, "succeeded"),
            _run("loop", 3, "running"),  # a cycle: the third run is the one shown
            _run("flaky", 1, "failed", attempt=1),
            _run("flaky", 1, "succeeded", attempt=2),  # a retry that succeeded
            _run("each", 1, "succeeded", item=0),
            _run("each", 1, "failed", item=1),
            _run("each", 1, "running", item=2),
        ]
    )
    assert tasks["loop"] == {"state": "running", "runs": 3, "items_done": 0, "items_total": 0}
    assert tasks["flaky"] == {"state": "succeeded", "runs": 1, "items_done": 0, "items_total": 0}
    assert tasks["each"] == {"state": "running", "runs": 1, "items_done": 2, "items_total": 3}
    ended = summarize([_run("each", 1, "succeeded", item=0), _run("each", 1, "failed", item=1)])
    assert ended["each"]["state"] == "failed"
    # Items held back by `concurrency` have no task run yet: the count GetWorkflowRun gives is
    # the total, and a run whose started items all succeeded is still running.
    held = summarize([_run("each", 1, "succeeded", item=0), _run("each", 1, "succeeded", item=1)], {("each", 1): 100})
    assert held["each"] == {"state": "running", "runs": 1, "items_done": 2, "items_total": 100}
