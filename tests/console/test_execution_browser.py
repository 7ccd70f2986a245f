"""The execution view in a real browser: a failing workflow's node red with its error, a running
workflow's graph turning green without a reload, item progress on a `with_items` task, and the
Cancel button by role (and working).

The workflows are a small pack registered once through the public API (RegisterPack).
`ATTUNE_UPDATE_SCREENSHOTS=1` saves the failing release's view as docs/images/console-execution.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from attune.registry.v1 import registry_pb2
from tests.console.conftest import PageFor
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console-execution.png"
#: How long a browser check may wait for the cluster to move a workflow on.
WAIT_MS = 30_000

PACK = {
    "pack.yaml": 'ref: consoleexec\nlabel: Console execution view\nversion: "1.0.0"\n',
    # build fans out to a with-items test and a lint, joined by package; ship fails.
    "workflows/release.workflow.yaml": """
ref: consoleexec.release
label: Release that fails at the last step
tasks:
  - name: build
    action: core.echo
    input: {message: built}
    next:
      - when: "{{ succeeded() }}"
        do: [test, lint]
  - name: test
    action: core.echo
    with_items: "{{ ['unit', 'api', 'ui'] }}"
    input: {message: "testing {{ item }}"}
    next:
      - when: "{{ succeeded() }}"
        do: package
  - name: lint
    action: core.noop
    next:
      - when: "{{ succeeded() }}"
        do: package
  - name: package
    action: core.noop
    join: all
    next:
      - when: "{{ succeeded() }}"
        do: ship
  - name: ship
    action: core.local
    input: {cmd: "echo 'registry refused the upload' >&2; exit 3"}
""",
    "workflows/slow.workflow.yaml": """
ref: consoleexec.slow
label: Sleeps, then one more step
tasks:
  - name: nap
    action: core.sleep
    input: {seconds: 2}
    next:
      - do: after
  - name: after
    action: core.noop
""",
    "workflows/long.workflow.yaml": """
ref: consoleexec.long
label: Sleeps for a minute
cancellation_policy: cancel_running
tasks:
  - name: nap
    action: core.sleep
    input: {seconds: 60}
""",
}


@pytest.fixture(scope="module")
async def pack(cluster: Cluster) -> str:
    """The test pack, registered through the public API."""
    files = [registry_pb2.PackFile(path=path, content=text.encode()) for path, text in PACK.items()]
    await cluster.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=30)
    return "consoleexec"


def _state(page: Page) -> Locator:
    """The execution's state badge in the header."""
    return page.locator("#execution-state [data-state]")


def _node(page: Page, task: str) -> Locator:
    return page.locator(f'g.node[data-task="{task}"]')


async def _open(page: Page, execution_id: str) -> None:
    await page.goto(f"/#/executions/{execution_id}")
    await expect(page.locator("#execution-id")).to_have_text(execution_id, timeout=WAIT_MS)


