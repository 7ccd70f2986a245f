// The tasks editor: one card per task (name, action and its input, with_items/concurrency, join,
// retry, delay, timeout, transitions). Cards edit the model's tasks in place and call `onEdit`;
// structural changes (add, remove, rename, another action) redraw only what they change.
// Problems from validation are shown on the task's card and on the field they name.

import { h } from "./dom.js";
import { LONG, SHORT, pairRows, problemList, showProblems, textField } from "./builder_fields.js";
import { kindOfType, newTask, newTransition, textToValue, valueToText } from "./builder_model.js";

const WHEN_SUGGESTIONS = ["{{ succeeded() }}", "{{ failed() }}", "{{ timed_out() }}", "{{ completed() }}"];

/**
 * The tasks editor. `catalogue` maps an action ref to its summary (parameters, description).
 * Returns {element, redraw(), showProblems(problems), focusTask(name)}.
 */
export function tasksEditor(model, catalogue, onEdit) {
  const list = h("div", { class: "task-list" });
  const cards = new Map(); // task object -> {card, problems}
  const redraw = () => {
    cards.clear();
    list.replaceChildren(...model.tasks.map((task) => taskCard(task)));
  };
  const taskCard = (task) => {
    const card = drawTask(task, { model, catalogue, onEdit, redraw, cards });
    return card;
  };
  const add = h("button", { type: "button", class: "button-secondary", id: "builder-add-task", text: "Add task" });
  add.addEventListener("click", () => {
    const task = newTask(freeName(model));
    model.tasks.push(task);
    list.append(taskCard(task));
    onEdit();
    cards.get(task).card.querySelector(".task-name").focus();
  });
  const datalists = [
    h("datalist", { id: "builder-actions" }, [...catalogue.values()].map((action) => h("option", { value: action.ref }, action.label || action.description || ""))),
    h("datalist", { id: "builder-when" }, WHEN_SUGGESTIONS.map((text) => h("option", { value: text }))),
  ];
  redraw();
  return {
    element: h("div", { class: "tasks-editor" }, datalists, list, add),
    redraw,
    showProblems: (problems) => markProblems(cards, problems),
    focusTask(name) {
      for (const [task, entry] of cards) {
        if (task.name === name) {
          entry.card.scrollIntoView({ block: "nearest" });
          entry.card.querySelector(".task-name").focus({ preventScroll: true });
        }
      }
    },
  };
}

function freeName(model) {
  const names = new Set(model.tasks.map((task) => task.name));
  let n = model.tasks.length + 1;
  while (names.has(`task${n}`)) n += 1;
  return `task${n}`;
}

function drawTask(task, ctx) {
  const { model, onEdit, redraw, cards } = ctx;
  const heading = h("h3", { class: "task-title" }, `Task ${task.name}`);
  const problems = problemList("task-problems");
  const card = h("section", { class: "card task-card", dataset: { taskForm: task.name }, "aria-label": `Task ${task.name}` });
  cards.set(task, { card, problems });

  let before = task.name;
  const name = textField("Name", task.name, (text) => {
    task.name = text.trim();
    card.dataset.taskForm = task.name;
    card.setAttribute("aria-label", `Task ${task.name}`);
    heading.textContent = `Task ${task.name}`;
    onEdit();
  }, { class: "task-name", required: true, "data-field": "name" });
  // A committed rename follows into every `do` that named the task.
  name.querySelector("input").addEventListener("change", () => {
    if (before && task.name && before !== task.name && renameTargets(model, before, task.name)) {
      showTargets(cards);
      onEdit();
    }
    before = task.name;
  });

  const inputs = h("div", { class: "task-input" });
  // Redrawn when the action changes; focus that was in the old fields moves to the new ones.
  const drawInputs = () => {
    const hadFocus = inputs.contains(document.activeElement);
    inputs.replaceChildren(inputEditor(task, ctx.catalogue.get(task.action), onEdit));
    if (hadFocus) inputs.querySelector("input")?.focus();
  };
  const actionHint = h("span", { class: "help action-hint" }, actionText(ctx.catalogue.get(task.action)));
  const action = textField("Action", task.action, (text) => {
    task.action = text.trim();
    onEdit();
  }, { class: "task-action", list: "builder-actions", required: true, "data-field": "action", placeholder: "pack.action" });
  action.append(actionHint);
  // After the focus move that committed the change, so a Tab into the old fields lands in the new.
  action.querySelector("input").addEventListener("change", () => {
    setTimeout(() => {
      actionHint.textContent = actionText(ctx.catalogue.get(task.action));
      drawInputs();
    }, 0);
  });
  drawInputs();

  const remove = h("button", { type: "button", class: "button-secondary button-small", text: "Remove task", "aria-label": `Remove task ${task.name}` });
  remove.addEventListener("click", () => {
    model.tasks.splice(model.tasks.indexOf(task), 1);
    redraw();
    onEdit();
    document.getElementById("builder-add-task")?.focus();
  });

  card.append(
    h("div", { class: "task-header" }, heading, remove),
    problems,
    h("div", { class: "task-grid" }, name, action),
    inputs,
    optionsEditor(task, onEdit),
    transitionsEditor(task, onEdit),
  );
  return card;
}

