// Accessible tabs for the builder (Form | YAML): a tablist of buttons with aria-selected and
// arrow-key movement, each controlling one tabpanel; hidden panels keep their state.

import { h } from "./dom.js";

/** Tabs from [{id, label, content}]; returns {element, select(id)}. */
export function tabs(items) {
  const buttons = new Map();
  const panels = new Map();
  const select = (id, focus = false) => {
    for (const [key, button] of buttons) {
      const on = key === id;
      button.setAttribute("aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
      panels.get(key).hidden = !on;
      if (on && focus) button.focus();
    }
  };
  const list = h("div", { class: "builder-tabs", role: "tablist", "aria-label": "Workflow views" });
  const ids = items.map((item) => item.id);
  for (const item of items) {
    const button = h("button", { type: "button", role: "tab", id: `builder-tab-${item.id}`, "aria-controls": `builder-panel-${item.id}`, class: "builder-tab", text: item.label });
    button.addEventListener("click", () => select(item.id));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      select(ids[(ids.indexOf(item.id) + step + ids.length) % ids.length], true);
    });
    buttons.set(item.id, button);
    list.append(button);
    panels.set(item.id, h("div", { role: "tabpanel", id: `builder-panel-${item.id}`, "aria-labelledby": `builder-tab-${item.id}`, class: "builder-panel" }, item.content));
  }
  select(items[0].id);
  return { element: h("div", { class: "builder-tabbed" }, list, ...panels.values()), select };
}
