"""The console with a keyboard and a screen reader, in a real browser (issue #17, "Quality").

- Every page (sign-in, packs, an action, the Run form, the builder new and editing, the executions
  list, a workflow execution with its task panel open) is audited: each control has an accessible
  name as Chromium computes it for screen readers (the accessibility tree read over CDP: label,
  aria-label(ledby), content, title — a placeholder alone does not count), each SVG has a role and
  a name or is aria-hidden, the page has one h1 and a main landmark (and a nav once signed in),
  its status texts sit in live regions, and every focusable element shows a focus ring when
  reached by keyboard (an outline or box-shadow; a graph node by its box's stroke).
- Keyboard-only flows: sign in with Tab/Enter; search the packs and Tab to a Run link, Enter opens
  the Run form; type a value, Tab to Run, Enter submits; in the execution view Tab to a graph node,
  Enter opens its task panel, Close hands focus back to the node. Each focus stop is checked visible.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from playwright.async_api import Browser, Page, expect

from attune.registry.v1 import registry_pb2
from tests.console.conftest import PageFor
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

PACK_REF = "consolea11y"
WORKFLOW = f"{PACK_REF}.greet"
WAIT_MS = 30_000
#: Tab presses allowed to reach one target (the packs page lists every registered action).
MAX_TABS = 80

PACK = {
    "pack.yaml": f'ref: {PACK_REF}\nlabel: Console accessibility\nversion: "1.0.0"\n',
    # One parameter of each kind the Run form draws (text, number, checkbox/select, enum, JSON).
    "workflows/greet.workflow.yaml": f"""
ref: {WORKFLOW}
label: Greet, wait a little, finish
parameters:
  name: {{type: string, required: true, description: Who to greet.}}
  times: {{type: integer, default: 1, minimum: 1, maximum: 5}}
  loud: {{type: boolean}}
  mood: {{type: string, enum: [calm, happy]}}
  tags: {{type: array, description: Free labels.}}
tasks:
  - name: hello
    action: core.echo
    input: {{message: "hello {{{{ parameters.name }}}}"}}
    next:
      - when: "{{{{ succeeded() }}}}"
        do: nap
  - name: nap
    action: core.sleep
    input: {{seconds: 2}}
    next:
      - do: done
  - name: done
    action: core.noop
""",
}

#: Roles whose elements a keyboard user operates: each needs a name a screen reader reads.
NAMED_ROLES = {
    "button",
    "link",
    "textbox",
    "searchbox",
    "combobox",
    "checkbox",
    "radio",
    "spinbutton",
    "slider",
    "switch",
    "tab",
    "listbox",
    "menuitem",
    "option",
    "DateTime",
    "InputTime",
    "Date",
}
FORM_TAGS = {"INPUT", "SELECT", "TEXTAREA", "BUTTON"}

# In-page helper: why `el`, focused by keyboard, shows no usable focus ring ("" when it does).
# A ring is an outline or a box-shadow in a colour with a 3:1 contrast against the background
# around the element (WCAG 1.4.11); with two tones (outline and shadow) one of them suffices.
RING_JS = """
const ringProblem = (el) => {
  if (!el.matches(':focus-visible')) return 'not :focus-visible after keyboard focus';
  const rgb = (text) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(text || '');
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const contrast = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  let around = { r: 255, g: 255, b: 255, a: 1 };
  for (let e = el.parentElement; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.5) { around = c; break; }
  }
  const s = getComputedStyle(el);
  const colours = [];
  if (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) colours.push(rgb(s.outlineColor));
  if (s.boxShadow && s.boxShadow !== 'none') colours.push(rgb(s.boxShadow));
  const usable = colours.filter((c) => c && c.a > 0.5);
  if (!usable.length) return 'no visible focus ring';
  const best = Math.max(...usable.map((c) => contrast(c, around)));
  return best >= 3 ? '' : 'focus ring contrast ' + best.toFixed(2) + ':1 (needs 3:1)';
};
const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
  (el.getAttribute('aria-label') ? '[' + el.getAttribute('aria-label') + ']' : '') +
  (el.textContent.trim() ? ' "' + el.textContent.trim().slice(0, 40) + '"' : '');
