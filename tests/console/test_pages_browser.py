"""The console's shell and list pages in a real browser: sign-in, what each role is offered, the
Run form (the API's errors beside their field, a good submit opening the execution) and the
executions list (a fresh run shown, the state filter applied), against the session's cluster."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from attune.grpcutil.convert import execution_state_from_proto
from tests.console.conftest import SCREENSHOTS, PageFor
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration


async def packs_page(page: Page) -> None:
    """Opens the packs page and waits until core.echo's card is drawn."""
    await page.goto("/#/packs")
    await expect(page.locator('article[data-ref="core.echo"]')).to_be_visible()


async def test_sign_in_refuses_a_bad_token_and_shows_the_role_of_a_good_one(
    browser: Browser, console: str, tokens: dict[str, str]
) -> None:
    context = await browser.new_context(base_url=console)
    page = await context.new_page()
    try:
        await page.goto("/")
        token = page.get_by_label("Access token")
        await expect(token).to_have_attribute("type", "password")
        await token.fill("not-a-real-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#sign-in-error")).to_have_text("That token was not accepted.")
        await expect(token).to_have_attribute("aria-invalid", "true")

        await token.fill(tokens["operator"])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#user .role-badge")).to_have_text("operator")
        await expect(page.get_by_role("heading", name="Packs and actions")).to_be_visible()

        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("Access token")).to_be_visible()
        assert (await page.request.get("/api/session")).status == 401
    except BaseException:
        # Not a page_for page, so its screenshot on failure is taken here.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "test_sign_in.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_each_role_is_offered_only_what_it_may_do(page_for: PageFor) -> None:
    viewer = await page_for("viewer")
    await packs_page(viewer)
    await expect(viewer.locator("#user .role-badge")).to_have_text("viewer")
    assert await viewer.get_by_role("link", name=re.compile(r"^Run ")).count() == 0
    await expect(viewer.locator('#nav a[data-nav="builder"]')).to_be_hidden()
    # The search filters the cards as the user types.
    await viewer.get_by_label("Search actions").fill("core.sle")
    await expect(viewer.locator("article.action-card")).to_have_count(1)
    sleep_card = viewer.locator('article[data-ref="core.sleep"]')
    await expect(sleep_card.get_by_role("cell", name="seconds", exact=True)).to_be_visible()

    operator = await page_for("operator")
    await packs_page(operator)
    await expect(operator.get_by_role("link", name="Run core.echo")).to_be_visible()
    await expect(operator.locator('#nav a[data-nav="builder"]')).to_be_hidden()

    admin = await page_for("admin")
    await packs_page(admin)
    await expect(admin.locator('#nav a[data-nav="builder"]')).to_be_visible()


async def test_the_run_form_shows_api_errors_beside_their_field_and_opens_the_new_execution(
    page_for: PageFor, cluster: Cluster
) -> None:
    page = await page_for("operator")
    await page.goto("/#/run/core.sleep")
    seconds = page.get_by_label("seconds")
    await expect(seconds).to_have_value("1")  # the default, prefilled
    await seconds.fill("-1")
    await page.get_by_role("button", name="Run", exact=True).click()
    await expect(page.locator("#param-seconds-error")).to_contain_text("must be at least 0")
    await expect(seconds).to_have_attribute("aria-invalid", "true")

    await page.goto("/#/run/core.echo")
    message = page.get_by_label("message")
    await expect(message).to_have_attribute("aria-required", "true")
    await page.get_by_role("button", name="Run", exact=True).click()
    await expect(page.locator("#param-message-error")).to_have_text("required parameter is missing")
    assert "param-message-error" in (await message.get_attribute("aria-describedby") or "")

    await message.fill("hello from the run form")
    await page.get_by_role("button", name="Run", exact=True).click()
    await expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    reply = await cluster.wait_terminal(execution_id)
    assert reply.execution.action_ref == "core.echo"
    assert execution_state_from_proto(reply.execution.state) == "succeeded"


async def test_the_executions_list_shows_a_new_run_and_filters_by_state(page_for: PageFor, cluster: Cluster) -> None:
    failed = (await cluster.run("core.local", {"cmd": "exit 3"})).execution
    succeeded = (await cluster.run("core.echo", {"message": "listed"})).execution
    page = await page_for("viewer")
    await page.goto("/#/executions")
    rows = page.locator("#executions tbody tr")
    await expect(rows.first).to_be_visible()
    await expect(page.locator(f'tr[data-id="{failed.id}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-id="{succeeded.id}"] [data-state="succeeded"]')).to_be_visible()

    await page.get_by_label("failed", exact=True).check()
    await expect(page.locator(f'tr[data-id="{succeeded.id}"]')).to_have_count(0)
    await expect(page.locator(f'tr[data-id="{failed.id}"]')).to_be_visible()
    states = await rows.evaluate_all("rows => rows.map(r => r.dataset.state)")
    assert states and set(states) == {"failed"}
    assert "state=failed" in page.url

    # Live: a run made while the list is shown appears without a reload.
    later = await cluster.request("core.local", {"cmd": "exit 4"})
    await expect(page.locator(f'tr[data-id="{later.id}"]')).to_be_visible(timeout=10_000)
    await page.locator(f'tr[data-id="{failed.id}"] a').click()
    await expect(page).to_have_url(re.compile(f"#/executions/{failed.id}$"))
