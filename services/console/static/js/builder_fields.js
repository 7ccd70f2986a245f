// Form pieces the builder's editors share: a labelled input, and a list of key/value rows (used
// for a task's extra input and a transition's publish). Each piece reports edits through a
// callback and never re-draws itself while the user types, so focus and caret stay put.

import { h } from "./dom.js";
import { textToValue, valueToText } from "./builder_model.js";

// Every input is limited: names and short fields by SHORT, expressions and values by LONG.
export const SHORT = 200;
export const LONG = 20000;

/**
 * A label wrapping its input (so it needs no id), with an optional hint. `attrs` go on the input;
 * `onEdit(text)` is called on every keystroke.
 */
export function textField(label, value, onEdit, attrs = {}, hint = "") {
  const input = h("input", { type: "text", maxlength: String(SHORT), autocomplete: "off", spellcheck: "false", value, ...attrs });
  input.addEventListener("input", () => onEdit(input.value));
  return h("label", { class: "bfield" }, h("span", { class: "bfield-label" }, label), input, hint ? h("span", { class: "help" }, hint) : null);
}

/**
 * Rows of `name: value` pairs. `pairs` is the model's array of [name, value] and is edited in
 * place; `onEdit()` runs after every change. Values are typed like YAML scalars ("auto").
 */
export function pairRows(title, pairs, onEdit, { addLabel = "Add", namePlaceholder = "name", valuePlaceholder = "value" } = {}) {
  const list = h("div", { class: "pair-rows" });
  const draw = () => {
    list.replaceChildren(...pairs.map((pair, index) => pairRow(pair, index)));
  };
  const pairRow = (pair, index) => {
    const name = h("input", { type: "text", class: "pair-name", maxlength: String(SHORT), value: pair[0], placeholder: namePlaceholder, "aria-label": `${title} ${index + 1} name`, spellcheck: "false" });
    const value = h("input", { type: "text", class: "pair-value", maxlength: String(LONG), value: valueToText(pair[1]), placeholder: valuePlaceholder, "aria-label": `${title} ${index + 1} value`, spellcheck: "false" });
    name.addEventListener("input", () => {
      pair[0] = name.value.trim();
      onEdit();
    });
    value.addEventListener("input", () => {
      pair[1] = textToValue(value.value) ?? "";
      onEdit();
    });
    const remove = h("button", { type: "button", class: "button-secondary button-small", "aria-label": `Remove ${title.toLowerCase()} ${index + 1}`, text: "Remove" });
    remove.addEventListener("click", () => {
      pairs.splice(index, 1);
      draw();
      onEdit();
    });
    return h("div", { class: "pair-row" }, name, h("span", { "aria-hidden": "true" }, ":"), value, remove);
  };
  const add = h("button", { type: "button", class: "button-secondary button-small", text: addLabel });
  add.addEventListener("click", () => {
    pairs.push(["", ""]);
    draw();
    onEdit();
    list.lastElementChild?.querySelector("input")?.focus();
  });
  draw();
  return h("div", { class: "pairs", role: "group", "aria-label": title }, h("span", { class: "bfield-label" }, title), list, add);
}

/** A small list of problem messages (empty: hidden by CSS). */
export function problemList(className) {
  return h("ul", { class: `problem-list ${className}`, "aria-live": "polite" });
}

/** Fill a problem list with messages. */
export function showProblems(list, messages) {
  list.replaceChildren(...messages.map((message) => h("li", {}, message)));
}