function actionText(summary) {
  if (!summary) return "Choose a registered action (type to search).";
  return [summary.label, summary.description].filter(Boolean).join(" — ");
}

/** The task's input: one field per parameter of its action, then free `name: value` rows. */
function inputEditor(task, summary, onEdit) {
  const schema = (summary && normaliseSchema(summary.parameters)) || {};
  const known = new Set(Object.keys(schema));
  const extras = Object.entries(task.input).filter(([key]) => !known.has(key));
  const syncExtras = () => {
    for (const key of Object.keys(task.input)) if (!known.has(key)) delete task.input[key];
    for (const [key, value] of extras) if (key && !known.has(key)) task.input[key] = value;
    onEdit();
  };
  const fields = Object.entries(schema).map(([pname, spec]) => {
    const kind = kindOfType(spec.type);
    const label = `${pname} (${[spec.type, spec.required ? "required" : ""].filter(Boolean).join(", ") || "any"})`;
    const hint = [spec.description, spec.default !== undefined ? `Default: ${JSON.stringify(spec.default)}` : ""].filter(Boolean).join(" ");
    return textField(label, valueToText(task.input[pname], kind), (text) => {
      const value = textToValue(text, kind);
      if (value === undefined) delete task.input[pname];
      else task.input[pname] = value;
      onEdit();
    }, { "data-input": pname, maxlength: String(LONG), "aria-required": spec.required ? "true" : null, "data-field": `input.${pname}` }, hint);
  });
  return h(
    "fieldset",
    { class: "task-input-fields", "data-field": "input" },
    h("legend", {}, "Input"),
    fields.length ? h("div", { class: "task-grid" }, fields) : h("p", { class: "help" }, summary ? "This action takes no parameters." : "Pick an action to see its parameters."),
    pairRows("Other input", extras, syncExtras, { addLabel: "Add input" }),
  );
}

function normaliseSchema(parameters) {
  if (Array.isArray(parameters)) return Object.fromEntries(parameters.map((p) => [p.name, p]));
  return parameters && typeof parameters === "object" ? parameters : {};
}

/** with_items, concurrency, join, retry, delay and timeout. */
function optionsEditor(task, onEdit) {
  const set = (key, kind) => (text) => {
    task[key] = textToValue(text, kind);
    onEdit();
  };
  const retry = task.retry || (task.retry = {});
  const setRetry = (key) => (text) => {
    retry[key] = textToValue(text, "number");
    onEdit();
  };
  const join = (text) => {
    const value = text.trim();
    task.join = value === "" ? undefined : /^\d+$/.test(value) ? Number(value) : value;
    onEdit();
  };
  const used = ["with_items", "concurrency", "join", "delay", "timeout"].some((key) => task[key] !== undefined) || Object.keys(retry).length > 0;
  return h(
    "details",
    { class: "task-options", open: used },
    h("summary", {}, "Options: with items, join, retry, delay, timeout"),
    h(
      "div",
      { class: "task-grid task-grid-narrow" },
      textField("With items", valueToText(task.with_items), set("with_items", "auto"), { class: "task-with-items", "data-field": "with_items", maxlength: String(LONG), placeholder: "{{ parameters.hosts }}" }, "A list, or an expression giving one."),
      textField("Concurrency", valueToText(task.concurrency, "number"), set("concurrency", "number"), { class: "task-concurrency", "data-field": "concurrency", inputmode: "numeric" }, "Items at a time (default: all)."),
      textField("Join", valueToText(task.join, "number"), join, { class: "task-join", "data-field": "join", placeholder: "all or a number" }),
      textField("Retry count", valueToText(retry.count, "number"), setRetry("count"), { class: "task-retry-count", "data-field": "retry", inputmode: "numeric" }),
      textField("Retry delay (s)", valueToText(retry.delay, "number"), setRetry("delay"), { class: "task-retry-delay", "data-field": "retry.delay", inputmode: "decimal" }),
      textField("Delay (s)", valueToText(task.delay, "number"), set("delay", "number"), { class: "task-delay", "data-field": "delay", inputmode: "decimal" }),
      textField("Timeout (s)", valueToText(task.timeout, "number"), set("timeout", "number"), { class: "task-timeout", "data-field": "timeout", inputmode: "decimal" }),
    ),
  );
}

