// Packs and actions (#/packs) and one action (#/actions/<ref>): what can be run, with each
// action's runner, description and parameter schema, and the buttons the role allows (Run for
// operators, Edit for admins on workflow actions).

import { api } from "./api.js";
import { h, replace, errorBox, pageHeader, linkButton, formatTime } from "./dom.js";

/** Render the searchable list of packs and their actions. */
export async function render(root, _params, ctx) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "").get("q") || "";
  const search = h("input", {
    id: "action-search",
    type: "search",
    placeholder: "ref or description",
    maxlength: "200",
    autocomplete: "off",
    value: query,
    "aria-controls": "pack-list",
  });
  const count = h("p", { class: "muted", id: "action-count", "aria-live": "polite" });
  const list = h("div", { id: "pack-list" }, h("p", { class: "muted" }, "Loading…"));
  const newButton = ctx.can("admin") ? linkButton("#/builder/new", "New workflow") : null;
  replace(
    root,
    pageHeader("Packs and actions", newButton),
    h("div", { class: "toolbar" }, h("div", { class: "field search" }, h("label", { for: "action-search" }, "Search actions"), search)),
    count,
    list,
  );
  let packs;
  try {
    packs = (await api.get("/api/packs")).packs || [];
  } catch (err) {
    replace(list, errorBox(err));
    return undefined;
  }
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const shown = drawPacks(list, packs, needle, ctx);
    count.textContent = needle ? `${shown} matching action${shown === 1 ? "" : "s"}` : `${shown} action${shown === 1 ? "" : "s"}`;
  };
  search.addEventListener("input", () => {
    const q = search.value.trim();
    history.replaceState(null, "", q ? `#/packs?q=${encodeURIComponent(q)}` : "#/packs");
    draw();
  });
  draw();
  return undefined;
}

/** Render one action in full, including a workflow's definition. */
export async function renderAction(root, params, ctx) {
  const ref = params[0] || "";
  replace(root, pageHeader(ref), h("p", { class: "muted" }, "Loading…"));
  let action;
  try {
    action = await api.get(`/api/actions/${encodeURIComponent(ref)}`);
  } catch (err) {
    replace(root, pageHeader(ref), errorBox(err));
    return undefined;
  }
  replace(
    root,
    pageHeader(action.ref, ...actionButtons(action, ctx)),
    h(
      "div",
      { class: "card" },
      h("p", {}, action.description || h("span", { class: "muted" }, "No description.")),
      h(
        "dl",
        { class: "meta-list" },
        h("dt", {}, "Runner"),
        h("dd", {}, action.runner_type),
        action.timeout_seconds ? [h("dt", {}, "Timeout"), h("dd", {}, `${action.timeout_seconds} s`)] : null,
        action.updated_at ? [h("dt", {}, "Updated"), h("dd", {}, `${formatTime(action.updated_at)}${action.updated_by ? ` by ${action.updated_by}` : ""}`)] : null,
      ),
      h("h2", {}, "Parameters"),
      parametersTable(action.parameters, action.ref),
      action.definition ? [h("h2", {}, "Definition"), h("pre", { tabindex: "0", role: "region", "aria-label": "Workflow definition" }, action.definition)] : null,
    ),
  );
  return undefined;
}

function drawPacks(list, packs, needle, ctx) {
  let shown = 0;
  const sections = [];
  for (const pack of packs) {
    const actions = (pack.actions || []).filter((a) => matches(a, needle));
    if (!actions.length) continue;
    shown += actions.length;
    sections.push(
      h(
        "section",
        { class: "pack", "aria-labelledby": `pack-${pack.ref}` },
        h("h2", { id: `pack-${pack.ref}` }, pack.label || pack.ref, h("span", { class: "meta" }, `${pack.ref}${pack.version ? ` · v${pack.version}` : ""}`)),
        pack.description ? h("p", { class: "muted" }, pack.description) : null,
        actions.map((action) => actionCard(action, ctx)),
      ),
    );
  }
  if (!sections.length) sections.push(h("p", { class: "muted" }, needle ? "No action matches the search." : "No packs are registered."));
  replace(list, sections);
  return shown;
}

function matches(action, needle) {
  if (!needle) return true;
  return [action.ref, action.description, action.label].some((text) => String(text || "").toLowerCase().includes(needle));
}

function actionCard(action, ctx) {
  const headingId = `action-${action.ref}`;
  return h(
    "article",
    { class: "card action-card", "aria-labelledby": headingId, dataset: { ref: action.ref } },
    h(
      "div",
      { class: "card-header" },
      h("h3", { id: headingId }, h("a", { href: `#/actions/${encodeURIComponent(action.ref)}` }, action.ref)),
      h("div", { class: "page-actions" }, actionButtons(action, ctx)),
    ),
    h(
      "p",
      { class: "meta" },
      h("span", { class: "tag" }, action.runner_type),
      action.enabled === false ? [" ", h("span", { class: "tag" }, "disabled")] : null,
      " ",
      action.description || h("span", { class: "muted" }, "No description."),
    ),
    parametersTable(action.parameters, action.ref),
  );
}

function actionButtons(action, ctx) {
  const buttons = [];
  if (ctx.can("operator")) {
    buttons.push(linkButton(`#/run/${encodeURIComponent(action.ref)}`, "Run", { "aria-label": `Run ${action.ref}`, class: "button button-small" }));
  }
  if (action.runner_type === "workflow" && ctx.can("admin")) {
    buttons.push(linkButton(`#/builder/${encodeURIComponent(action.ref)}`, "Edit", { "aria-label": `Edit ${action.ref}`, class: "button button-secondary button-small" }));
  }
  return buttons;
}

/** A table of a parameter schema {name: {type, required, default, description, ...}}. */
export function parametersTable(parameters, ref) {
  const entries = Object.entries(parameters || {});
  if (!entries.length) return h("p", { class: "muted" }, "No parameters.");
  return h(
    "table",
    { class: "params-table" },
    h("caption", { class: "visually-hidden" }, `Parameters of ${ref}`),
    h("thead", {}, h("tr", {}, ["Name", "Type", "Required", "Default", "Description"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      entries.map(([name, spec]) => {
        const s = spec && typeof spec === "object" ? spec : {};
        return h(
          "tr",
          {},
          h("td", { class: "mono" }, name),
          h("td", {}, s.type || "string", s.secret ? [" ", h("span", { class: "tag" }, "secret")] : null, Array.isArray(s.enum) ? h("div", { class: "help" }, `one of ${s.enum.map((v) => JSON.stringify(v)).join(", ")}`) : null),
          h("td", {}, s.required ? "yes" : "no"),
          h("td", { class: "mono" }, "default" in s && !s.secret ? JSON.stringify(s.default) : ""),
          h("td", {}, s.description || ""),
        );
      }),
    ),
  );
}
