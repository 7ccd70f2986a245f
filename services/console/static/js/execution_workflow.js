// One workflow execution's live picture: the graph, the side panel of the selected task and the
// timeline of task runs. It is fed snapshots (GET /api/executions/<id> or the `snapshot` events
// of its SSE stream); the graph is drawn once and then only recoloured. The task panel mounts
// this same view for a task whose child is a workflow, so nested workflows open in place.

import { h } from "./dom.js";
import { renderGantt } from "./gantt.js";
import { renderGraph } from "./graph.js";
import { renderTaskPanel } from "./execution_panel.js";

/**
 * Mount the view in `container`. ctx is the page context (roles); depth counts nesting.
 * Returns {apply(snapshot), select(taskName), destroy()}.
 */
export function mountWorkflow(container, ctx, depth = 0) {
  const graphBox = h("div", { class: "workflow-graph" });
  const panelBox = h("aside", { class: "task-panel", hidden: true, "aria-label": "selected task" });
  const ganttBox = h("div", { class: "workflow-gantt" });
  container.append(
    h("div", { class: "workflow-main" }, graphBox, panelBox),
    h("details", { class: "timeline", open: depth === 0 }, h("summary", {}, h("h3", { class: "inline" }, "Timeline")), ganttBox),
  );
  let snapshot = null;
  let graph = null;
  let gantt = null;
  let panel = null;
  let selected = null;

  const select = (name) => {
    // Closing the panel hands focus back to what opened it (a node or a timeline row).
    const opener = panelBox.contains(document.activeElement) ? null : document.activeElement;
    selected = name;
    if (graph) graph.select(name);
    if (panel) panel.destroy();
    panelBox.hidden = false;
    panel = renderTaskPanel(panelBox, name, ctx, depth, () => {
      panelBox.hidden = true;
      panel.destroy();
      panel = null;
      selected = null;
      if (graph) graph.select(null);
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
    });
    if (snapshot) panel.apply(snapshot);
  };

  return {
    apply(next) {
      snapshot = next;
      const workflow = next.workflow;
      if (!workflow) return;
      if (!graph && workflow.graph) {
        graphBox.textContent = "";
        graph = renderGraph(graphBox, workflow.graph, { onSelect: select, states: workflow.tasks || {} });
      } else if (!graph) {
        graphBox.textContent = "The workflow's graph is not available; its task runs are listed in the timeline.";
      } else {
        graph.update(workflow.tasks || {});
      }
      if (!gantt) gantt = renderGantt(ganttBox, workflow.task_runs || [], { onSelect: select });
      else gantt.update(workflow.task_runs || []);
      if (panel && selected) panel.apply(next);
    },
    select,
    destroy() {
      if (panel) panel.destroy();
      if (gantt) gantt.destroy();
      if (graph) graph.destroy();
    },
  };
}
