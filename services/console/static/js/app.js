// The console shell: finds the session (or asks for a token), draws the header and the nav, and
// routes the hash (#/packs, #/run/<ref>, #/executions/<id>, ...) to page modules. A page module
// exports `render(root, params, ctx)` and may return a cleanup function, called on leaving.
// Pages owned by other modules are imported lazily, so one missing or broken module shows an
// error on its own page and leaves the rest of the console working.

import { api } from "./api.js";
import { h, replace, errorBox, errorMessage, announce } from "./dom.js";

const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };

// Route name → how to load its page module and which export renders it.
const ROUTES = {
  packs: { load: () => import("./packs.js"), view: "render", title: "Packs and actions", nav: "packs" },
  actions: { load: () => import("./packs.js"), view: "renderAction", title: "Action", nav: "packs" },
  run: { load: () => import("./runform.js"), view: "render", title: "Run", nav: "packs", role: "operator" },
  builder: { load: () => import("./builder.js"), view: "render", title: "Workflow builder", nav: "builder" },
  executions: { load: () => import("./executions.js"), view: "render", title: "Executions", nav: "executions" },
  execution: { load: () => import("./execution.js"), view: "render", title: "Execution", nav: "executions" },
};
const DEFAULT_HASH = "#/packs";

const shell = {
  session: null,
  cleanup: null,
  // Counts navigations so a slow page load that finishes after the user moved on is dropped.
  generation: 0,
};

/** Whether the signed-in role is at least `needed` ("viewer" < "operator" < "admin"). */
export function can(needed) {
  const role = shell.session ? shell.session.role : null;
  return (ROLE_RANK[role] || 0) >= (ROLE_RANK[needed] || Infinity);
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function context() {
  return { session: shell.session, can, navigate };
}

/** Split "#/executions/abc?state=failed" into the route name and its path parameters. */
export function parseHash(hash) {
  const path = (hash || "").replace(/^#\/?/, "").split("?")[0];
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (!parts.length) return null;
  let [name, ...params] = parts;
  if (name === "executions" && params.length) name = "execution";
  return ROUTES[name] ? { name, params } : null;
}

async function route() {
  const root = document.getElementById("view");
  const generation = ++shell.generation;
  runCleanup();
  if (!shell.session) return;
  const target = parseHash(location.hash);
  if (!target) {
    location.replace(DEFAULT_HASH);
    return;
  }
  const spec = ROUTES[target.name];
  markNav(spec.nav);
  document.title = `${spec.title} · Attune console`;
  if (spec.role && !can(spec.role)) {
    replace(root, h("h1", { tabindex: "-1" }, spec.title), errorBox({ message: `Your role (${shell.session.role}) may not open this page; it needs ${spec.role}.` }));
    return;
  }
  replace(root, h("p", { class: "muted" }, "Loading…"));
  let module;
  try {
    module = await spec.load();
  } catch (err) {
    if (generation !== shell.generation) return;
    replace(root, h("h1", { tabindex: "-1" }, spec.title), errorBox({ message: `This page could not be loaded (${errorMessage(err)}).` }));
    return;
  }
  if (generation !== shell.generation) return;
  replace(root);
  try {
    const cleanup = await module[spec.view](root, target.params, context());
    if (generation !== shell.generation) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    shell.cleanup = typeof cleanup === "function" ? cleanup : null;
  } catch (err) {
    if (generation !== shell.generation) return;
    replace(root, h("h1", { tabindex: "-1" }, spec.title), errorBox(err));
    return;
  }
  // Screen readers follow focus: move it to the new page's heading, unless the page already
  // put it somewhere of its own.
  const heading = root.querySelector("h1");
  if (heading && !root.contains(document.activeElement)) heading.focus({ preventScroll: true });
}

function runCleanup() {
  const cleanup = shell.cleanup;
  shell.cleanup = null;
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error("page cleanup failed", err);
    }
  }
}

function markNav(active) {
  for (const link of document.querySelectorAll("#nav a[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function drawHeader() {
  const user = document.getElementById("user");
  const builder = document.querySelector('#nav a[data-nav="builder"]');
  if (builder) builder.closest("li").hidden = !can("admin");
  document.getElementById("nav").hidden = !shell.session;
  if (!shell.session) {
    replace(user);
    return;
  }
  if (!shell.session.auth_enabled) {
    replace(user, h("span", { class: "user-name" }, "Authentication off"), h("span", { class: "role-badge", dataset: { role: shell.session.role } }, shell.session.role));
    return;
  }
  replace(
    user,
    h("span", { class: "user-name", title: "Token name" }, shell.session.name),
    h("span", { class: "role-badge", dataset: { role: shell.session.role } }, shell.session.role),
    h("button", { type: "button", class: "button-secondary", id: "sign-out", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  try {
    await api.del("/api/session");
  } catch (err) {
    // The cookie may already be gone; the page below asks for a token either way.
    console.warn("sign-out", errorMessage(err));
  }
  showSignIn("You are signed out.");
}

function showSignIn(notice) {
  runCleanup();
  shell.generation++;
  shell.session = null;
  drawHeader();
  markNav(null);
  document.title = "Sign in · Attune console";
  const root = document.getElementById("view");
  const error = h("div", { id: "sign-in-error", class: "form-error", "aria-live": "assertive" });
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    maxlength: "4096",
    "aria-describedby": "token-help sign-in-error",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card sign-in", novalidate: true },
    h("h1", { tabindex: "-1" }, "Sign in"),
    notice ? h("p", { class: "muted", role: "status" }, notice) : null,
    h("div", { class: "field" }, h("label", { for: "token" }, "Access token"), input, h("p", { id: "token-help", class: "help" }, "A token from `attune token create`; kept only in this browser session.")),
    error,
    h("div", { class: "form-actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    const token = input.value.trim();
    if (!token) {
      error.textContent = "Enter a token.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const session = await api.post("/api/session", { token });
      input.value = "";
      startSession(session);
    } catch (err) {
      error.textContent = err && err.status === 401 ? "That token was not accepted." : errorMessage(err);
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(root, form);
  input.focus();
}

function startSession(session) {
  shell.session = session;
  drawHeader();
  announce(`Signed in as ${session.name}, ${session.role}.`);
  if (!parseHash(location.hash)) location.replace(DEFAULT_HASH);
  route();
}

async function boot() {
  window.addEventListener("hashchange", () => {
    if (shell.session) route();
  });
  // api.js reports any 401 (an expired or revoked session): back to sign-in.
  window.addEventListener("attune:unauthenticated", () => {
    if (shell.session && shell.session.auth_enabled) showSignIn("Your session has ended; please sign in again.");
  });
  // Fetch the first page's module while the session is asked for, not after.
  const first = parseHash(location.hash);
  if (first) ROUTES[first.name].load().catch(() => undefined);
  let session = null;
  try {
    session = await api.session();
  } catch (err) {
    replace(document.getElementById("view"), h("h1", {}, "Attune console"), errorBox(err));
    return;
  }
  if (session) startSession(session);
  else showSignIn();
}

boot();