/** The `next` list: each entry's when, publish rows and do targets. */
function transitionsEditor(task, onEdit) {
  const list = h("ol", { class: "transitions" });
  const draw = () => list.replaceChildren(...task.next.map((entry, index) => transitionItem(task, entry, index, draw, onEdit)));
  const add = h("button", { type: "button", class: "button-secondary button-small add-transition", text: "Add transition" });
  add.addEventListener("click", () => {
    task.next.push(newTransition());
    draw();
    onEdit();
    list.lastElementChild?.querySelector("input")?.focus();
  });
  draw();
  return h("fieldset", { class: "task-transitions" }, h("legend", {}, "Transitions (next)"), list, add);
}

function transitionItem(task, entry, index, draw, onEdit) {
  const field = `next[${index}]`;
  const when = textField("When", valueToText(entry.when, "string"), (text) => {
    entry.when = text.trim() === "true" ? true : text.trim() === "false" ? false : text;
    onEdit();
  }, { class: "transition-when", list: "builder-when", maxlength: String(LONG), placeholder: "always", "data-field": `${field}.when` }, "Empty: always fires.");
  const targets = textField("Do", entry.do.join(", "), (text) => {
    entry.do = text.split(",").map((name) => name.trim()).filter(Boolean);
    onEdit();
  }, { class: "transition-do", "data-field": `${field}.do`, maxlength: String(SHORT * 10), placeholder: "task names, comma-separated" });
  const publish = pairRows("Publish", entry.publish, onEdit, { addLabel: "Add publish", valuePlaceholder: "{{ result() }}" });
  publish.dataset.field = `${field}.publish`;
  const remove = h("button", { type: "button", class: "button-secondary button-small", text: "Remove transition", "aria-label": `Remove transition ${index + 1} of task ${task.name}` });
  remove.addEventListener("click", () => {
    task.next.splice(index, 1);
    draw();
    onEdit();
  });
  return h("li", { class: "transition", dataset: { index: String(index) } }, h("div", { class: "task-grid" }, when, targets), publish, remove);
}

/** Rename `do` targets after a task was renamed; whether any changed. */
function renameTargets(model, before, after) {
  let changed = false;
  for (const task of model.tasks) {
    for (const entry of task.next) {
      if (!entry.do.includes(before)) continue;
      entry.do = entry.do.map((name) => (name === before ? after : name));
      changed = true;
    }
  }
  return changed;
}

/** Refresh every card's `do` fields from the model, leaving the rest (and focus) alone. */
function showTargets(cards) {
  for (const [task, { card }] of cards) {
    card.querySelectorAll(".transition-do").forEach((input, index) => {
      input.value = task.next[index].do.join(", ");
    });
  }
}

/** Problems on their task's card, and aria-invalid on the field each names. */
function markProblems(cards, problems) {
  for (const [task, { card, problems: list }] of cards) {
    const mine = problems.filter((problem) => problem.task && problem.task === task.name);
    showProblems(list, mine.map((problem) => (problem.field ? `${problem.field}: ${problem.message}` : problem.message)));
    card.classList.toggle("has-problem", mine.length > 0);
    for (const input of card.querySelectorAll("[data-field]")) {
      const named = input.dataset.field;
      const wrong = mine.some((problem) => problem.field === named || (problem.field || "").startsWith(`${named}.`) || (problem.field || "").startsWith(`${named}[`));
      if (wrong) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }
}
