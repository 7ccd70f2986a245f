// What a user may do to an execution, shown by role and state: Cancel, Pause, Resume, Re-run
// (whole or from chosen tasks) and Respond (for a `pending` approval). Viewers see none of it;
// the API refuses them anyway, this only keeps the page honest.

import { api } from "./api.js";
import { announce, errorBox, h, replace } from "./dom.js";

const ACTIVE = new Set(["requested", "scheduling", "scheduled", "running", "pending", "pausing", "paused"]);
const CANCELING = new Set(["canceling", "cancelling"]);
const ENDED = new Set(["succeeded", "failed", "timeout", "cancelled", "abandoned"]);
const MAX_RESPONSE_CHARS = 65536;

/**
 * The control bar of an execution. onChanged(summary) runs after a successful operation.
 * Returns {element, apply(snapshot)}.
 */
export function renderControls(ctx, onChanged = () => {}) {
  const buttons = h("div", { class: "execution-controls", role: "group", "aria-label": "execution actions" });
  const forms = h("div", { class: "execution-forms" });
  const message = h("div", { class: "execution-message", "aria-live": "polite" });
  const element = h("div", {}, buttons, message, forms);
  let snapshot = null;
  let drawnKey = null;

  const operate = async (verb, body = {}) => {
    replace(message);
    try {
      const result = await api.post(`/api/executions/${encodeURIComponent(snapshot.id)}/${verb}`, body);
      announce(`${verb} requested`);
      replace(message, h("p", { class: "muted", role: "status" }, `${verb[0].toUpperCase()}${verb.slice(1)} requested.`));
      onChanged(result);
      return result;
    } catch (err) {
      replace(message, errorBox(err));
      return null;
    }
  };

  const draw = () => {
    const state = snapshot.state;
    const key = `${state}|${snapshot.is_workflow}`;
    if (key === drawnKey) return;
    drawnKey = key;
    // The buttons change with the state; a keyboard user on one of them keeps a place to be.
    const hadFocus = buttons.contains(document.activeElement);
    replace(buttons);
    if (hadFocus) queueMicrotask(() => (buttons.querySelector("button") || document.querySelector("#view h1")).focus());
    if (!ctx.can("operator")) return;
    const button = (label, onclick, cls = "button-secondary") => h("button", { type: "button", class: cls, onclick }, label);
    if (ACTIVE.has(state) && !CANCELING.has(state)) buttons.append(button("Cancel", () => confirmCancel(), "button-danger"));
    if (snapshot.is_workflow && state === "running") buttons.append(button("Pause", () => operate("pause")));
    if (state === "paused" || state === "pausing") buttons.append(button("Resume", () => operate("resume")));
    if (ENDED.has(state)) buttons.append(button("Re-run", () => replace(forms, rerunForm(snapshot, operate, ctx))));
    if (state === "pending") buttons.append(button("Respond", () => replace(forms, respondForm(snapshot, () => replace(forms)))));
  };

  const confirmCancel = () => {
    replace(
      forms,
      h(
        "div",
        { class: "card confirm", role: "group", "aria-label": "confirm cancel" },
        h("p", {}, "Cancel this execution? Running tasks are stopped."),
        h("button", { type: "button", class: "button-danger", id: "confirm-cancel", onclick: async () => (replace(forms), await operate("cancel")) }, "Yes, cancel it"),
        " ",
        h("button", { type: "button", class: "button-secondary", onclick: () => replace(forms) }, "Keep it running"),
      ),
    );
    forms.querySelector("#confirm-cancel").focus();
  };

  return {
    element,
    apply(next) {
      snapshot = next;
      draw();
    },
  };
}

/** Re-run the whole execution, or a workflow from the tasks ticked (only tasks that ran). */
function rerunForm(snapshot, operate, ctx) {
  const ran = Object.entries((snapshot.workflow && snapshot.workflow.tasks) || {})
    .filter(([, task]) => task.runs > 0)
    .map(([name]) => name)
    .sort();
  const boxes = ran.map((name) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "task", value: name }), ` ${name}`));
  const form = h(
    "form",
    { class: "card rerun-form", "aria-label": "re-run" },
    h("h3", {}, "Re-run"),
    ran.length ? h("fieldset", {}, h("legend", {}, "From these tasks (none ticked: run the whole execution again)"), h("div", { class: "check-list" }, boxes)) : h("p", {}, "Runs the action again with the same parameters."),
    h("button", { type: "submit" }, "Re-run"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tasks = [...form.querySelectorAll("input[name=task]:checked")].map((input) => input.value);
    const result = await operate("rerun", { tasks });
    if (result && result.id) ctx.navigate(`#/executions/${encodeURIComponent(result.id)}`);
  });
  return form;
}

/** Answer a pending approval (`core.ask`) with a JSON object; shown on the page and in a task panel. */
export function respondForm(execution, onDone) {
  const prompt = (execution.parameters && execution.parameters.prompt) || "This execution waits for an answer.";
  const fieldId = `response-${execution.id}`;
  const problem = h("p", { class: "form-error", id: `${fieldId}-error`, "aria-live": "assertive" });
  const text = h("textarea", { id: fieldId, rows: "4", maxlength: String(MAX_RESPONSE_CHARS), "aria-describedby": `${fieldId}-error`, spellcheck: "false" }, '{"approved": true}');
  const outcome = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card respond-form", "aria-label": "respond" },
    h("p", { class: "prompt" }, prompt),
    h("label", { for: fieldId }, "Response (JSON object)"),
    text,
    problem,
    h("button", { type: "submit" }, "Send response"),
    outcome,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    text.removeAttribute("aria-invalid");
    let response;
    try {
      response = JSON.parse(text.value);
    } catch {
      response = undefined;
    }
    if (!response || typeof response !== "object" || Array.isArray(response)) {
      problem.textContent = 'Write a JSON object, for example {"approved": true}.';
      text.setAttribute("aria-invalid", "true");
      text.focus();
      return;
    }
    try {
      await api.post(`/api/executions/${encodeURIComponent(execution.id)}/respond`, { response });
      announce("Response sent");
      onDone();
    } catch (err) {
      const violations = (err && err.violations) || [];
      problem.textContent = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
      replace(outcome, errorBox(err, []));
    }
  });
  return form;
}
