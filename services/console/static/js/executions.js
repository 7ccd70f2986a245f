// Executions (#/executions): newest first, filtered by state, action, time range and top level,
// paged with the API's page tokens, and kept live by re-reading the first page every 2 s while it
// is on screen (skipped while a filter is being typed, while the tab is hidden, or while a read
// is still in flight; the table is redrawn only when the answer changed).

import { api } from "./api.js";
import { h, replace, errorBox, pageHeader, stateBadge, shortId, formatTime, formatDuration } from "./dom.js";

export const STATES = ["requested", "scheduling", "scheduled", "running", "pending", "pausing", "paused", "succeeded", "failed", "timeout", "canceling", "cancelled", "abandoned"];
const PAGE_SIZE = 50;
const REFRESH_MS = 2000;
const TYPING_QUIET_MS = 1500;

/** Read the filters from the hash's query ("#/executions?state=failed&action=core.echo"). */
function filtersFromHash() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return {
    states: (q.get("state") || "").split(",").filter((s) => STATES.includes(s)),
    action: (q.get("action") || "").slice(0, 300),
    after: q.get("after") || "",
    before: q.get("before") || "",
    topLevel: q.get("top_level") !== "false",
  };
}

function filtersToQuery(f) {
  const q = new URLSearchParams();
  if (f.states.length) q.set("state", f.states.join(","));
  if (f.action) q.set("action", f.action);
  if (f.after) q.set("after", f.after);
  if (f.before) q.set("before", f.before);
  if (!f.topLevel) q.set("top_level", "false");
  return q;
}

// datetime-local text ("2026-12-05T19:42") is local time; the API wants an ISO instant.
function toIso(local) {
  if (!local) return "";
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? "" : t.toISOString();
}

/** The API path for the filters and a page token. */
export function listPath(f, pageToken) {
  const q = new URLSearchParams();
  if (f.states.length) q.set("state", f.states.join(","));
  if (f.action) q.set("action", f.action);
  if (f.after && toIso(f.after)) q.set("created_after", toIso(f.after));
  if (f.before && toIso(f.before)) q.set("created_before", toIso(f.before));
  q.set("top_level", f.topLevel ? "true" : "false");
  q.set("page_size", String(PAGE_SIZE));
  if (pageToken) q.set("page_token", pageToken);
  return `/api/executions?${q}`;
}

