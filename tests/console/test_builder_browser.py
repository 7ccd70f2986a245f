"""The workflow builder in a real browser, against the session's secure cluster and console.

Create from forms → the YAML tab → save → run → the graph turns green; edit: the ref is locked,
a tampered save is refused and changes nothing; a validation problem lands on its task's form,
its YAML line and its graph node. Each test works on workflows of its own in a pack of its own.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import Page, expect

from tests.console.conftest import PageFor
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

PACK = "builder_test"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console-builder.png"

# What the forms of the first test make, exactly as the YAML tab must show it.
BUILT_YAML = """\
version: 1
description: Greets, then finishes.
parameters:
  who:
    type: string
    default: builder
tasks:
  - name: greet
    action: core.echo
    input:
      message: "hello from the {{ parameters.who }}"
    next:
      - when: "{{ succeeded() }}"
        do: finish
  - name: finish
    action: core.noop
"""


@pytest.fixture(scope="module")
async def builder_pack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty pack the builder's workflows are created in (so no bundled pack changes)."""
    folder = tmp_path_factory.mktemp("builder-pack")
    (folder / "pack.yaml").write_text(
        f"ref: {PACK}\nlabel: Builder tests\nversion: '1.0.0'\ndescription: Made by the builder tests.\n"
    )
    await cluster.register_pack(folder)
    return PACK


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def api(page: Page, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Calls the console's API with the page's session cookie (and its CSRF token)."""
    session = await (await page.request.get("/api/session")).json()
    reply = await page.request.fetch(path, method=method, data=body, headers={"X-CSRF-Token": session["csrf_token"]})
    return reply.status, await reply.json()


async def set_task(page: Page, old: str, new: str, action: str) -> None:
    """Renames the task card `old` to `new` and picks its action (committed with Tab)."""
    await page.locator(f'[data-task-form="{old}"] .task-name').fill(new)
    card = page.locator(f'[data-task-form="{new}"]')
    await card.locator(".task-name").press("Tab")
    await card.locator(".task-action").fill(action)
    await card.locator(".task-action").press("Tab")


async def test_build_from_forms_save_and_run(page_for: PageFor, builder_pack: str) -> None:
    page = await page_for("admin")
    name = unique("greeting")
    await page.goto("/#/builder/new")
    await page.fill("#builder-pack", builder_pack)
    await page.fill("#builder-name", name)
    await page.fill("#builder-description", "Greets, then finishes.")
    await page.click("#builder-add-parameter")
    await page.get_by_label("Parameter 1 name").fill("who")
    await page.get_by_label("Parameter 1 default").fill("builder")
    await set_task(page, "task1", "greet", "core.echo")
    greet = page.locator('[data-task-form="greet"]')
    # Choosing core.echo offered its parameter as a field.
    await greet.locator('[data-input="message"]').fill("hello from the {{ parameters.who }}")
    await page.click("#builder-add-task")
    await set_task(page, "task2", "finish", "core.noop")
    await greet.locator(".add-transition").click()
    await greet.locator(".transition-when").fill("{{ succeeded() }}")
    await greet.locator(".transition-do").fill("finish")

    await page.click("#builder-tab-yaml")
    assert await page.input_value("#builder-yaml") == BUILT_YAML
    await expect(page.locator('#builder-graph g[data-task="finish"]')).to_have_count(1)
    await expect(page.locator("#builder-check-status")).to_have_text("No problems found.")

    await page.click("#builder-save")
    ref = f"{builder_pack}.{name}"
    await expect(page.locator("#builder-status")).to_have_text(f"Saved {ref}.")
    assert await page.evaluate("location.hash") == f"#/builder/{ref}"
    status, action = await api(page, "GET", f"/api/actions/{ref}")
    assert status == 200 and action["definition"] == BUILT_YAML and action["description"] == "Greets, then finishes."
    assert {key: action["parameters"]["who"][key] for key in ("type", "default")} == {
        "type": "string",
        "default": "builder",
    }
    await expect(page.locator("#builder-pack")).to_be_disabled()
    await page.click("#builder-tab-form")
    await page.set_viewport_size({"width": 1400, "height": 1100})
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(screenshot_path(page)))

    await page.click("#builder-run")
    await page.wait_for_url("**/#/executions/*")
    for task in ("greet", "finish"):
        node = page.locator(f'g.node[data-task="{task}"]')
        await expect(node).to_have_attribute("data-state", "succeeded", timeout=30_000)


def screenshot_path(page: Page) -> Path:
    """The committed screenshot only when asked for (ATTUNE_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("ATTUNE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "console-builder.png"


async def test_edit_locks_the_ref_and_a_tampered_save_changes_nothing(page_for: PageFor, builder_pack: str) -> None:
    page = await page_for("admin")
    name = unique("locked")
    ref = f"{builder_pack}.{name}"
    definition = "version: 1\ntasks:\n  - name: only\n    action: core.noop\n"
    status, _ = await api(
        page,
        "POST",
        "/api/actions",
        {"pack": builder_pack, "name": name, "description": "before", "parameters": {}, "definition": definition},
    )
    assert status == 201
    await page.goto(f"/#/builder/{ref}")
    pack_input, name_input = page.locator("#builder-pack"), page.locator("#builder-name")
    await expect(pack_input).to_be_disabled()
    await expect(name_input).to_be_disabled()
    await expect(pack_input).to_have_value(builder_pack)
    await expect(name_input).to_have_value(name)
    await expect(page.locator('[data-task-form="only"] .task-action')).to_have_value("core.noop")

    _, before = await api(page, "GET", f"/api/actions/{ref}")
    await page.evaluate("document.getElementById('builder-name').removeAttribute('disabled')")
    await name_input.fill("renamed")
    await page.fill("#builder-description", "after")
    async with page.expect_response(lambda r: r.request.method == "PUT") as answer:
        await page.click("#builder-save")
    assert (await answer.value).status == 412
    banner = page.locator("#builder-banner [role=alert]")
    await expect(banner).to_contain_text("nothing changed")
    await expect(banner).to_contain_text("name")
    _, after = await api(page, "GET", f"/api/actions/{ref}")
    assert after == before
    status, _ = await api(page, "GET", f"/api/actions/{builder_pack}.renamed")
    assert status == 404

    # Untampered, the save sends the loaded ref's pack and name, and goes through.
    await page.goto(f"/#/builder/{ref}?again")
    await expect(page.locator("#builder-name")).to_be_disabled()
    await page.fill("#builder-description", "after")
    await page.click("#builder-save")
    await expect(page.locator("#builder-status")).to_have_text(f"Saved {ref}.")
    _, saved = await api(page, "GET", f"/api/actions/{ref}")
    assert saved["description"] == "after" and saved["ref"] == ref


async def test_a_validation_problem_is_shown_on_its_task_line_and_node(page_for: PageFor, builder_pack: str) -> None:
    page = await page_for("admin")
    await page.goto("/#/builder/new")
    await page.fill("#builder-pack", builder_pack)
    await page.click("#builder-tab-yaml")
    text = (
        "version: 1\n"
        "tasks:\n"
        "  - name: fetch\n"
        "    action: core.noop\n"
        "    next:\n"
        "      - do: report\n"
        "  - name: report\n"
        "    action: core.echo\n"
        "    input: {message: done}\n"
        "    next:\n"
        "      - when: '{{ failed() }}'\n"
        "        do: [nowhere]\n"
    )
    await page.fill("#builder-yaml", text)
    line = text.splitlines().index("        do: [nowhere]") + 1
    # The YAML line is marked...
    await expect(page.locator(f'#builder-yaml-gutter [data-line="{line}"]')).to_have_class("yaml-line problem")
    await expect(page.locator("#builder-yaml-gutter .problem")).to_have_count(1)
    # ...the graph node...
    await expect(page.locator('#builder-graph g[data-task="report"]')).to_have_class("node has-problem")
    await expect(page.locator('#builder-graph g[data-task="fetch"]')).to_have_class("node")
    # ...and the form of the right task, built from the YAML, on the field the problem names.
    await page.click("#builder-tab-form")
    report = page.locator('[data-task-form="report"]')
    await expect(report.locator(".task-problems")).to_contain_text('unknown task "nowhere"')
    await expect(report.locator(".transition-do")).to_have_attribute("aria-invalid", "true")
    await expect(report.locator('[data-input="message"]')).to_have_value("done")
    await expect(page.locator('[data-task-form="fetch"] .task-problems li')).to_have_count(0)

    # YAML that cannot be read leaves the forms alone (inert, with a notice) instead of stale.
    await page.click("#builder-tab-yaml")
    await page.fill("#builder-yaml", "tasks: [\n")
    await page.click("#builder-tab-form")
    await expect(page.locator("#builder-panel-form [role=alert]")).to_contain_text("edit it in the YAML tab")
    assert await page.evaluate("document.querySelector('#builder-panel-form [role=alert]').nextElementSibling.inert")


async def test_only_an_admin_gets_the_builder(page_for: PageFor) -> None:
    page = await page_for("operator")
    await page.goto("/#/builder/new")
    await expect(page.get_by_role("alert")).to_contain_text("Only an admin may create or edit workflows")
    assert await page.locator("#builder-save").count() == 0


# Values a naive emitter gets wrong: YAML 1.1 booleans and nulls, numbers as strings, `: ` and
# ` #`, leading dashes and quotes, multi-line text, line separators, exponents, empty containers.
TRICKY: dict[str, Any] = {
    "yes": "no",
    "on": ["off", "y", "N", "Null", "~", "", " padded ", "trailing "],
    "numbers": ["42", "0x1F", "1_000", "1e3", ".inf", "12:30", "2026-12-05", 1.5, -3, 1e21, 1e-7, 0],
    "syntax": [
        "a: b",
        "a #b",
        "- x",
        "'q'",
        '"d"',
        "{{ result() }}",
        "[1]",
        "&anchor",
        "*ref",
        "!tag",
        "%x",
        "@x",
        "`x`",
    ],
    "text": ["line one\nline two\n", "no newline\nat end", "blank\n\nline", "\ttab", "nel\u0085ls\u2028", "emoji 🚀"],
    "nested": {"empty_list": [], "empty_map": {}, "lists": [[1, [2]], {"k": None, "t": True}]},
    "weird key: x": 1,
    "": "empty key",
}

# A workflow in the builder's canonical shape, with fields the forms do not edit themselves.
ROUND_TRIP: dict[str, Any] = {
    "version": 1,
    "description": "All the fields.",
    "parameters": {"hosts": {"type": "array", "required": True}, "n": {"type": "integer", "default": 2}},
    "vars": [{"count": 0}],
    "tasks": [
        {
            "name": "each",
            "action": "core.echo",
            "input": {"message": "{{ item }}"},
            "with_items": "{{ parameters.hosts }}",
            "concurrency": 2,
            "retry": {"count": 3, "delay": 1.5, "backoff": "exponential"},
            "timeout": 30,
            "next": [
                {"when": "{{ succeeded() }}", "publish": [{"count": "{{ vars.count + 1 }}"}], "do": ["done", "audit"]}
            ],
            "on_failure": "audit",
        },
        {"name": "done", "action": "core.noop", "join": "all", "delay": 2},
        {"name": "audit", "action": "core.noop"},
    ],
    "output_map": [{"count": "{{ vars.count }}"}],
    "cancellation_policy": "cancel_running",
}


async def test_yaml_and_the_form_model_round_trip_through_pyyaml(page_for: PageFor) -> None:
    page = await page_for("viewer")
    emitted = await page.evaluate(
        """async ([tricky, workflow]) => {
            const { toYaml } = await import("/static/js/yaml.js");
            const { fromDocument, toDocument } = await import("/static/js/builder_model.js");
            return [toYaml(tricky), toYaml(toDocument(fromDocument(workflow)))];
        }""",
        [TRICKY, ROUND_TRIP],
    )
    tricky, workflow = (yaml.safe_load(text) for text in emitted)
    assert tricky == TRICKY and list(tricky) == list(TRICKY)
    assert workflow == ROUND_TRIP and list(workflow["tasks"][0]) == list(ROUND_TRIP["tasks"][0])
