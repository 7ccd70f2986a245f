// Small DOM helpers shared by every page: one way to build elements, format times and show
// errors, so pages stay declarative and never put untrusted text into innerHTML.

/**
 * Build an element. `attrs` keys: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * boolean attributes (true sets, false/null/undefined skips), anything else via setAttribute.
 * Children may be nodes, strings, numbers, arrays of those, or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" && "checked" in el) el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Remove every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Replace the children of `el` with `children`. */
export function replace(el, ...children) {
  clear(el);
  append(el, children);
}

/** The first 8 characters of an id, enough to tell executions apart in a list. */
export function shortId(id) {
  // An id is 12 hex digits of milliseconds, then 20 random ones: the head is the same for
  // everything made in the same minute, so the short form is the random tail.
  return String(id || "").slice(-8);
}

/** A timestamp as local date and time ("2026-12-05 19:42:13"), or "" when absent. */
export function formatTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

/** A duration between two timestamps ("850 ms", "12.3 s", "4 min 05 s"); to now when `end` is absent. */
export function formatDuration(startIso, endIso) {
  if (!startIso) return "";
  const start = new Date(startIso).getTime();
  const end = endIso ? new Date(endIso).getTime() : Date.now();
  if (Number.isNaN(start) || Number.isNaN(end)) return "";
  const ms = Math.max(0, end - start);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  const seconds = Math.floor((ms % 60000) / 1000);
  if (minutes < 60) return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** A coloured badge for an execution or task state; `data-state` lets tests and styles select it. */
export function stateBadge(state) {
  const name = String(state || "unknown").toLowerCase();
  return h("span", { class: `badge state-${name}`, dataset: { state: name } }, name);
}

/** The readable text of an error: an ApiError's message, or a generic line (never a stack). */
export function errorMessage(err) {
  if (err && typeof err.message === "string" && err.message) return err.message;
  return "Something went wrong; please try again.";
}

/** An error box (role="alert") with the message and any violations not shown elsewhere. */
export function errorBox(err, violations = (err && err.violations) || []) {
  return h(
    "div",
    { class: "alert alert-error", role: "alert" },
    h("p", {}, errorMessage(err)),
    violations.length ? h("ul", {}, violations.map((v) => h("li", {}, v.field ? `${v.field}: ${v.description}` : v.description))) : null,
  );
}

/** A page heading plus an optional row of actions on the right. */
export function pageHeader(title, ...actions) {
  return h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, title), actions.length ? h("div", { class: "page-actions" }, actions) : null);
}

/** Announce a short message to screen readers through the shell's live region. */
export function announce(message) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes screen readers repeat an identical message.
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

/** A link styled as a button. */
export function linkButton(href, label, attrs = {}) {
  return h("a", { class: "button", href, ...attrs }, label);
}
