// A workflow's tasks and transitions drawn as SVG, left to right (layout in graph_layout.js,
// markup in graph_markup.js). The drawing is built once; update(states) only rewrites the
// attributes and texts of nodes whose state changed, so a live 1,000-task graph costs a few
// attribute writes per snapshot, never a new layout. Texts are what the browser pays most for,
// so a node gets its texts when it first comes into view (and not at all below 35% zoom, where
// they could not be read): the first paint of a 1,000-task graph does not wait for 4,000 texts.
// Used by the execution view (live) and the builder (preview, with problems).

import { h } from "./dom.js";
import { layoutGraph, NODE_H, NODE_W } from "./graph_layout.js";
import { edgesMarkup, legend, linkStylesheet, markersMarkup, nodesMarkup, nodeTextMarkup } from "./graph_markup.js";

export { STATE_COLOURS } from "./graph_markup.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const MIN_TEXT_SCALE = 0.35;
const MAX_TIMINGS = 500;
let instances = 0;

/**
 * Milliseconds spent, newest last (the benchmark reads them): `render` (layout and DOM),
 * `painted` (render to the next frame after it), `update` (one update call's DOM writes).
 */
export const timings = { render: [], painted: [], update: [] };

function timed(list, ms) {
  list.push(ms);
  if (list.length > MAX_TIMINGS) list.shift();
}

/**
 * Draw `graph` ({nodes: [{name, action, with_items, join}], edges: [{from, to, kind, label}]})
 * into `container`. opts: {onSelect(taskName), problems: {taskName: [messages]}, states}.
 * Returns {update(states), select(taskName), destroy()}.
 */
export function renderGraph(container, graph, opts = {}) {
  const started = performance.now();
  linkStylesheet("/static/css/graph.css");
  const id = `g${(instances += 1)}`;
  const layout = layoutGraph(graph);
  const nodes = graph.nodes || [];
  const problems = opts.problems || {};
  const edges = edgesMarkup(graph, layout, id);
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "attune-graph");
  svg.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
  svg.setAttribute("role", "group");
  svg.setAttribute("aria-label", `workflow graph, ${nodes.length} tasks`);
  svg.innerHTML = markersMarkup(id) + edges.markup + nodesMarkup(nodes, layout, problems) + '<g class="labels"></g>';
  const viewport = h("div", { class: "graph-viewport", tabindex: "-1" }, svg);
  const elements = [...svg.querySelector("g.nodes").children];
  const labels = svg.querySelector("g.labels");
  const current = new Array(nodes.length).fill(null); // what each node shows: {state, runs, done, total}
  const texted = new Uint8Array(nodes.length);
  let selected = null;
  let frame = 0;

  /**
   * Give texts to the nodes within a viewport's reach of what is visible. `seen` (the first call)
   * says what is visible without asking the browser, which would force a layout of it all.
   */
  const addTexts = (seen = null) => {
    frame = 0;
    const scale = zoom.scale();
    if (scale < MIN_TEXT_SCALE) return;
    const view = seen || { left: viewport.scrollLeft, top: viewport.scrollTop, width: viewport.clientWidth, height: viewport.clientHeight };
    const width = (view.width || 1200) / scale;
    const height = (view.height || 800) / scale;
    const left = view.left / scale - width / 2;
    const top = view.top / scale - height / 2;
    const more = [];
    layout.positions.forEach((p, i) => {
      if (texted[i] || p.x + NODE_W < left || p.x > left + 2 * width || p.y + NODE_H < top || p.y > top + 2 * height) return;
      texted[i] = 1;
      elements[i].insertAdjacentHTML("beforeend", nodeTextMarkup(nodes[i], current[i], problems[nodes[i].name] || []));
      if (edges.labels.has(i)) more.push(...edges.labels.get(i));
    });
    if (more.length) labels.insertAdjacentHTML("beforeend", more.join(""));
  };
  const soon = () => {
    if (!frame) frame = requestAnimationFrame(() => addTexts());
  };
  const zoom = zoomControls(viewport, svg, layout, soon);
  const root = h("div", { class: "graph" }, zoom.toolbar, viewport, legend());
  // Sized before it is in the page: the container's width is known without laying out the graph.
  const width = container.clientWidth || 800;
  zoom.set(initialScale(width, layout));
  container.append(root);
  viewport.addEventListener("scroll", soon, { passive: true });
  // Until the reader zooms, the graph keeps fitting the width (a task panel opening narrows it).
  const resize = new ResizeObserver(() => {
    if (!zoom.touched()) zoom.set(initialScale(viewport.clientWidth, layout));
    soon();
  });
  resize.observe(viewport);

  const choose = (g) => {
    if (!g) return;
    select(g.dataset.task);
    if (opts.onSelect) opts.onSelect(g.dataset.task);
  };
  svg.addEventListener("click", (event) => choose(event.target.closest("g.node")));
  svg.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const g = event.target.closest("g.node");
    if (!g) return;
    event.preventDefault();
    choose(g);
  });

  function update(states) {
    const begun = performance.now();
    const all = states || {};
    nodes.forEach((node, i) => {
      const shown = paint(elements[i], node, all[node.name], current[i]);
      if (shown) current[i] = shown;
    });
    timed(timings.update, performance.now() - begun);
  }

  function select(name) {
    if (selected) selected.classList.remove("selected");
    const i = layout.index.get(name);
    selected = i === undefined ? null : elements[i];
    if (!selected) return;
    selected.classList.add("selected");
    selected.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  update(opts.states || {});
  addTexts({ left: 0, top: 0, width, height: Math.min(window.innerHeight * 0.7, layout.height * zoom.scale()) });
  timed(timings.render, performance.now() - started);
  requestAnimationFrame(() => setTimeout(() => timed(timings.painted, performance.now() - started), 0));
  return {
    update,
    select,
    destroy() {
      if (frame) cancelAnimationFrame(frame);
      resize.disconnect();
      zoom.destroy();
      root.remove();
    },
  };
}