"""

# Runs in the page: every visible keyboard-reachable element (tabindex >= 0, or natively
# focusable) is focused in turn after a real Tab press (so Chromium treats the focus as keyboard
# focus, :focus-visible) and must show a ring (RING_JS). Returns one line per element that does not.
FOCUS_RING_JS = (
    "() => {"
    + RING_JS
    + """
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  const bad = [];
  for (const el of document.querySelectorAll(selector)) {
    const shown = el.checkVisibility({ checkVisibilityCSS: true }) && !el.closest('[inert]');
    if (el.tabIndex < 0 || el.disabled || !shown) continue;
    el.focus({ preventScroll: true });
    if (document.activeElement !== el) { bad.push('cannot take focus: ' + describe(el)); continue; }
    const why = ringProblem(el);
    if (why) bad.push(why + ': ' + describe(el));
  }
  return bad;
}"""
)

# Runs in the page: where each status text named by a selector sits; "" when inside a live
# region (aria-live other than off, or role status/alert/log), else why not.
LIVE_JS = """
(selectors) => selectors.map((sel) => {
  const el = document.querySelector(sel);
  if (!el) return sel + ': not on the page';
  const region = el.closest('[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log]');
  return region ? '' : sel + ': not in a live region';
}).filter(Boolean)
"""

# Runs in the page: ids used twice, and ARIA / label references to ids that are not on the page
# (a screen reader then reads no label or description at all).
REFS_JS = (
    "() => {"
    + RING_JS
    + """
  const bad = [];
  const counts = new Map();
  for (const el of document.querySelectorAll('[id]')) counts.set(el.id, (counts.get(el.id) || 0) + 1);
  for (const [id, n] of counts) if (n > 1) bad.push('id "' + id + '" used ' + n + ' times');
  const attrs = ['aria-labelledby', 'aria-describedby', 'aria-controls', 'aria-errormessage', 'for', 'list'];
  for (const el of document.querySelectorAll(attrs.map((a) => '[' + a + ']').join(','))) {
    for (const attr of attrs) {
      for (const id of (el.getAttribute(attr) || '').split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) bad.push(attr + ' of ' + describe(el) + ' names a missing id "' + id + '"');
      }
    }
  }
  return bad;
}"""
)

# The focused element as a short text, whether it is visible and why it shows no ring ("" if it does).
ACTIVE_JS = (
    "() => {"
    + RING_JS
    + """
  const el = document.activeElement;
  if (!el || el === document.body) return { what: 'body', ring: 'nothing is focused', visible: false };
  return { what: describe(el), ring: ringProblem(el), visible: el.checkVisibility() };
}"""
)


# Deliberate faults added to a page, to prove the audit sees each kind (it must not pass vacuously).
PROBES_JS = """
() => {
  const svgNs = 'http://www.w3.org/2000/svg';
  const make = (tag, props) => Object.assign(document.createElement(tag), props);
  const box = make('div', { id: 'a11y-probes' });
  const ringless = make('button', { id: 'probe-ringless', textContent: 'No ring' });
  ringless.style.outline = 'none';
  ringless.style.boxShadow = 'none';
  const faint = make('a', { id: 'probe-faint', href: '#/packs', textContent: 'Faint ring' });
  faint.style.outlineColor = '#eeeeee';
  faint.style.boxShadow = 'none';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.id = 'probe-svg';
  svg.append(document.createElementNS(svgNs, 'circle'));
  box.append(make('input', { id: 'probe-input', placeholder: 'type here' }), make('button', { id: 'probe-button' }),
    ringless, faint, svg, make('h1', { textContent: 'A second title' }));
  const described = make('input', { id: 'probe-described' });
  described.setAttribute('aria-label', 'Described');
  described.setAttribute('aria-describedby', 'probe-nowhere');
  const named = make('div', { id: 'probe-named', textContent: 'x' });
  named.setAttribute('aria-label', 'Named div');
  box.append(described, named);
  document.getElementById('view').append(box);
}
"""
PROBE_FINDINGS = (
    "named only by its placeholder: input[id='probe-input']",
    "no accessible name: button[id='probe-button']",
    "no visible focus ring: button#probe-ringless",
    "focus ring contrast",
    "an SVG without a role (nor aria-hidden): svg[id='probe-svg']",
    "2 h1 headings instead of one",
    'aria-describedby of input#probe-described[Described] names a missing id "probe-nowhere"',
    "a name on an element without a role is not read: div[id='probe-named']",
)


@pytest.fixture(scope="module")
async def pack(cluster: Cluster) -> str:
    """The test pack (one workflow with every kind of parameter), registered through the API."""
    files = [registry_pb2.PackFile(path=path, content=text.encode()) for path, text in PACK.items()]
    await cluster.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=30)
    return WORKFLOW


def _attributes(node: dict[str, Any]) -> dict[str, str]:
    values = node.get("attributes", [])
    return dict(zip(values[::2], values[1::2], strict=True))


def _walk(node: dict[str, Any], visit: Callable[[dict[str, Any]], None]) -> None:
    visit(node)
    for child in node.get("children", []):
        _walk(child, visit)


def _describe(node: dict[str, Any]) -> str:
    attrs = _attributes(node)
    extra = "".join(f"[{k}={attrs[k]!r}]" for k in ("id", "class", "type", "role", "name") if attrs.get(k))
    return f"{node['nodeName'].lower()}{extra}"


def _hidden(ax: dict[str, Any]) -> bool:
    """Whether Chromium leaves the node out because it is hidden (not merely uninteresting)."""
    reasons = {str(r.get("name")) for r in ax.get("ignoredReasons", [])}
    return bool(ax.get("ignored")) and reasons != {"uninteresting"}


def _name_source(ax: dict[str, Any]) -> str | None:
    """The kind of source Chromium took the accessible name from (None when unnamed)."""
    name = ax.get("name") or {}
    if not str(name.get("value", "")).strip():
        return None
    for source in name.get("sources", []):
        if "value" in source and not source.get("superseded") and str(source["value"].get("value", "")).strip():
            return str(source.get("type", "")) + ":" + str(source.get("attribute", ""))
    return "unknown"


def _outline_problems(tree: list[dict[str, Any]], signed_in: bool) -> list[str]:
    """One h1 and one main landmark, and a nav once signed in, among the nodes that are read."""
    shown = [ax for ax in tree if not ax.get("ignored")]
    roles = [str((ax.get("role") or {}).get("value", "")) for ax in shown]
    h1s = sum(
        1
        for ax, role in zip(shown, roles, strict=True)
        if role == "heading"
        and any(p["name"] == "level" and p["value"]["value"] == 1 for p in ax.get("properties", []))
    )
    problems = [] if h1s == 1 else [f"{h1s} h1 headings instead of one"]
    if roles.count("main") != 1:
        problems.append(f"{roles.count('main')} main landmarks instead of one")
    if signed_in and "navigation" not in roles:
        problems.append("no navigation landmark")
    return problems


async def audit(page: Page, label: str, *, signed_in: bool = True, live: tuple[str, ...] = ()) -> list[str]:
    """What a screen-reader or keyboard user would miss on the current page, one line each."""
    cdp = await page.context.new_cdp_session(page)
    try:
        document = (await cdp.send("DOM.getDocument", {"depth": -1}))["root"]
        tree = (await cdp.send("Accessibility.getFullAXTree"))["nodes"]
    finally:
        await cdp.detach()
    by_dom = {node["backendDOMNodeId"]: node for node in tree if "backendDOMNodeId" in node}
    problems: list[str] = []

    def role_of(ax: dict[str, Any]) -> str:
        return str((ax.get("role") or {}).get("value", ""))

    def visit(node: dict[str, Any]) -> None:
        if node.get("nodeType") != 1:
            return
        ax = by_dom.get(node["backendNodeId"])
        tag = node["nodeName"].upper()
        attrs = _attributes(node)
        if ax is not None and tag == "SVG" and "role" not in attrs and not _hidden(ax):
            problems.append(f"{label}: an SVG without a role (nor aria-hidden): {_describe(node)}")
        if ax is None or ax.get("ignored"):
            return  # hidden (display:none, hidden, aria-hidden, inert): not read at all
        interactive = (
            (tag in FORM_TAGS and attrs.get("type") != "hidden")
            or (tag == "A" and "href" in attrs)
            or role_of(ax) in NAMED_ROLES
            or attrs.get("tabindex", "-1").isdigit()
        )
        if role_of(ax) in {"generic", "none"} and ("aria-label" in attrs or "aria-labelledby" in attrs):
            problems.append(f"{label}: a name on an element without a role is not read: {_describe(node)}")
        if interactive or tag in {"SVG", "IMG"}:
            source = _name_source(ax)
            if source is None:
                problems.append(f"{label}: no accessible name: {_describe(node)} (role {role_of(ax)})")
            elif source.startswith("placeholder"):
                problems.append(f"{label}: named only by its placeholder: {_describe(node)}")

    _walk(document, visit)
    problems += [f"{label}: {line}" for line in _outline_problems(tree, signed_in)]
    problems += [f"{label}: {line}" for line in await page.evaluate(LIVE_JS, ["#status", *live])]
    problems += [f"{label}: {line}" for line in await page.evaluate(REFS_JS)]
    await page.keyboard.press("Tab")  # keyboard modality, so focus() below counts as keyboard focus
    problems += [f"{label}: {line}" for line in await page.evaluate(FOCUS_RING_JS)]
    return problems


async def test_every_page_names_its_controls_and_has_landmarks(
    browser: Browser, console: str, pack: str, page_for: PageFor, cluster: Cluster
) -> None:
    problems: list[str] = []
    context = await browser.new_context(base_url=console)
    try:
        sign_in = await context.new_page()
        await sign_in.goto("/")
        await expect(sign_in.get_by_label("Access token")).to_be_focused()
        problems += await audit(sign_in, "sign-in", signed_in=False, live=("#sign-in-error",))
    finally:
        await context.close()

    finished = await cluster.run(pack, {"name": "audit", "tags": ["a", "b"]}, timeout=60)
    page = await page_for("admin")
    await page.goto("/#/packs")
    await expect(page.locator(f'article[data-ref="{pack}"]')).to_be_visible()
    problems += await audit(page, "packs", live=("#action-count",))

    await page.goto(f"/#/actions/{pack}")
    await expect(page.get_by_role("heading", name="Definition")).to_be_visible()
    problems += await audit(page, "action")
    await page.evaluate(PROBES_JS)
    found = "\n".join(await audit(page, "probes"))
    assert [f for f in PROBE_FINDINGS if f not in found] == [], found

    await page.goto(f"/#/run/{pack}")
    await expect(page.get_by_label("tags")).to_be_visible()
    await page.get_by_role("button", name="Run", exact=True).click()  # the required name is missing
    await expect(page.locator("#param-name-error")).not_to_be_empty()
    problems += await audit(page, "run form", live=("#param-name-error",))

    await page.goto("/#/builder/new")
    await expect(page.locator("#builder-save")).to_be_visible()
    problems += await audit(page, "builder new", live=("#builder-status",))

    await page.goto(f"/#/builder/{pack}")
    await expect(page.locator('[data-task-form="nap"]')).to_be_visible()
    await expect(page.locator('#builder-graph g.node[data-task="done"]')).to_be_visible()
    problems += await audit(page, "builder edit", live=("#builder-status",))

    await page.goto("/#/executions")
    await expect(page.locator("#executions[data-loaded]")).to_be_visible()
    problems += await audit(page, "executions", live=("#executions-status",))

    await page.goto(f"/#/executions/{finished.execution.id}")
    node = page.locator('g.node[data-task="hello"]')
    await expect(node).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await node.click()
    await expect(page.locator("aside.task-panel table.runs")).to_be_visible()
    await page.get_by_role("button", name="Re-run", exact=True).click()  # its form is audited too
    await expect(page.locator(".rerun-form")).to_be_visible()
    await page.evaluate("document.querySelectorAll('#view details').forEach((d) => { d.open = true; })")
    problems += await audit(page, "execution", live=(".live-status",))

    assert problems == [], "\n".join(problems)


async def _tab_to(page: Page, is_target: str, what: str) -> list[str]:
    """Presses Tab until `is_target` (JS, given the focused element as `el`) holds; every stop on
    the way must be visible and show a focus ring. Returns the stops (id, else the tag name)."""
    stops: list[str] = []
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        active = await page.evaluate(ACTIVE_JS)
        assert active["visible"], f"focus went to something hidden: {active['what']}"
        assert not active["ring"], f"{active['ring']}: {active['what']}"
        stops.append(await page.evaluate("document.activeElement.id || document.activeElement.tagName.toLowerCase()"))
        if await page.evaluate(f"(el => {is_target})(document.activeElement)"):
            return stops
    raise AssertionError(f"{what} not reached in {MAX_TABS} Tab presses")


async def test_keyboard_only_sign_in_run_and_open_a_task(
    browser: Browser, console: str, tokens: dict[str, str], pack: str, cluster: Cluster
) -> None:
    context = await browser.new_context(base_url=console)
    try:
        page = await context.new_page()
        await page.goto("/")
        await expect(page.get_by_label("Access token")).to_be_focused()
        await page.keyboard.type(tokens["operator"])
        await _tab_to(page, "el.type === 'submit' && el.textContent === 'Sign in'", "the Sign in button")
        await page.keyboard.press("Enter")
        heading = page.get_by_role("heading", name="Packs and actions", level=1)
        await expect(heading).to_be_focused()  # the new page's heading takes focus
        await expect(page.locator("#status")).to_have_text(re.compile(r"Signed in as .+, operator\."))

        await _tab_to(page, "el.id === 'action-search'", "the search field")
        await page.keyboard.type(pack)
        await expect(page.locator("#action-count")).to_have_text("1 matching action")
        await _tab_to(page, f"el.getAttribute('aria-label') === 'Run {pack}'", f"the Run link of {pack}")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name=f"Run {pack}", level=1)).to_be_focused()

        # The fields come in a fixed order (required first, then by name), whatever the API's key order.
        assert await _tab_to(page, "el.id === 'param-name'", "the name field") == ["param-name"]
        await page.keyboard.type("keyboard")
        stops = await _tab_to(page, "el.id === 'param-times'", "the times field")
        assert stops == ["param-loud", "param-mood", "param-tags", "param-times"]
        await page.keyboard.press("ArrowUp")  # 1 → 2
        await _tab_to(page, "el.type === 'submit'", "the Run button")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]+$"), timeout=WAIT_MS)
        execution_id = page.url.rsplit("/", 1)[1]
        await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Execution "))
        # While it runs, the clock ticks every second; the focused link must stay focused.
        await _tab_to(page, f"el.textContent === '{pack}' && el.closest('.execution-facts')", "the action link")
        await expect(page.locator('g.node[data-task="nap"]')).to_have_attribute(
            "data-state", "running", timeout=WAIT_MS
        )
        await page.wait_for_timeout(1100)
        await expect(page.locator(".execution-facts a").first).to_be_focused()

        await _tab_to(page, "el.matches('g.node[data-task=\"nap\"]')", "the graph node nap")
        await page.keyboard.press("Enter")
        panel = page.get_by_role("complementary", name="selected task")
        await expect(panel.get_by_role("heading", name="Task nap")).to_be_focused()
        await _tab_to(page, "el.getAttribute('aria-label') === 'Close task panel'", "the panel's Close button")
        await page.keyboard.press("Enter")
        await expect(panel).to_be_hidden()
        await expect(page.locator('g.node[data-task="nap"]')).to_be_focused()  # focus goes back where it was

        # The end of the run is announced to screen readers, not only drawn.
        await expect(page.locator('g.node[data-task="done"]')).to_have_attribute(
            "data-state", "succeeded", timeout=WAIT_MS
        )
        await expect(page.locator("#status")).to_have_text(f"Execution {pack} succeeded.")
        reply = await cluster.wait_terminal(execution_id)
        assert reply.execution.action_ref == pack
        parameters = json_format.MessageToDict(reply.execution.parameters)
        assert parameters["name"] == "keyboard" and parameters["times"] == 2
    finally:
        await context.close()
