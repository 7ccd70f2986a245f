// A timeline of a workflow's task runs: one row per run (item, attempt), a bar from its start to
// its finish (to now while it runs) coloured by state like the graph. Redrawn whole on each
// update, at most a few times a second, and capped in rows so a huge fan-out stays cheap.

import { formatDuration, h } from "./dom.js";
import { STATE_COLOURS } from "./graph.js";

const ROW_H = 20;
const LABEL_W = 220;
const AXIS_H = 24;
const MAX_ROWS = 400;
const MIN_REDRAW_MS = 400;

const FILL = new Map(STATE_COLOURS.flatMap((entry) => entry.states.map((state) => [state, entry])));

/**
 * Draw `runs` (the API's task_runs) into `container`. opts: {onSelect(taskName)}.
 * Returns {update(runs), destroy()}.
 */
export function renderGantt(container, runs, opts = {}) {
  const body = h("div", { class: "gantt-body" });
  const note = h("p", { class: "muted gantt-note" });
  const root = h("div", { class: "gantt" }, note, body);
  container.append(root);
  let latest = runs;
  let timer = null;
  let drawnAt = 0;

  const draw = () => {
    timer = null;
    drawnAt = Date.now();
    drawGantt(body, note, latest || [], opts);
  };
  body.addEventListener("click", (event) => {
    const bar = event.target.closest("[data-task]");
    if (bar && opts.onSelect) opts.onSelect(bar.dataset.task);
  });
  draw();
  return {
    update(next) {
      latest = next;
      if (timer) return;
      timer = setTimeout(draw, Math.max(0, MIN_REDRAW_MS - (Date.now() - drawnAt)));
    },
    destroy() {
      if (timer) clearTimeout(timer);
      root.remove();
    },
  };
}

function drawGantt(body, note, runs, opts) {
  const started = runs.filter((run) => run.started_at).sort((a, b) => a.started_at.localeCompare(b.started_at));
  const waiting = runs.length - started.length;
  const shown = started.slice(0, MAX_ROWS);
  const extra = [];
  if (started.length > shown.length) extra.push(`showing the first ${shown.length} of ${started.length} started runs`);
  if (waiting) extra.push(`${waiting} not started yet`);
  note.textContent = extra.join("; ");
  if (!shown.length) {
    body.textContent = "No task has started yet.";
    return;
  }
  const now = Date.now();
  const t0 = Math.min(...shown.map((run) => Date.parse(run.started_at)));
  const t1 = Math.max(t0 + 1, ...shown.map((run) => (run.finished_at ? Date.parse(run.finished_at) : now)));
  const width = Math.max(640, body.clientWidth || 900);
  const span = width - LABEL_W - 16;
  const xOf = (t) => LABEL_W + ((t - t0) / (t1 - t0)) * span;
  const height = AXIS_H + shown.length * ROW_H + 4;
  const rows = shown.map((run, i) => bar(run, i, xOf, now)).join("");
  const ticks = axis(t0, t1, xOf, height);
  const label = `timeline of ${shown.length} task runs over ${formatDuration(new Date(t0).toISOString(), new Date(t1).toISOString())}`;
  body.innerHTML = `<svg class="gantt-svg" width="${width}" height="${height}" role="img" aria-label="${escape(label)}">${ticks}${rows}</svg>`;
}

function bar(run, i, xOf, now) {
  const y = AXIS_H + i * ROW_H;
  const state = String(run.state || "waiting").toLowerCase();
  const colours = FILL.get(state) || STATE_COLOURS[0];
  const start = Date.parse(run.started_at);
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  const x = xOf(start);
  const w = Math.max(2, xOf(end) - x);
  const item = run.item_index === null || run.item_index === undefined || run.item_index < 0 ? "" : ` [${run.item_index}]`;
  const attempt = run.attempt > 1 ? ` attempt ${run.attempt}` : "";
  const name = `${run.task_name} #${run.run}${item}${attempt}`;
  const title = `${name}: ${state}, ${formatDuration(run.started_at, run.finished_at)}`;
  return (
    `<g class="gantt-row" data-task="${escape(run.task_name)}" data-state="${escape(state)}"><title>${escape(title)}</title>` +
    `<text x="4" y="${y + 14}" font-size="12">${escape(name.length > 30 ? `${name.slice(0, 29)}…` : name)}</text>` +
    `<rect x="${x}" y="${y + 3}" width="${w}" height="${ROW_H - 6}" rx="3" fill="${colours.fill}" stroke="${colours.stroke}"/></g>`
  );
}

/** About six ticks at round offsets from the first start ("+2 s"). */
function axis(t0, t1, xOf, height) {
  const span = t1 - t0;
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  const step = steps.find((s) => span / s <= 6) || 3600000;
  const parts = [];
  for (let t = 0; t <= span; t += step) {
    const x = xOf(t0 + t);
    parts.push(`<line x1="${x}" y1="${AXIS_H - 4}" x2="${x}" y2="${height}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${x}" y="14" font-size="11" text-anchor="middle" fill="#374151">+${tickLabel(t)}</text>`);
  }
  return parts.join("");
}

function tickLabel(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${ms / 1000} s`;
  if (ms < 3600000) return `${ms / 60000} min`;
  return `${ms / 3600000} h`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
