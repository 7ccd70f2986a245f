// The execution view (#/executions/<id>): header (action, state, times, who asked), the controls
// allowed to the role, and for a workflow its live graph, task panel and timeline; then
// parameters, result and error as formatted JSON, and the live logs. Everything is fed by the
// execution's event stream (a `snapshot` whenever it changes); leaving the page closes it.

import { api } from "./api.js";
import { announce, formatDuration, formatTime, h, pageHeader, replace, shortId, stateBadge } from "./dom.js";
import { renderControls } from "./execution_actions.js";
import { renderLogs } from "./execution_logs.js";
import { jsonBlock } from "./execution_panel.js";
import { followExecution } from "./execution_stream.js";
import { linkStylesheet } from "./graph_markup.js";
import { mountWorkflow } from "./execution_workflow.js";

const TERMINAL = new Set(["succeeded", "failed", "timeout", "cancelled", "abandoned"]);
// States a screen reader is told about as they happen: the end, and a wait for someone.
const ANNOUNCED = new Set([...TERMINAL, "pending", "paused"]);

/** Page entry point (see app.js): returns the cleanup that closes every stream. */
export async function render(root, params, ctx) {
  linkStylesheet("/static/css/execution.css");
  const id = params[0];
  const first = await api.get(`/api/executions/${encodeURIComponent(id)}`);
  const header = h("dl", { class: "execution-facts" });
  const live = h("p", { class: "muted live-status", role: "status" });
  const controls = renderControls(ctx, () => refresh());
  const workflowBox = h("section", { class: "execution-workflow", "aria-label": "workflow" });
  const data = h("div", { class: "execution-data" });
  const logs = renderLogs(id);
  replace(
    root,
    pageHeader(`Execution ${shortId(id)}`),
    header,
    live,
    controls.element,
    first.is_workflow ? h("h2", {}, "Workflow") : null,
    first.is_workflow ? workflowBox : null,
    data,
    logs.element,
  );
  const workflow = first.is_workflow ? mountWorkflow(workflowBox, ctx) : null;
  let shownData = null;
  let last = null;

  const apply = (snapshot) => {
    if (last && last.state !== snapshot.state && ANNOUNCED.has(snapshot.state)) announce(`Execution ${snapshot.action_ref} ${snapshot.state}.`);
    last = snapshot;
    drawFacts(header, snapshot);
    controls.apply(snapshot);
    const key = JSON.stringify([snapshot.parameters, snapshot.result, snapshot.error]);
    if (key !== shownData) {
      shownData = key;
      drawData(data, snapshot);
    }
    if (workflow) workflow.apply(snapshot);
  };
  // After an operation, read once at once rather than wait for the stream's next change.
  const refresh = async () => {
    try {
      apply(await api.get(`/api/executions/${encodeURIComponent(id)}`));
    } catch {
      // The stream brings the next snapshot anyway.
    }
  };

  apply(first);
  const onStatus = (status) => {
    live.textContent = status === "live" ? "Live: updates as it runs." : status === "ended" ? "" : status;
  };
  let close = TERMINAL.has(first.state) ? null : followExecution(id, apply, onStatus);
  // A running clock for the duration until the stream says it ended.
  const ticker = setInterval(() => last && !last.finished_at && drawFacts(header, last), 1000);
  return () => {
    clearInterval(ticker);
    if (close) close();
    close = null;
    logs.destroy();
    if (workflow) workflow.destroy();
  };
}

function drawFacts(header, e) {
  // Rebuilt only when a fact changed, not on every tick of the running clock: a rebuild drops
  // the keyboard focus from its links and makes a screen reader lose its place.
  const took = formatDuration(e.started_at, e.finished_at) || "—";
  const key = JSON.stringify([e.action_ref, e.id, e.state, e.requested_by, e.created_at, e.started_at, e.finished_at, e.parent_id]);
  if (header.dataset.key === key && header.querySelector("dd[data-fact=took]")) {
    header.querySelector("dd[data-fact=took]").textContent = took;
    return;
  }
  header.dataset.key = key;
  const focused = [...header.querySelectorAll("a")].indexOf(document.activeElement);
  const fact = (label, ...value) => [h("dt", {}, label), h("dd", label === "Took" ? { dataset: { fact: "took" } } : {}, ...value)];
  replace(
    header,
    fact("Action", h("a", { href: `#/actions/${encodeURIComponent(e.action_ref)}` }, e.action_ref)),
    fact("ID", h("code", { id: "execution-id" }, e.id)),
    fact("State", h("span", { id: "execution-state" }, stateBadge(e.state))),
    fact("Requested by", e.requested_by || "—"),
    fact("Created", formatTime(e.created_at) || "—"),
    fact("Started", formatTime(e.started_at) || "—"),
    fact("Finished", formatTime(e.finished_at) || "—"),
    fact("Took", took),
    e.parent_id ? fact("Parent", h("a", { href: `#/executions/${encodeURIComponent(e.parent_id)}` }, shortId(e.parent_id))) : null,
  );
  if (focused >= 0 && header.querySelectorAll("a")[focused]) header.querySelectorAll("a")[focused].focus();
}

function drawData(box, e) {
  replace(
    box,
    h("section", { "aria-labelledby": "parameters-heading" }, h("h2", { id: "parameters-heading" }, "Parameters"), jsonBlock(e.parameters, { id: "execution-parameters" })),
    h("section", { "aria-labelledby": "result-heading" }, h("h2", { id: "result-heading" }, "Result"), jsonBlock(e.result, { id: "execution-result" })),
    e.error
      ? h("section", { "aria-labelledby": "error-heading" }, h("h2", { id: "error-heading" }, "Error"), jsonBlock(e.error, { id: "execution-error", class: "json error-text", role: "alert" }))
      : null,
  );
}

