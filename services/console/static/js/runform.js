// The Run form (#/run/<ref>): a form generated from an action's parameter schema, submitted to
// POST /api/executions. The API is the judge of the values: its violations (`parameters.<name>`)
// are shown beside the field they name, anything else at the top. `buildParameterForm` is
// exported so other pages (the workflow builder) can offer the same inputs.

import { api } from "./api.js";
import { h, replace, errorBox, errorMessage, pageHeader, announce } from "./dom.js";

const MAX_TEXT = 65536;

/**
 * Build inputs for a parameter schema {name: {type, description, default, required, enum,
 * secret, minimum, maximum}}. Returns {element, read(), showErrors(violations), clearErrors()}:
 * read() gives {values, problems} where values leaves out empty optional fields (so the API
 * applies defaults) and problems are [{field, description}] found locally (JSON that does not
 * parse, a number field holding text); showErrors places violations named `parameters.<name>`
 * (or `<name>`) beside their field and returns those it could not place.
 */
export function buildParameterForm(schema, { idPrefix = "param", values = {} } = {}) {
  const fields = new Map();
  const element = h("div", { class: "parameter-fields" });
  for (const [name, raw] of orderedParameters(schema)) {
    const spec = raw && typeof raw === "object" ? raw : {};
    const field = buildField(name, spec, `${idPrefix}-${cssSafe(name)}`, name in values ? values[name] : spec.default);
    fields.set(name, field);
    element.append(field.wrapper);
  }
  if (!fields.size) element.append(h("p", { class: "muted" }, "This action takes no parameters."));

  function clearErrors() {
    for (const field of fields.values()) field.setError("");
  }

  function showErrors(violations) {
    const rest = [];
    const messages = new Map();
    for (const v of violations || []) {
      const name = fieldName(v.field, fields);
      if (name === null) rest.push(v);
      else messages.set(name, [...(messages.get(name) || []), v.description]);
    }
    let first = null;
    for (const [name, texts] of messages) {
      const field = fields.get(name);
      field.setError(texts.join("; "));
      first = first || field.input;
    }
    if (first) first.focus();
    return rest;
  }

  function read() {
    const out = {};
    const problems = [];
    for (const [name, field] of fields) {
      const { value, problem } = field.read();
      if (problem) problems.push({ field: `parameters.${name}`, description: problem });
      else if (value !== undefined) out[name] = value;
    }
    return { values: out, problems };
  }

  return { element, read, showErrors, clearErrors };
}

