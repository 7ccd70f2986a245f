// The SVG markup of a laid-out workflow graph, as strings (one innerHTML is far cheaper than
// thousands of createElementNS calls), plus the legend and the graph's styles. Text is the
// expensive part for the browser, so a node's texts are a separate piece that graph.js adds
// only for nodes in view.

import { h } from "./dom.js";
import { MARGIN, NODE_H, NODE_W } from "./graph_layout.js";

/** Fill and stroke per state, for the timeline's bars and the legend; css/graph.css repeats them. */
export const STATE_COLOURS = [
  { states: ["waiting"], label: "not started", fill: "#f3f4f6", stroke: "#9ca3af" },
  { states: ["requested", "scheduling", "scheduled"], label: "scheduled", fill: "#e0f2fe", stroke: "#0284c7" },
  { states: ["running"], label: "running", fill: "#bfdbfe", stroke: "#1d4ed8" },
  { states: ["pending", "pausing", "paused"], label: "waiting for approval / paused", fill: "#fef3c7", stroke: "#b45309" },
  { states: ["succeeded"], label: "succeeded", fill: "#bbf7d0", stroke: "#15803d" },
  { states: ["failed", "timeout", "abandoned"], label: "failed / timed out", fill: "#fecaca", stroke: "#b91c1c" },
  { states: ["canceling", "cancelling", "cancelled"], label: "cancelled", fill: "#e5e7eb", stroke: "#4b5563" },
];

export const EDGE_COLOURS = { succeeded: "#15803d", failed: "#b91c1c", always: "#6b7280", when: "#2563eb" };
const LABEL_MAX = 15;

export function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function shorten(text, max) {
  const s = String(text || "");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Arrow heads, one per edge kind; ids prefixed per drawing so several graphs can share a page. */
export function markersMarkup(id) {
  const defs = Object.entries(EDGE_COLOURS).map(
    ([kind, colour]) =>
      `<marker id="${id}-${kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="${colour}"/></marker>`,
  );
  return `<defs>${defs.join("")}</defs>`;
}

/**
 * Every edge's path (forward edges from a node's right side to the next one's left, back edges
 * arcing above), and for each edge with a label worth showing, its label markup keyed by the
 * source node index: {markup, labels: Map(nodeIndex -> [markup])}.
 */
export function edgesMarkup(graph, layout, id) {
  const parts = [];
  const labels = new Map();
  (graph.edges || []).forEach((edge, e) => {
    const from = layout.index.get(edge.from);
    const to = layout.index.get(edge.to);
    if (from === undefined || to === undefined) return;
    const kind = EDGE_COLOURS[edge.kind] ? edge.kind : "always";
    const back = layout.back.has(e) || from === to;
    const { path, mid } = edgeGeometry(layout.positions[from], layout.positions[to], from === to, layout.back.has(e));
    // A label equal to the kind (succeeded, failed, always) says what the colour says already.
    const label = edge.label && edge.label !== edge.kind ? edge.label : "";
    // One element per edge (no group, no title): a 1,000-task graph has ~1,000 of them.
    parts.push(
      `<path class="edge edge-${kind}${back ? " back" : ""}" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}" d="${path}" marker-end="url(#${id}-${kind})"/>`,
    );
    if (label) {
      const text = `<text class="edge-label" x="${mid.x}" y="${mid.y}"><title>${escapeXml(label)}</title>${escapeXml(shorten(label, LABEL_MAX))}</text>`;
      if (!labels.has(from)) labels.set(from, []);
      labels.get(from).push(text);
    }
  });
  return { markup: `<g class="edges">${parts.join("")}</g>`, labels };
}

function edgeGeometry(a, b, self, back) {
  if (self) {
    const sx = a.x + NODE_W - 40;
    const ex = a.x + NODE_W;
    const ey = a.y + 16;
    return { path: `M${sx},${a.y}C${sx},${a.y - 40} ${ex + 40},${ey} ${ex},${ey}`, mid: { x: ex + 6, y: a.y - 22 } };
  }
  if (back) {
    const x1 = a.x + NODE_W / 2;
    const x2 = b.x + NODE_W / 2;
    const top = Math.min(a.y, b.y) - 30 - Math.min(Math.abs(x1 - x2) / 12, MARGIN - 34);
    return { path: `M${x1},${a.y}C${x1},${top} ${x2},${top} ${x2},${b.y}`, mid: { x: (x1 + x2) / 2, y: 0.25 * a.y + 0.75 * top - 4 } };
  }
  const x1 = a.x + NODE_W;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_H / 2;
  const bend = Math.max(30, (x2 - x1) / 2);
  return { path: `M${x1},${y1}C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, mid: { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4 } };
}

/** Each node's box, without its texts (nodeTextMarkup): a focusable group named for screen readers. */
export function nodesMarkup(nodes, layout, problems) {
  const parts = nodes.map((node, i) => {
    const { x, y } = layout.positions[i];
    const name = escapeXml(node.name);
    const problem = problems[node.name] && problems[node.name].length ? " has-problem" : "";
    return (
      `<g class="node${problem}" role="button" tabindex="0" data-task="${name}" data-state="waiting" aria-label="task ${name}, waiting" transform="translate(${x},${y})">` +
      `<rect width="${NODE_W}" height="${NODE_H}" rx="7"/></g>`
    );
  });
  return `<g class="nodes">${parts.join("")}</g>`;
}

/** A node's texts: tooltip, name, action (and join), run count, item progress, problem mark. */
export function nodeTextMarkup(node, task, issues) {
  const runs = task ? task.runs : 0;
  const details = [node.name, node.action ? `action ${node.action}` : "", node.join ? `join ${node.join}` : "", node.with_items ? "with items" : ""];
  const title = escapeXml([details.filter(Boolean).join(" · "), ...issues].join("\n"));
  return (
    `<title>${title}</title><text class="name" x="10" y="21">${escapeXml(shorten(node.name, 19))}</text>` +
    `<text class="action" x="10" y="40">${escapeXml(shorten(node.action || "", 24))}${node.join ? ` · join ${escapeXml(node.join)}` : ""}</text>` +
    `<text class="runs" x="${NODE_W - 8}" y="21">${runs > 1 ? `×${runs}` : ""}</text>` +
    (node.with_items ? `<text class="items" x="${NODE_W - 8}" y="40">${task ? task.done : 0}/${task ? task.total : 0}</text>` : "") +
    (issues.length ? `<text class="problem-mark" x="${NODE_W - 4}" y="-4">⚠ ${issues.length}</text>` : "")
  );
}

export function legend() {
  const items = STATE_COLOURS.map((entry) =>
    h("li", {}, h("span", { class: `swatch swatch-${entry.states[0]}`, "aria-hidden": "true" }), entry.label),
  );
  const edges = Object.keys(EDGE_COLOURS).map((kind) => h("li", {}, h("span", { class: `edge-swatch edge-swatch-${kind}`, "aria-hidden": "true" }), `on ${kind}`));
  items.push(...edges);
  items.push(h("li", {}, h("strong", {}, "×3"), " runs of a task in a cycle"));
  items.push(h("li", {}, h("strong", {}, "37/100"), " items done"));
  return h("ul", { class: "graph-legend", "aria-label": "legend" }, items);
}

/** Link a stylesheet of the console once (the Content-Security-Policy allows no inline styles). */
export function linkStylesheet(href) {
  if (document.querySelector(`link[rel="stylesheet"][href="${href}"]`)) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  document.head.append(link);
}
