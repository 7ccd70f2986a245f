// The workflow's parameters as a table of rows (name, type, required, default, description).
// Rows edit the model's `parameters` array in place; defaults are typed by the row's type.

import { h } from "./dom.js";
import { SHORT, LONG, problemList } from "./builder_fields.js";
import { PARAMETER_TYPES, kindOfType, textToValue, valueToText } from "./builder_model.js";

/** The parameters editor. Returns {element, redraw(), problems} (problems: a list to fill). */
export function parametersEditor(model, onEdit) {
  const body = h("tbody");
  const problems = problemList("param-problems");
  const redraw = () => body.replaceChildren(...model.parameters.map((row, index) => parameterRow(model, row, index, redraw, onEdit)));
  const add = h("button", { type: "button", class: "button-secondary button-small", id: "builder-add-parameter", text: "Add parameter" });
  add.addEventListener("click", () => {
    model.parameters.push({ name: "", type: "string", description: "", required: false, default: undefined, extra: {}, order: [] });
    redraw();
    onEdit();
    body.lastElementChild?.querySelector("input")?.focus();
  });
  redraw();
  const table = h(
    "table",
    { class: "params-table builder-params" },
    h("thead", {}, h("tr", {}, ["Name", "Type", "Required", "Default", "Description", ""].map((title) => h("th", { scope: "col" }, title)))),
    body,
  );
  const element = h("section", { class: "card", "aria-labelledby": "builder-params-title" }, h("h2", { id: "builder-params-title" }, "Parameters"), table, problems, add);
  return { element, redraw, problems };
}

function parameterRow(model, row, index, redraw, onEdit) {
  const label = (what) => `Parameter ${index + 1} ${what}`;
  const name = h("input", { type: "text", maxlength: String(SHORT), value: row.name, "aria-label": label("name"), spellcheck: "false", class: "param-name" });
  name.addEventListener("input", () => {
    row.name = name.value.trim();
    onEdit();
  });
  const type = h("select", { "aria-label": label("type"), class: "param-type" }, ["", ...PARAMETER_TYPES].map((t) => h("option", { value: t, selected: t === row.type }, t || "(any)")));
  const defaultInput = h("input", { type: "text", maxlength: String(LONG), value: valueToText(row.default, kindOfType(row.type)), "aria-label": label("default"), spellcheck: "false", class: "param-default" });
  type.addEventListener("change", () => {
    row.type = type.value;
    row.default = textToValue(defaultInput.value, kindOfType(row.type));
    onEdit();
  });
  defaultInput.addEventListener("input", () => {
    row.default = textToValue(defaultInput.value, kindOfType(row.type));
    onEdit();
  });
  const required = h("input", { type: "checkbox", checked: row.required, "aria-label": label("required"), class: "param-required" });
  required.addEventListener("change", () => {
    row.required = required.checked;
    onEdit();
  });
  const description = h("input", { type: "text", maxlength: String(LONG), value: row.description, "aria-label": label("description"), class: "param-description" });
  description.addEventListener("input", () => {
    row.description = description.value;
    onEdit();
  });
  const remove = h("button", { type: "button", class: "button-secondary button-small", "aria-label": label("remove"), text: "Remove" });
  remove.addEventListener("click", () => {
    model.parameters.splice(index, 1);
    redraw();
    onEdit();
  });
  return h("tr", {}, [name, type, required, defaultInput, description, remove].map((cell) => h("td", {}, cell)));
}