async def test_a_failing_workflow_shows_its_node_red_and_the_error(
    cluster: Cluster, pack: str, page_for: PageFor
) -> None:
    execution = await cluster.request(f"{pack}.release")
    await cluster.wait_terminal(execution.id)
    page = await page_for("viewer")
    await _open(page, execution.id)

    ship = _node(page, "ship")
    await expect(ship).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    await expect(ship.locator("rect")).to_have_css("fill", "rgb(254, 202, 202)")  # the legend's failed colour
    await expect(_node(page, "build")).to_have_attribute("data-state", "succeeded")
    await expect(page.locator('g.node[data-task="test"] .items')).to_have_text("3/3")
    await expect(_state(page)).to_have_attribute("data-state", "failed")
    await expect(page.locator("#execution-error")).to_contain_text("ship")

    # Keyboard: Enter on the node opens its panel with the child's error output.
    await ship.focus()
    await page.keyboard.press("Enter")
    panel = page.locator("aside.task-panel")
    await expect(panel).to_be_visible()
    await expect(panel.locator("h3")).to_have_text("Task ship")
    await expect(panel.locator("table.runs tbody tr")).to_have_count(1)
    await expect(panel).to_contain_text("registry refused the upload", timeout=WAIT_MS)
    await expect(page.locator(".gantt-row")).to_have_count(7)  # build, 3 items, lint, package, ship
    await page.locator(".logs-panel summary").click()
    await expect(page.locator("pre.logs")).to_contain_text("[ship stderr] registry refused the upload", timeout=WAIT_MS)
    if os.environ.get("ATTUNE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.set_viewport_size({"width": 1400, "height": 900})
        await page.screenshot(path=str(SCREENSHOT), full_page=True)


async def test_a_running_workflow_updates_live(cluster: Cluster, pack: str, page_for: PageFor) -> None:
    page = await page_for("viewer")
    execution = await cluster.request(f"{pack}.slow")
    await _open(page, execution.id)
    await page.evaluate("window.__stillTheSamePage = true")

    nap = _node(page, "nap")
    await expect(nap).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    await expect(_node(page, "after")).to_have_attribute("data-state", "waiting")
    await expect(nap).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await expect(_node(page, "after")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await expect(_state(page)).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    assert await page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"


async def test_cancel_is_offered_to_an_operator_not_a_viewer_and_works(
    cluster: Cluster, pack: str, page_for: PageFor
) -> None:
    execution = await cluster.request(f"{pack}.long")
    viewer = await page_for("viewer")
    await _open(viewer, execution.id)
    await expect(_node(viewer, "nap")).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    await expect(viewer.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)

    operator = await page_for("operator")
    await _open(operator, execution.id)
    await operator.get_by_role("button", name="Cancel", exact=True).click()
    await operator.get_by_role("button", name="Yes, cancel it").click()
    await expect(_state(operator)).to_have_attribute("data-state", "cancelled", timeout=WAIT_MS)
    await expect(_node(operator, "nap")).to_have_attribute("data-state", "cancelled", timeout=WAIT_MS)
    await expect(operator.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    # The viewer's page follows too, without a reload.
    await expect(_state(viewer)).to_have_attribute("data-state", "cancelled", timeout=WAIT_MS)


async def test_a_nested_workflow_opens_in_place(cluster: Cluster, page_for: PageFor) -> None:
    execution = await cluster.request("examples.nested")
    await cluster.wait_terminal(execution.id)
    page = await page_for("viewer")
    await _open(page, execution.id)
    await _node(page, "inner_sequence").click()
    await page.get_by_role("button", name="Show nested workflow").click()
    nested = page.locator(".nested-workflow g.node")
    await expect(nested.first).to_be_visible(timeout=WAIT_MS)
    assert await nested.count() >= 2  # examples.sequence's own tasks, in this page
    for state in await nested.evaluate_all("nodes => nodes.map(n => n.dataset.state)"):
        assert state == "succeeded"
    await expect(page.get_by_role("button", name="Hide nested workflow")).to_have_attribute("aria-expanded", "true")


async def test_an_operator_answers_an_approval_from_the_task_panel(cluster: Cluster, page_for: PageFor) -> None:
    execution = await cluster.request("examples.approval")
    page = await page_for("operator")
    await _open(page, execution.id)
    approve = _node(page, "approve")
    await expect(approve).to_have_attribute("data-state", "pending", timeout=WAIT_MS)
    await approve.click()
    form = page.locator("aside.task-panel form.respond-form")
    await expect(form).to_contain_text("Deploy version 1.0?", timeout=WAIT_MS)
    await form.get_by_label("Response (JSON object)").fill('{"approved": "maybe"}')
    await form.get_by_role("button", name="Send response").click()
    await expect(form.locator(".form-error")).to_contain_text("approved")  # refused, naming the field
    await form.get_by_label("Response (JSON object)").fill('{"approved": true}')
    await form.get_by_role("button", name="Send response").click()
    await expect(_node(page, "deploy")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await expect(_state(page)).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)


async def test_an_operator_reruns_a_workflow_from_a_task(cluster: Cluster, pack: str, page_for: PageFor) -> None:
    execution = await cluster.request(f"{pack}.release")
    await cluster.wait_terminal(execution.id)
    page = await page_for("operator")
    await _open(page, execution.id)
    await page.get_by_role("button", name="Re-run", exact=True).click()
    form = page.locator("form.rerun-form")
    await form.get_by_label("ship").check()
    await form.get_by_role("button", name="Re-run").click()
    await expect(page.locator("#execution-id")).not_to_have_text(execution.id, timeout=WAIT_MS)
    assert execution.id not in page.url and "#/executions/" in page.url
    # The re-run starts from ship: the tasks before it do not run again.
    await expect(_node(page, "ship")).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    await expect(_node(page, "build")).to_have_attribute("data-state", "waiting")
