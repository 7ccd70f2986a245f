// The workflow-wide fields as a form: `vars` and `output_map` as `name: value` rows, the
// workflow `timeout` and its `cancellation_policy`. They edit the model in place and call onEdit.

import { h } from "./dom.js";
import { pairRows, problemList, textField } from "./builder_fields.js";
import { textToValue, valueToText } from "./builder_model.js";

const POLICIES = [
  ["", "default (allow_finish)"],
  ["allow_finish", "allow_finish: running tasks finish"],
  ["cancel_running", "cancel_running: running tasks are cancelled"],
];

/** The workflow card. Returns {element, redraw(), problems, reveal()} (problems: a list to fill). */
export function workflowEditor(model, onEdit) {
  const body = h("div");
  const problems = problemList("workflow-problems");
  // Folded unless used (or wrong), so a small workflow's tasks stay near the top of the page.
  const element = h("details", { class: "card builder-workflow" }, h("summary", {}, h("h2", { id: "builder-workflow-title" }, "Variables, output and limits")), problems, body);
  const reveal = () => {
    if (problems.childElementCount) element.open = true;
  };
  const redraw = () => {
    body.replaceChildren(...fields(model, onEdit));
    if (inUse(model)) element.open = true;
  };
  redraw();
  return { element, redraw, problems, reveal };
}

function inUse(model) {
  const rows = (key) => model[key] === null || model[key].length > 0;
  return rows("vars") || rows("output_map") || "timeout" in model.extra || "cancellation_policy" in model.extra;
}

function fields(model, onEdit) {
  const rows = (key, title, addLabel, hint) =>
    model[key] === null
      ? h("p", { class: "help" }, `${title}: written in a form the rows cannot show; edit it in the YAML tab.`)
      : h("div", { "data-field": key }, pairRows(title, model[key], onEdit, { addLabel, valuePlaceholder: "{{ … }}" }), h("p", { class: "help" }, ...hint));
  const timeout = textField("Workflow timeout (s)", valueToText(model.extra.timeout, "number"), (text) => {
    const value = textToValue(text, "number");
    if (value === undefined) delete model.extra.timeout;
    else model.extra.timeout = value;
    onEdit();
  }, { id: "builder-timeout", inputmode: "decimal", "data-field": "timeout" }, "After this long the whole workflow ends as timed out.");
  const policy = h("select", { id: "builder-cancellation", "data-field": "cancellation_policy" }, POLICIES.map(([value, label]) => h("option", { value, selected: (model.extra.cancellation_policy || "") === value }, label)));
  policy.addEventListener("change", () => {
    if (policy.value) model.extra.cancellation_policy = policy.value;
    else delete model.extra.cancellation_policy;
    onEdit();
  });
  return [
    rows("vars", "Vars", "Add variable", ["Set once when the workflow starts, read as ", h("code", {}, "vars.<name>"), "; may use ", h("code", {}, "parameters"), "."]),
    rows("output_map", "Output", "Add output", ["The workflow's result when it succeeds (", h("code", {}, "output_map"), "), rendered at the end."]),
    h("div", { class: "task-grid" }, timeout, h("label", { class: "bfield" }, h("span", { class: "bfield-label" }, "On cancel"), policy)),
  ];
}