/** Rewrite one node when what it shows changed; returns the new shown value, or null if unchanged. */
function paint(g, node, task, before) {
  const shown = {
    state: String((task && task.state) || "waiting").toLowerCase(),
    runs: (task && task.runs) || 0,
    done: (task && task.items_done) || 0,
    total: (task && task.items_total) || 0,
  };
  if (before && before.state === shown.state && before.runs === shown.runs && before.done === shown.done && before.total === shown.total) return null;
  g.setAttribute("data-state", shown.state);
  const parts = [`task ${node.name}, ${shown.state}`];
  if (shown.runs > 1) parts.push(`${shown.runs} runs`);
  if (node.with_items) parts.push(`${shown.done} of ${shown.total} items`);
  g.setAttribute("aria-label", parts.join(", "));
  const runs = g.querySelector(".runs");
  if (runs) runs.textContent = shown.runs > 1 ? `×${shown.runs}` : "";
  const items = g.querySelector(".items");
  if (items) items.textContent = `${shown.done}/${shown.total}`;
  return shown;
}

/** Zoom buttons (and Ctrl+wheel), panning by dragging the background or by the scroll bars. */
function zoomControls(viewport, svg, layout, onChange) {
  let scale = 1;
  let touched = false;
  const label = h("span", { class: "graph-scale", "aria-live": "polite" }, "100%");
  const set = (value) => {
    const next = Math.min(2, Math.max(0.02, value));
    if (next === scale && svg.hasAttribute("width")) return;
    scale = next;
    svg.setAttribute("width", String(Math.round(layout.width * scale)));
    svg.setAttribute("height", String(Math.round(layout.height * scale)));
    label.textContent = `${Math.round(scale * 100)}%`;
    onChange();
  };
  const byReader = (action) => () => {
    touched = true;
    action();
  };
  const fit = () => set(Math.min(1, (viewport.clientWidth - 4) / layout.width, Math.max(200, viewport.clientHeight - 4) / layout.height));
  const toolbar = h(
    "div",
    { class: "graph-toolbar" },
    h("button", { type: "button", class: "button-secondary button-small", "aria-label": "Zoom out", onclick: byReader(() => set(scale / 1.25)) }, "−"),
    label,
    h("button", { type: "button", class: "button-secondary button-small", "aria-label": "Zoom in", onclick: byReader(() => set(scale * 1.25)) }, "+"),
    h("button", { type: "button", class: "button-secondary button-small", onclick: byReader(fit) }, "Fit"),
    h("button", { type: "button", class: "button-secondary button-small", onclick: byReader(() => set(1)) }, "100%"),
  );
  const onWheel = (event) => {
    if (!event.ctrlKey) return;
    event.preventDefault();
    touched = true;
    set(scale * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
  };
  let drag = null;
  const onDown = (event) => {
    if (event.target.closest("g.node") || event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, left: viewport.scrollLeft, top: viewport.scrollTop };
  };
  const onMove = (event) => {
    if (!drag) return;
    viewport.scrollLeft = drag.left - (event.clientX - drag.x);
    viewport.scrollTop = drag.top - (event.clientY - drag.y);
  };
  const onUp = () => {
    drag = null;
  };
  viewport.addEventListener("wheel", onWheel, { passive: false });
  viewport.addEventListener("pointerdown", onDown);
  window.addEventListener("pointermove", onMove);
  window.addEventListener("pointerup", onUp);
  return {
    toolbar,
    set,
    scale: () => scale,
    touched: () => touched,
    destroy() {
      window.removeEventListener("pointermove", onMove);
      window.removeEventListener("pointerup", onUp);
    },
  };
}

/** Full size when it fits; shrunk to the width while nodes stay readable (≥ 50%). */
function initialScale(width, layout) {
  if (!width) return 1;
  if (layout.width <= width) return 1;
  return Math.max(0.5, (width - 4) / layout.width);
}

