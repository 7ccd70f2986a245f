// Validation as you type, and what it feeds: the problem summary and the live graph preview.
// Every edit schedules one POST /api/workflows/validate after a pause (300 ms); an answer that
// arrives after a newer request was sent is dropped, so the page always shows the latest text's.

import { api } from "./api.js";
import { errorMessage, h } from "./dom.js";

const PAUSE_MS = 300;

/**
 * A validator. `send()` gives {definition, pack}; `onResult(result, definition)` receives the
 * API's {problems, workflow, graph} for that definition (or {error} when the call failed).
 */
export function validator(send, onResult) {
  let timer = null;
  let sequence = 0;
  let pending = null;

  const run = async () => {
    timer = null;
    const mine = (sequence += 1);
    const body = send();
    let result;
    try {
      result = await api.post("/api/workflows/validate", body);
    } catch (err) {
      result = { error: err };
    }
    if (mine === sequence) onResult(result, body.definition);
    return result;
  };
  return {
    /** Validate after the pause; a new edit restarts it. */
    schedule() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        pending = run();
      }, PAUSE_MS);
    },
    /** Validate now (before a save); resolves with the result. */
    async now() {
      if (timer) clearTimeout(timer);
      timer = null;
      pending = run();
      return pending;
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = null;
      sequence += 1;
    },
  };
}

/** The side panel: the graph preview and the list of problems. */
export function previewPanel({ onSelectTask, onSelectLine }) {
  const graphBox = h("div", { id: "builder-graph", class: "builder-graph" });
  const status = h("p", { class: "help", id: "builder-check-status", role: "status" }, "");
  const list = h("ul", { id: "builder-problems", class: "problem-summary" });
  let graph = null;
  let renderGraph = null;

  // The graph module belongs to the execution view; if it cannot load, the preview says so and
  // the rest of the builder keeps working.
  const loading = import("./graph.js")
    .then((module) => {
      renderGraph = module.renderGraph;
    })
    .catch((err) => {
      graphBox.replaceChildren(h("p", { class: "help" }, `The graph preview is unavailable (${errorMessage(err)}).`));
    });

  let shown = null; // what the drawn graph shows: redrawing the same resets zoom for nothing
  const showGraph = async (data, problems) => {
    await loading;
    if (!renderGraph) return;
    const key = JSON.stringify([data, problems]);
    if (key === shown) return;
    shown = key;
    if (graph) graph.destroy();
    graphBox.replaceChildren();
    graph = null;
    if (!data || !data.nodes || !data.nodes.length) {
      graphBox.append(h("p", { class: "help" }, "Add a task to see the graph."));
      return;
    }
    graph = renderGraph(graphBox, data, { onSelect: onSelectTask, problems });
  };

  const showProblems = (problems, error) => {
    if (error) {
      status.textContent = `Could not check the workflow: ${errorMessage(error)}`;
      list.replaceChildren();
      return;
    }
    status.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? "" : "s"}` : "No problems found.";
    list.replaceChildren(...problems.map((problem) => problemItem(problem, onSelectTask, onSelectLine)));
  };

  const element = h(
    "aside",
    { class: "builder-side", "aria-label": "Preview and problems" },
    h("section", { class: "card" }, h("h2", {}, "Graph preview"), graphBox),
    h("section", { class: "card" }, h("h2", {}, "Problems"), status, list),
  );
  return {
    element,
    showGraph,
    showProblems,
    destroy() {
      if (graph) graph.destroy();
      graph = null;
    },
  };
}

function problemItem(problem, onSelectTask, onSelectLine) {
  const where = [problem.task ? `task "${problem.task}"` : "", problem.field ? `field ${problem.field}` : "", problem.line ? `line ${problem.line}` : ""].filter(Boolean).join(", ");
  const item = h("li", { class: "problem", dataset: { problemTask: problem.task || "", problemLine: problem.line ? String(problem.line) : "" } }, where ? h("strong", {}, `${where}: `) : null, problem.message);
  const links = [];
  if (problem.task) links.push(linkButton(`Show task ${problem.task}`, () => onSelectTask(problem.task)));
  if (problem.line) links.push(linkButton(`Show line ${problem.line}`, () => onSelectLine(problem.line)));
  if (links.length) item.append(" ", ...links);
  return item;
}

function linkButton(label, onClick) {
  const button = h("button", { type: "button", class: "link-button", text: label });
  button.addEventListener("click", onClick);
  return button;
}

/** Problems grouped by task name, in the shape renderGraph's `problems` option takes. */
export function problemsByTask(problems) {
  const out = {};
  for (const problem of problems) {
    if (!problem.task) continue;
    (out[problem.task] = out[problem.task] || []).push(problem.field ? `${problem.field}: ${problem.message}` : problem.message);
  }
  return out;
}
