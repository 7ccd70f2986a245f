"""Fixtures of the console tests: one console process on the shared PostgreSQL cluster, a token
per role, one headless Chromium, and signed-in pages.

- `console`: the base URL (``http://127.0.0.1:PORT``) of a console talking to the session's
  secure `cluster` (TLS + tokens), started once per session.
- `tokens`: {"admin", "operator", "viewer"} → a token of that role, made once via TokenService.
- `browser`: one headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright's async API.
- `page_for(role)`: a new signed-in Page (a fresh browser context per call) at the console's `/`.
  On a test failure every page it made is saved to test-artifacts/screenshots/<test>[-N].png.

Every test here runs on the PostgreSQL cluster only (`pytest_generate_tests` below).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.integration.cluster import Cluster

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ROLES = {"viewer": auth_pb2.ROLE_VIEWER, "operator": auth_pb2.ROLE_OPERATOR, "admin": auth_pb2.ROLE_ADMIN}

PageFor = Callable[[str], Awaitable[Page]]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The console tests share the session's PostgreSQL cluster: `cluster` is parametrized with
    "postgres" only (a parametrize mark, so the fixture's own params are not applied)."""
    if "cluster" in metafunc.fixturenames:
        metafunc.definition.add_marker(pytest.mark.parametrize("cluster", ["postgres"], indirect=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the test item, so fixtures see at teardown whether it failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(node: pytest.Item) -> bool:
    reports = node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(scope="session")
async def console(cluster: Cluster) -> str:
    """The base URL of a console on the session's cluster (stopped with the cluster)."""
    if cluster.console_url is not None and "console" in cluster.processes:
        return cluster.console_url
    return await cluster.start_console()


@pytest.fixture(scope="session")
async def tokens(cluster: Cluster) -> dict[str, str]:
    """A token per role: {"admin", "operator", "viewer"} → its value."""
    stub = auth_pb2_grpc.TokenServiceStub(cluster.channel)
    made: dict[str, str] = {}
    for role, value in ROLES.items():
        reply = await stub.CreateToken(
            auth_pb2.CreateTokenRequest(name=f"console-{role}-{uuid.uuid4().hex[:6]}", role=value), timeout=10
        )
        made[role] = reply.secret
    return made


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session (Debian's; Playwright downloads none)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page_for(
    request: pytest.FixtureRequest, browser: Browser, console: str, tokens: dict[str, str]
) -> AsyncIterator[PageFor]:
    """Makes signed-in pages: `await page_for("operator")` is a Page at the console's `/`, signed
    in with that role's token in a browser context of its own. Screenshots on failure."""
    contexts: list[BrowserContext] = []

    async def make(role: str) -> Page:
        context = await browser.new_context(base_url=console)
        contexts.append(context)
        # The context's request client shares its cookie jar: the session cookie lands there.
        reply = await context.request.post("/api/session", data={"token": tokens[role]}, headers={"Origin": console})
        if reply.status != 200:
            raise AssertionError(f"sign-in as {role} answered {reply.status}: {await reply.text()}")
        page = await context.new_page()
        await page.goto("/")
        return page

    yield make
    try:
        if _failed(request.node):
            await _screenshots(request.node, [p for c in contexts for p in c.pages])
    finally:
        for context in contexts:
            await context.close()


async def _screenshots(node: pytest.Item, pages: list[Page]) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", node.name).strip("-")
    for index, page in enumerate(pages):
        path = SCREENSHOTS / (f"{name}.png" if index == 0 else f"{name}-{index + 1}.png")
        try:
            await page.screenshot(path=str(path), full_page=True)
        except Exception as err:  # a page that crashed still lets the others be saved
            print(f"screenshot of {page.url} failed: {err}")
