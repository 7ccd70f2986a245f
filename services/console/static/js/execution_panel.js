// The side panel of one task of a workflow execution: its runs (run, item, attempt, state,
// timing, child execution) and, for the chosen run, the child's input, result and error read
// from GET /api/executions/<child>. A child that is a workflow opens in place, below, as the
// same live view (execution_workflow.js) fed by the child's own event stream.

import { api } from "./api.js";
import { errorBox, formatDuration, formatTime, h, replace, shortId, stateBadge } from "./dom.js";
import { respondForm } from "./execution_actions.js";
import { followExecution } from "./execution_stream.js";
import { mountWorkflow } from "./execution_workflow.js";

const MAX_RUN_ROWS = 200;
const MAX_DEPTH = 6;

/** Formatted JSON in a <pre>, or a dash when there is nothing. */
export function jsonBlock(value, attrs = {}) {
  const empty = value === null || value === undefined || (typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length);
  return h("pre", { class: "json", ...attrs }, empty ? "—" : typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** Returns {apply(snapshot), destroy()}; onClose hides the panel. */
export function renderTaskPanel(box, name, ctx, depth, onClose) {
  const heading = h("h3", { tabindex: "-1" }, `Task ${name}`);
  const summary = h("p", { class: "task-summary" });
  const runsBox = h("div", { class: "task-runs" });
  const detail = h("div", { class: "run-detail" });
  replace(
    box,
    h("div", { class: "panel-head" }, heading, h("button", { type: "button", class: "button-secondary button-small", "aria-label": "Close task panel", onclick: onClose }, "Close")),
    summary,
    runsBox,
    detail,
  );
  heading.focus({ preventScroll: true });
  let chosen = null; // child execution id of the run shown in detail
  let shownKey = null;
  let child = null; // {id, state, close, nested}

  const closeChild = () => {
    if (!child) return;
    if (child.close) child.close();
    if (child.nested) child.nested.destroy();
    child = null;
  };

  const showRun = async (run) => {
    chosen = run.child_execution_id || null;
    closeChild();
    if (!chosen) {
      replace(detail, h("p", { class: "muted" }, "This run has no child execution yet."));
      return;
    }
    const id = chosen;
    child = { id, state: run.state };
    replace(detail, h("p", { class: "muted" }, "Loading the child execution…"));
    try {
      const execution = await api.get(`/api/executions/${encodeURIComponent(id)}`);
      if (!child || child.id !== id) return;
      drawChild(execution);
    } catch (err) {
      if (child && child.id === id) replace(detail, errorBox(err));
    }
  };

  const drawChild = (execution) => {
    const parts = [
      h("h4", {}, "Child execution ", h("a", { href: `#/executions/${encodeURIComponent(execution.id)}` }, shortId(execution.id)), " ", stateBadge(execution.state)),
      h("p", { class: "muted" }, `${execution.action_ref} · started ${formatTime(execution.started_at) || "—"} · ${formatDuration(execution.started_at, execution.finished_at) || "not started"}`),
      h("h5", {}, "Input"),
      jsonBlock(execution.parameters, { "data-field": "input" }),
      h("h5", {}, "Result"),
      jsonBlock(execution.result, { "data-field": "result" }),
      h("h5", {}, "Error"),
      jsonBlock(execution.error, { "data-field": "error", class: execution.error ? "json error-text" : "json" }),
    ];
    if (execution.state === "pending" && ctx.can("operator")) parts.push(respondForm(execution, () => showRun({ child_execution_id: execution.id, state: "pending" })));
    if (execution.is_workflow && depth < MAX_DEPTH) parts.push(nestedToggle(execution));
    replace(detail, ...parts);
  };

  const nestedToggle = (execution) => {
    const holder = h("div", { class: "nested-workflow" });
    const toggle = h("button", { type: "button", class: "button-secondary", "aria-expanded": "false" }, "Show nested workflow");
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") === "true";
      if (open) {
        if (child.close) child.close();
        if (child.nested) child.nested.destroy();
        child.close = null;
        child.nested = null;
        replace(holder);
      } else {
        child.nested = mountWorkflow(holder, ctx, depth + 1);
        child.nested.apply(execution);
        child.close = followExecution(execution.id, (snapshot) => child && child.nested && child.nested.apply(snapshot));
      }
      toggle.setAttribute("aria-expanded", String(!open));
      toggle.textContent = open ? "Show nested workflow" : "Hide nested workflow";
    });
    return h("div", {}, toggle, holder);
  };

  return {
    apply(snapshot) {
      const workflow = snapshot.workflow || {};
      const task = (workflow.tasks || {})[name] || { state: "waiting", runs: 0 };
      const runs = (workflow.task_runs || []).filter((run) => run.task_name === name);
      const key = JSON.stringify([task, runs.map((run) => [run.state, run.child_execution_id, run.finished_at])]);
      if (key === shownKey) return;
      shownKey = key;
      const items = task.items_total ? `, ${task.items_done}/${task.items_total} items` : "";
      replace(summary, stateBadge(task.state || "waiting"), ` ${task.runs || 0} run${task.runs === 1 ? "" : "s"}${items}`);
      replace(runsBox, runsTable(runs, chosen, showRun));
      const latest = runs[runs.length - 1];
      const current = runs.find((run) => run.child_execution_id && run.child_execution_id === chosen);
      if (!chosen && latest) showRun(latest);
      else if (current && child && child.state !== current.state && !child.nested) showRun(current);
    },
    destroy() {
      closeChild();
    },
  };
}

function runsTable(runs, chosen, onShow) {
  if (!runs.length) return h("p", { class: "muted" }, "Not started.");
  const shown = runs.slice(-MAX_RUN_ROWS);
  const rows = shown.map((run) =>
    h(
      "tr",
      { class: run.child_execution_id && run.child_execution_id === chosen ? "chosen" : null, dataset: { state: String(run.state || "").toLowerCase() } },
      h("td", {}, String(run.run)),
      h("td", {}, run.item_index === null || run.item_index === undefined || run.item_index < 0 ? "—" : String(run.item_index)),
      h("td", {}, String(run.attempt)),
      h("td", {}, stateBadge(run.state)),
      h("td", { title: formatTime(run.started_at) }, formatTime(run.started_at).slice(11) || "—"),
      h("td", {}, formatDuration(run.started_at, run.finished_at) || "—"),
      h(
        "td",
        {},
        run.child_execution_id
          ? h("button", { type: "button", class: "button-secondary button-small", "aria-label": `Show run ${run.run}${run.item_index >= 0 ? ` item ${run.item_index}` : ""} attempt ${run.attempt}`, onclick: () => onShow(run) }, shortId(run.child_execution_id))
          : "—",
      ),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    runs.length > shown.length ? h("p", { class: "muted" }, `The last ${shown.length} of ${runs.length} runs.`) : null,
    h(
      "table",
      { class: "runs" },
      h("caption", { class: "visually-hidden" }, "Runs of this task"),
      h("thead", {}, h("tr", {}, ["Run", "Item", "Attempt", "State", "Started", "Took", "Child"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows),
    ),
  );
}