// The API's schema (a protobuf Struct) keeps no key order, so fields would move between visits;
// a fixed order (required first, then by name) keeps the Tab order and what a screen reader
// reads the same every time.
function orderedParameters(schema) {
  const required = ([, spec]) => (spec && typeof spec === "object" && spec.required ? 0 : 1);
  return Object.entries(schema || {}).sort((a, b) => required(a) - required(b) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function cssSafe(name) {
  return String(name).replace(/[^A-Za-z0-9_-]/g, "_");
}

// "parameters.count" or "parameters.count.type" or "count" → "count" when it is a field here.
function fieldName(path, fields) {
  const parts = String(path || "").split(".");
  if (parts[0] === "parameters") parts.shift();
  return parts.length && fields.has(parts[0]) ? parts[0] : null;
}

function buildField(name, spec, id, initial) {
  const type = spec.type || "string";
  const errorId = `${id}-error`;
  const helpId = `${id}-help`;
  const control = makeControl(type, spec, id, initial);
  const input = control.input;
  input.id = id;
  input.name = name;
  if (spec.required) input.setAttribute("aria-required", "true");
  input.setAttribute("aria-describedby", `${spec.description ? helpId : ""} ${errorId}`.trim());
  const error = h("p", { id: errorId, class: "field-error", "aria-live": "polite" });
  const label = h("label", { for: id }, name, spec.required ? h("span", { class: "required-mark", "aria-hidden": "true" }, "*") : null, h("span", { class: "muted type-hint" }, ` (${type}${spec.secret ? ", secret" : ""})`));
  const wrapper = h(
    "div",
    { class: control.checkbox ? "field checkbox" : "field", dataset: { param: name } },
    control.checkbox ? [input, label] : [label, input],
    spec.description ? h("p", { id: helpId, class: "help" }, spec.description) : null,
    error,
  );
  return {
    wrapper,
    input,
    read: control.read,
    setError(text) {
      error.textContent = text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}

function makeControl(type, spec, id, initial) {
  if (Array.isArray(spec.enum) && spec.enum.length) return enumControl(spec, initial);
  if (type === "boolean") return booleanControl(spec, initial);
  if (type === "integer" || type === "number") return numberControl(type, spec, initial);
  if (type === "array" || type === "object") return jsonControl(type, initial);
  return textControl(spec, initial);
}

function enumControl(spec, initial) {
  const options = spec.enum;
  const select = h("select", {});
  // A "not set" choice lets the API apply the default, or report a missing required value.
  select.append(h("option", { value: "" }, spec.required && initial === undefined ? "— choose —" : "(not set)"));
  options.forEach((value, index) => select.append(h("option", { value: String(index) }, typeof value === "string" ? value : JSON.stringify(value))));
  const chosen = options.findIndex((value) => JSON.stringify(value) === JSON.stringify(initial));
  select.value = chosen >= 0 ? String(chosen) : "";
  return { input: select, read: () => ({ value: select.value === "" ? undefined : options[Number(select.value)] }) };
}

function booleanControl(spec, initial) {
  if (typeof initial === "boolean" || spec.required) {
    const box = h("input", { type: "checkbox", checked: initial === true });
    return { input: box, checkbox: true, read: () => ({ value: box.checked }) };
  }
  const select = h("select", {}, h("option", { value: "" }, "(not set)"), h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
  return { input: select, read: () => ({ value: select.value === "" ? undefined : select.value === "true" }) };
}

function numberControl(type, spec, initial) {
  const input = h("input", { type: "number", step: type === "integer" ? "1" : "any", inputmode: type === "integer" ? "numeric" : "decimal" });
  if (typeof spec.minimum === "number") input.min = String(spec.minimum);
  if (typeof spec.maximum === "number") input.max = String(spec.maximum);
  if (typeof initial === "number") input.value = String(initial);
  return {
    input,
    read: () => {
      if (input.validity && input.validity.badInput) return { problem: `must be ${type === "integer" ? "an integer" : "a number"}` };
      if (input.value.trim() === "") return { value: undefined };
      const value = Number(input.value);
      return Number.isFinite(value) ? { value } : { problem: "must be a number" };
    },
  };
}

function jsonControl(type, initial) {
  const input = h("textarea", { rows: "3", spellcheck: "false", maxlength: String(MAX_TEXT), placeholder: type === "array" ? '["a", "b"]' : '{"key": "value"}' });
  if (initial !== undefined) input.value = JSON.stringify(initial, null, 2);
  return {
    input,
    read: () => {
      const text = input.value.trim();
      if (!text) return { value: undefined };
      try {
        return { value: JSON.parse(text) };
      } catch (err) {
        return { problem: `must be JSON (${type === "array" ? "a list like [1, 2]" : 'an object like {"a": 1}'}): ${errorMessage(err)}` };
      }
    },
  };
}

function textControl(spec, initial) {
  const input = h("input", { type: spec.secret ? "password" : "text", maxlength: String(MAX_TEXT), autocomplete: spec.secret ? "new-password" : "off" });
  if (initial !== undefined && initial !== null && !spec.secret) input.value = String(initial);
  return { input, read: () => ({ value: input.value === "" ? undefined : input.value }) };
}

/** Render the Run form of the action named by params[0]. */
export async function render(root, params, ctx) {
  const ref = params[0] || "";
  replace(root, pageHeader(`Run ${ref}`), h("p", { class: "muted" }, "Loading…"));
  let action;
  try {
    action = await api.get(`/api/actions/${encodeURIComponent(ref)}`);
  } catch (err) {
    replace(root, pageHeader(`Run ${ref}`), errorBox(err));
    return undefined;
  }
  const form = buildParameterForm(action.parameters, { idPrefix: "param" });
  const top = h("div", { id: "run-errors" });
  const submit = h("button", { type: "submit" }, "Run");
  const element = h(
    "form",
    { class: "card run-form", novalidate: true, "aria-labelledby": "run-title" },
    action.description ? h("p", { class: "muted" }, action.description) : null,
    top,
    form.element,
    h("div", { class: "form-actions" }, submit, h("a", { class: "button button-secondary", href: "#/packs" }, "Cancel")),
  );
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(top);
    form.clearErrors();
    const { values, problems } = form.read();
    if (problems.length) {
      const rest = form.showErrors(problems);
      if (rest.length) replace(top, errorBox({ message: "Some values are not valid." }, rest));
      announce("Some values are not valid.");
      return;
    }
    submit.disabled = true;
    try {
      const created = await api.post("/api/executions", { action_ref: action.ref, parameters: values });
      announce("Execution started.");
      ctx.navigate(`#/executions/${encodeURIComponent(created.id)}`);
    } catch (err) {
      const rest = form.showErrors(err.violations || []);
      const placed = (err.violations || []).length - rest.length;
      replace(top, errorBox(placed ? { ...err, message: err.message || "Some values are not valid." } : err, rest));
      announce(errorMessage(err));
      if (!placed) top.focus();
    } finally {
      submit.disabled = false;
    }
  });
  top.tabIndex = -1;
  replace(root, h("div", { class: "page-header" }, h("h1", { id: "run-title", tabindex: "-1" }, `Run ${action.ref}`)), element);
  return undefined;
}
