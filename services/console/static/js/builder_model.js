// The builder's model of a workflow and its two conversions: from a workflow document (the JSON
// the server parsed from YAML) to the form model, and back to a document for the YAML emitter.
// Forms edit the model; the document is derived from it, so the two views cannot disagree.
// Keys the forms do not edit (legacy `on_success`, `output_map`, ...) ride along untouched, and
// keys keep the order they were written in; new keys follow in the language's usual order.

const TOP_ORDER = ["version", "description", "parameters", "vars", "tasks", "output_map", "timeout", "cancellation_policy"];
const TASK_ORDER = ["name", "action", "input", "with_items", "concurrency", "join", "retry", "delay", "timeout", "next"];
const NEXT_ORDER = ["when", "publish", "do"];
const PARAM_ORDER = ["type", "description", "required", "default"];
const TASK_FIELDS = new Set(TASK_ORDER);
export const PARAMETER_TYPES = ["string", "integer", "number", "boolean", "array", "object"];

/** Raised when a document's shape cannot be shown as forms (it can still be edited as YAML). */
export class ShapeError extends Error {}

/** The model of a new workflow: version 1, one empty task. */
export function newModel() {
  return { description: "", parameters: [], tasks: [newTask("task1")], vars: [], output_map: [], extra: { version: 1 }, order: ["version"] };
}

/** A new task with only a name. */
export function newTask(name) {
  return { name, action: "", input: {}, next: [], extra: {}, order: [] };
}

/** A new transition entry: fires always unless `when` is set. */
export function newTransition() {
  return { when: "", publish: [], do: [], extra: {}, order: [] };
}

/** The form model of a workflow document; throws ShapeError when the forms cannot show it. */
export function fromDocument(doc) {
  if (!isObject(doc)) throw new ShapeError("the workflow must be a YAML mapping");
  const { description, parameters, tasks, vars, output_map: outputMap, ...extra } = doc;
  return {
    description: typeof description === "string" ? description : description === undefined ? "" : String(description),
    parameters: parametersFrom(parameters),
    tasks: tasksFrom(tasks),
    vars: pairsOrKeep("vars", vars, extra),
    output_map: pairsOrKeep("output_map", outputMap, extra),
    extra,
    order: Object.keys(doc),
  };
}

// `vars` and `output_map` as [name, value] rows; a shape the rows cannot hold stays as written
// (in `extra`, edited in YAML only) and the rows are null.
function pairsOrKeep(key, value, extra) {
  try {
    return publishFrom(value);
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    extra[key] = value;
    return null;
  }
}

/** The workflow document of a model, keys in their written order. */
export function toDocument(model) {
  const fields = { ...model.extra };
  if (model.description) fields.description = model.description;
  const parameters = parametersTo(model.parameters);
  if (Object.keys(parameters).length) fields.parameters = parameters;
  for (const key of ["vars", "output_map"]) {
    const rows = (model[key] || []).filter(([name]) => name);
    if (rows.length) fields[key] = rows.map(([name, value]) => ({ [name]: value }));
  }
  fields.tasks = model.tasks.map(taskTo);
  return ordered(fields, model.order, TOP_ORDER);
}

/** The parameter schema of a model, as the action's `parameters` ({name: {type, ...}}). */
export function parametersTo(rows) {
  const out = {};
  for (const row of rows) {
    if (!row.name) continue;
    const fields = { ...row.extra };
    if (row.type) fields.type = row.type;
    if (row.description) fields.description = row.description;
    if (row.required) fields.required = true;
    if (row.default !== undefined) fields.default = row.default;
    out[row.name] = ordered(fields, row.order, PARAM_ORDER);
  }
  return out;
}

/** The form rows of a parameter schema ({name: {type, description, required, default, ...}}). */
export function parametersFrom(raw) {
  if (raw === undefined || raw === null) return [];
  if (!isObject(raw)) throw new ShapeError("parameters must be a mapping of name to schema");
  return Object.entries(raw).map(([name, schema]) => {
    if (!isObject(schema)) throw new ShapeError(`parameter "${name}" must be a mapping`);
    const { type, description, required, default: value, ...extra } = schema;
    if (required !== undefined && typeof required !== "boolean") extra.required = required;
    return {
      name,
      type: typeof type === "string" ? type : "",
      description: typeof description === "string" ? description : "",
      required: required === true,
      default: value,
      extra,
      order: Object.keys(schema),
    };
  });
}

function tasksFrom(raw) {
  if (raw === undefined || raw === null) return [];
  // The mapping form (name: {task}) is accepted by the engine; the forms use the list form.
  const list = Array.isArray(raw) ? raw : isObject(raw) ? Object.entries(raw).map(([name, task]) => (isObject(task) ? { name, ...task } : task)) : null;
  if (!list) throw new ShapeError("tasks must be a list of task mappings");
  return list.map((task, i) => {
    if (!isObject(task)) throw new ShapeError(`tasks[${i}] must be a mapping`);
    return taskFrom(task);
  });
}