/** Render the executions list with its filters, paging and live refresh. */
export function render(root, _params, ctx) {
  const filters = filtersFromHash();
  const page = { tokens: [""], index: 0, next: "", lastText: "", inFlight: false, lastTyped: 0, seq: 0 };
  const tbody = h("tbody", {});
  const table = h(
    "table",
    { id: "executions", "aria-describedby": "executions-status" },
    h("caption", { class: "visually-hidden" }, "Executions, newest first"),
    h("thead", {}, h("tr", {}, ["Execution", "Action", "State", "Requested by", "Created", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
    tbody,
  );
  const status = h("p", { id: "executions-status", class: "muted", "aria-live": "polite" });
  const problem = h("div", {});
  const prev = h("button", { type: "button", class: "button-secondary", disabled: true }, "Previous");
  const next = h("button", { type: "button", class: "button-secondary", disabled: true }, "Next");
  const pageLabel = h("span", { class: "muted" });

  const load = async ({ quiet = false } = {}) => {
    const seq = ++page.seq;
    page.inFlight = true;
    try {
      const answer = await api.get(listPath(filters, page.tokens[page.index]));
      if (seq !== page.seq) return;
      replace(problem);
      const text = JSON.stringify(answer);
      if (quiet && text === page.lastText) return;
      page.lastText = text;
      page.next = answer.next_page_token || "";
      drawRows(tbody, answer.executions || [], ctx);
      const count = (answer.executions || []).length;
      status.textContent = count ? `${count} execution${count === 1 ? "" : "s"} on this page` : "No executions match these filters.";
      prev.disabled = page.index === 0;
      next.disabled = !page.next;
      pageLabel.textContent = `Page ${page.index + 1}`;
      if (!table.dataset.loaded) performance.mark("executions-rendered"); // the page's first rows (tests/bench)
      table.dataset.loaded = "true";
    } catch (err) {
      if (seq !== page.seq) return;
      replace(problem, errorBox(err));
    } finally {
      if (seq === page.seq) page.inFlight = false;
    }
  };

  const restart = () => {
    page.tokens = [""];
    page.index = 0;
    page.lastText = "";
    const query = filtersToQuery(filters).toString();
    history.replaceState(null, "", query ? `#/executions?${query}` : "#/executions");
    load();
  };

  prev.addEventListener("click", () => {
    if (page.index === 0) return;
    page.index -= 1;
    page.tokens.length = page.index + 1;
    load();
  });
  next.addEventListener("click", () => {
    if (!page.next) return;
    page.tokens.push(page.next);
    page.index += 1;
    load();
  });

  const form = filterForm(filters, restart, () => {
    page.lastTyped = Date.now();
  });
  replace(root, pageHeader("Executions"), form, problem, status, h("div", { class: "card table-card" }, table), h("div", { class: "pager" }, prev, pageLabel, next));
  load();

  const timer = setInterval(() => {
    if (page.index !== 0 || page.inFlight || document.hidden) return;
    if (Date.now() - page.lastTyped < TYPING_QUIET_MS) return;
    load({ quiet: true });
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    page.seq += 1;
  };
}

function filterForm(filters, onChange, onTyping) {
  const stateBoxes = STATES.map((state) => {
    const box = h("input", { type: "checkbox", id: `state-${state}`, value: state, checked: filters.states.includes(state) });
    box.addEventListener("change", () => {
      filters.states = stateBoxes.filter((b) => b.checked).map((b) => b.value);
      onChange();
    });
    return box;
  });
  const action = h("input", { id: "filter-action", type: "search", list: "action-refs", maxlength: "300", autocomplete: "off", placeholder: "pack.action", value: filters.action });
  const actions = h("datalist", { id: "action-refs" });
  let typingTimer = null;
  action.addEventListener("input", () => {
    onTyping();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      filters.action = action.value.trim();
      onChange();
    }, 350);
  });
  const after = h("input", { id: "filter-after", type: "datetime-local", step: "1", value: filters.after });
  const before = h("input", { id: "filter-before", type: "datetime-local", step: "1", value: filters.before });
  for (const [input, key] of [
    [after, "after"],
    [before, "before"],
  ]) {
    input.addEventListener("input", onTyping);
    input.addEventListener("change", () => {
      filters[key] = input.value;
      onChange();
    });
  }
  const scope = h("select", { id: "filter-scope" }, h("option", { value: "top" }, "Top level only"), h("option", { value: "all" }, "All (with workflow tasks)"));
  scope.value = filters.topLevel ? "top" : "all";
  scope.addEventListener("change", () => {
    filters.topLevel = scope.value === "top";
    onChange();
  });
  // Suggestions are read when first wanted, so they never delay the list itself.
  action.addEventListener("focus", () => fillActionRefs(actions), { once: true });
  return h(
    "form",
    { class: "toolbar", role: "search", "aria-label": "Filter executions", onsubmit: (e) => e.preventDefault() },
    h("fieldset", {}, h("legend", {}, "State"), h("div", { class: "state-options" }, stateBoxes.map((box) => h("label", { for: box.id }, box, box.value)))),
    h("div", { class: "field" }, h("label", { for: "filter-action" }, "Action"), action, actions),
    h("div", { class: "field" }, h("label", { for: "filter-after" }, "Created after"), after),
    h("div", { class: "field" }, h("label", { for: "filter-before" }, "Created before"), before),
    h("div", { class: "field" }, h("label", { for: "filter-scope" }, "Show"), scope),
  );
}

// Suggestions for the action filter; the list works without them, so a failure is ignored.
async function fillActionRefs(datalist) {
  try {
    const { packs } = await api.get("/api/packs");
    for (const pack of packs || []) for (const a of pack.actions || []) datalist.append(h("option", { value: a.ref }));
  } catch {
    /* suggestions only */
  }
}

function drawRows(tbody, executions, ctx) {
  const rows = document.createDocumentFragment();
  for (const ex of executions) {
    const href = `#/executions/${encodeURIComponent(ex.id)}`;
    const row = h(
      "tr",
      { dataset: { id: ex.id, state: ex.state } },
      h("td", { class: "mono" }, h("a", { href, title: ex.id, "aria-label": `Execution ${ex.id}` }, shortId(ex.id))),
      h("td", { class: "mono" }, ex.action_ref, ex.parent_id ? h("span", { class: "tag", title: `part of ${ex.parent_id}` }, " task") : null),
      h("td", {}, stateBadge(ex.state)),
      h("td", {}, ex.requested_by || ""),
      h("td", {}, h("time", { datetime: ex.created_at }, formatTime(ex.created_at))),
      h("td", {}, formatDuration(ex.started_at, ex.finished_at)),
    );
    // The whole row is clickable with the mouse; the id link is the keyboard target.
    row.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      ctx.navigate(href);
    });
    rows.append(row);
  }
  replace(tbody, rows);
}