function taskFrom(task) {
  const model = { name: "", action: "", input: {}, next: [], extra: {}, order: Object.keys(task) };
  for (const [key, value] of Object.entries(task)) {
    if (key === "name" || key === "action") {
      if (typeof value === "string") model[key] = value;
      else model.extra[key] = value;
    } else if (key === "input") {
      if (isObject(value)) model.input = { ...value };
      else model.extra.input = value;
    } else if (key === "next") {
      if (!Array.isArray(value) || !value.every(isObject)) throw new ShapeError(`task "${task.name}": next must be a list of mappings`);
      model.next = value.map(transitionFrom);
    } else if (key === "retry") {
      if (isObject(value)) model.retry = { ...value };
      else model.extra.retry = value;
    } else if (TASK_FIELDS.has(key)) {
      model[key] = value;
    } else {
      model.extra[key] = value;
    }
  }
  return model;
}

function transitionFrom(entry) {
  const { when, publish, do: targets, ...extra } = entry;
  return {
    when: when === undefined || when === null ? "" : when,
    publish: publishFrom(publish),
    do: targetsFrom(targets),
    extra,
    order: Object.keys(entry),
  };
}

/** `publish` as [name, value] pairs, from a list of maps or one mapping. */
function publishFrom(raw) {
  if (raw === undefined || raw === null) return [];
  if (isObject(raw)) return Object.entries(raw);
  if (!Array.isArray(raw) || !raw.every(isObject)) throw new ShapeError("publish must be a list of `name: value` maps");
  return raw.flatMap((map) => Object.entries(map));
}

/** `do` as a list of names, from one name, "a, b" or a list. */
function targetsFrom(raw) {
  if (raw === undefined || raw === null) return [];
  if (typeof raw === "string") return raw.split(",").map((name) => name.trim()).filter(Boolean);
  if (Array.isArray(raw) && raw.every((name) => typeof name === "string")) return [...raw];
  throw new ShapeError("do must be a task name or a list of task names");
}

function taskTo(task) {
  const fields = { ...task.extra };
  if (task.name || !("name" in task.extra)) fields.name = task.name;
  if (task.action || !("action" in task.extra)) fields.action = task.action;
  const input = Object.fromEntries(Object.entries(task.input).filter(([, value]) => value !== undefined));
  if (Object.keys(input).length) fields.input = input;
  for (const key of ["with_items", "concurrency", "join", "delay", "timeout"]) {
    if (task[key] !== undefined && task[key] !== "") fields[key] = task[key];
  }
  if (task.retry) {
    const retry = Object.fromEntries(Object.entries(task.retry).filter(([, value]) => value !== undefined && value !== ""));
    if (Object.keys(retry).length) fields.retry = retry;
  }
  if (task.next.length) fields.next = task.next.map(transitionTo);
  return ordered(fields, task.order, TASK_ORDER);
}

function transitionTo(entry) {
  const fields = { ...entry.extra };
  if (entry.when !== "") fields.when = entry.when;
  const publish = entry.publish.filter(([name]) => name);
  if (publish.length) fields.publish = publish.map(([name, value]) => ({ [name]: value }));
  if (entry.do.length) fields.do = entry.do.length === 1 ? entry.do[0] : [...entry.do];
  return ordered(fields, entry.order, NEXT_ORDER);
}

/** `fields` with keys in `written` order first, then in `usual` order, then the rest. */
function ordered(fields, written, usual) {
  const out = {};
  for (const key of [...written, ...usual, ...Object.keys(fields)]) {
    if (key in fields && !(key in out)) out[key] = fields[key];
  }
  return out;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * The text an input shows for a value. `kind` is "string" (strings as they are), "number" or
 * "auto" (JSON for anything that is not a string, and for strings that would read back as one).
 */
export function valueToText(value, kind = "auto") {
  if (value === undefined || value === null) return value === null ? "null" : "";
  if (typeof value === "string") {
    if (kind === "string") return value;
    return typeof textToValue(value, kind) === "string" ? value : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

/** The value typed into an input: undefined when empty; numbers, booleans, lists read as JSON. */
export function textToValue(text, kind = "auto") {
  if (text === "") return undefined;
  if (kind === "string") return text;
  const trimmed = text.trim();
  if (kind === "number") return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : text;
  if (/^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null|\[.*\]|\{.*\}|".*")$/s.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return text;
    }
  }
  return text;
}

/** The input kind for an action parameter's schema type. */
export function kindOfType(type) {
  if (type === "string") return "string";
  if (type === "integer" || type === "number") return "number";
  return "auto";
}

/** The names of the model's tasks, in order (empty names left out). */
export function taskNames(model) {
  return model.tasks.map((task) => task.name).filter(Boolean);
}

/** A graph (contract shape) drawn from the model, for when the server could not give one. */
export function graphOf(model) {
  const names = new Set(taskNames(model));
  const nodes = model.tasks.filter((task) => task.name).map((task) => ({
    name: task.name,
    action: task.action,
    with_items: task.with_items !== undefined && task.with_items !== "",
    join: task.join === undefined || task.join === "" ? null : String(task.join),
  }));
  const edges = [];
  for (const task of model.tasks) {
    for (const entry of task.next) {
      for (const target of entry.do) {
        if (names.has(target)) edges.push({ from: task.name, to: target, ...edgeKind(entry.when) });
      }
    }
  }
  return { nodes, edges };
}

function edgeKind(when) {
  const text = typeof when === "string" ? when.replace(/\s+/g, "") : "";
  if (when === "" || when === true) return { kind: "always", label: "" };
  if (text === "{{succeeded()}}") return { kind: "succeeded", label: "" };
  if (text === "{{failed()}}") return { kind: "failed", label: "" };
  return { kind: "when", label: String(when) };
}
