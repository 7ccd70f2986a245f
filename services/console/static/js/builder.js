// The workflow builder (#/builder/new, #/builder/<ref>): create or edit a workflow action as
// forms or as YAML, kept in sync both ways, validated as you type, previewed as a graph, then
// saved (POST or PUT /api/actions) and run. Editing an existing workflow locks its ref: the
// pack and name inputs are disabled, and a save sends the loaded action's pack and name.
//
// Data flow: forms edit the model (builder_model.js) → the YAML text is re-emitted from it;
// YAML edits → the server parses them (validate) → the model is rebuilt and the forms redrawn.

import { api } from "./api.js";
import { announce, errorBox, errorMessage, h, pageHeader } from "./dom.js";
import { toYaml } from "./yaml.js";
import { ShapeError, fromDocument, graphOf, newModel, parametersFrom, parametersTo, toDocument } from "./builder_model.js";
import { LONG, SHORT, showProblems } from "./builder_fields.js";
import { parametersEditor } from "./builder_params.js";
import { tasksEditor } from "./builder_tasks.js";
import { workflowEditor } from "./builder_workflow.js";
import { yamlEditor } from "./builder_yaml.js";
import { previewPanel, problemsByTask, validator } from "./builder_check.js";
import { tabs } from "./builder_tabs.js";

/** Render the builder page (the contract's page-module interface). */
export async function render(root, params, ctx) {
  const ref = params[0] && params[0] !== "new" ? params[0] : null;
  if (!ctx.can("admin")) {
    root.append(pageHeader("Workflow builder"), h("div", { class: "alert alert-error", role: "alert" }, h("p", {}, `Only an admin may create or edit workflows; your role is ${ctx.session ? ctx.session.role : "unknown"}.`)));
    return undefined;
  }
  loadStyles();
  const [catalogue, packRefs] = await loadCatalogue();
  let original = null;
  let model = newModel();
  let definition = null;
  if (ref) {
    original = await api.get(`/api/actions/${encodeURIComponent(ref)}`);
    if (typeof original.definition !== "string") {
      root.append(pageHeader(`Workflow ${ref}`), errorBox({ message: `${ref} is not a workflow action, so the builder cannot edit it.` }));
      return undefined;
    }
    definition = original.definition;
  }
  const page = new BuilderPage(root, ctx, { catalogue, packRefs, original, model });
  await page.start(definition);
  return () => page.destroy();
}

async function loadCatalogue() {
  const { packs } = await api.get("/api/packs");
  const catalogue = new Map();
  for (const pack of packs) for (const action of pack.actions || []) catalogue.set(action.ref, action);
  return [catalogue, packs.map((pack) => pack.ref)];
}

// The builder's stylesheet is its own file, loaded once (the CSP allows only same-origin styles).
function loadStyles() {
  if (document.getElementById("builder-css")) return;
  document.head.append(h("link", { id: "builder-css", rel: "stylesheet", href: "/static/css/builder.css" }));
}

class BuilderPage {
  constructor(root, ctx, { catalogue, packRefs, original, model }) {
    this.root = root;
    this.ctx = ctx;
    this.catalogue = catalogue;
    this.original = original;
    this.model = model;
    this.dirty = false;
    this.formsOk = true;
    this.yamlEdited = false;
    this.problems = [];
    this.check = validator(
      () => ({ definition: this.yaml.value, pack: this.packValue() }),
      (result, text) => this.checked(result, text),
    );
    this.build(packRefs);
    // Closing or reloading the tab with unsaved edits asks first.
    this.onUnload = (event) => {
      if (!this.dirty) return;
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", this.onUnload);
  }

  build(packRefs) {
    const edit = () => this.formEdited();
    this.heading = h("h1", { tabindex: "-1" }, this.title());
    this.saveButton = h("button", { type: "button", id: "builder-save", text: "Save" });
    this.saveButton.addEventListener("click", () => this.save());
    this.runButton = h("button", { type: "button", id: "builder-run", class: "button-secondary", text: "Run" });
    this.runButton.addEventListener("click", () => this.run());
    this.runHint = h("span", { class: "help", id: "builder-run-hint" });
    this.banner = h("div", { id: "builder-banner" });
    this.status = h("p", { id: "builder-status", class: "help", role: "status" });

    const meta = this.metaCard(packRefs, edit);
    this.params = parametersEditor(this.model, edit);
    this.workflow = workflowEditor(this.model, edit);
    this.tasks = tasksEditor(this.model, this.catalogue, edit);
    this.formsNotice = h("div", { class: "alert alert-error", role: "alert", hidden: true });
    this.yaml = yamlEditor(() => this.yamlTyped());
    this.preview = previewPanel({
      onSelectTask: (name) => {
        this.tabs.select("form");
        this.tasks.focusTask(name);
      },
      onSelectLine: (line) => {
        this.tabs.select("yaml");
        this.yaml.goToLine(line);
      },
    });
    this.formPanel = h("div", {}, this.params.element, this.workflow.element, h("h2", {}, "Tasks"), this.tasks.element);
    this.tabs = tabs([
      { id: "form", label: "Form", content: h("div", {}, this.formsNotice, this.formPanel) },
      { id: "yaml", label: "YAML", content: this.yaml.element },
    ]);
    this.root.append(
      h("div", { class: "page-header" }, this.heading, h("div", { class: "page-actions" }, this.runHint, this.saveButton, this.runButton)),
      this.banner,
      this.status,
      h("div", { class: "builder-layout" }, h("div", { class: "builder-main" }, meta, this.tabs.element), this.preview.element),
    );
  }

  /** Pack, name (the ref) and description, with an error line under each. */
  metaCard(packRefs, edit) {
    this.packInput = h("input", { id: "builder-pack", list: "builder-pack-list", maxlength: String(SHORT), autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "builder-pack-error builder-ref-help" });
    this.nameInput = h("input", { id: "builder-name", maxlength: String(SHORT), autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "builder-name-error builder-ref-help" });
    this.descriptionInput = h("textarea", { id: "builder-description", maxlength: String(LONG), rows: "2", "aria-describedby": "builder-description-error" });
    this.packInput.addEventListener("input", edit);
    this.nameInput.addEventListener("input", edit);
    this.descriptionInput.addEventListener("input", () => {
      this.model.description = this.descriptionInput.value;
      edit();
    });
    this.fieldErrors = {
      pack: h("p", { id: "builder-pack-error", class: "field-error" }),
      name: h("p", { id: "builder-name-error", class: "field-error" }),
      description: h("p", { id: "builder-description-error", class: "field-error" }),
    };
    this.refHelp = h("p", { id: "builder-ref-help", class: "help" });
    return h(
      "section",
      { class: "card builder-meta", "aria-labelledby": "builder-meta-title" },
      h("h2", { id: "builder-meta-title" }, "Workflow action"),
      h("datalist", { id: "builder-pack-list" }, packRefs.map((pack) => h("option", { value: pack }))),
      h("div", { class: "task-grid" }, field("builder-pack", "Pack", this.packInput, this.fieldErrors.pack), field("builder-name", "Name", this.nameInput, this.fieldErrors.name)),
      this.refHelp,
      field("builder-description", "Description", this.descriptionInput, this.fieldErrors.description),
    );
  }

  title() {
    return this.original ? `Edit workflow ${this.original.ref}` : "New workflow";
  }

  /** Fill the page from a stored definition (or a new model), then validate once. */
  async start(definition) {
    if (this.original) {
      this.lockRef();
      this.descriptionInput.value = this.original.description || "";
      this.yaml.set(definition);
      const result = await this.check.now();
      if (result && result.workflow) this.adopt(result.workflow, this.original);
      else this.blockForms("the stored definition could not be read");
    } else {
      this.refHelp.textContent = "The pack and name make the action's ref (pack.name); it cannot change after the first save.";
      this.emitYaml();
      this.check.schedule();
    }
    this.dirty = false;
    this.updateRun();
  }

  destroy() {
    window.removeEventListener("beforeunload", this.onUnload);
    this.check.stop();
    this.preview.destroy();
  }

  packValue() {
    return this.packInput.disabled && this.original ? this.original.pack : this.packInput.value.trim();
  }

  nameValue() {
    return this.nameInput.disabled && this.original ? this.original.name : this.nameInput.value.trim();
  }

  /** Editing an existing workflow: its ref is fixed, so pack and name cannot be changed. */
  lockRef() {
    this.packInput.value = this.original.pack;
    this.nameInput.value = this.original.name;
    this.packInput.disabled = true;
    this.nameInput.disabled = true;
    this.refHelp.textContent = `The ref ${this.original.ref} is fixed once created: pack and name cannot change.`;
    this.heading.textContent = this.title();
  }

  formEdited() {
    this.dirty = true;
    this.noteUnsaved();
    this.yamlEdited = false;
    this.emitYaml();
    this.check.schedule();
    this.updateRun();
  }

  yamlTyped() {
    this.dirty = true;
    this.noteUnsaved();
    this.yamlEdited = true;
    this.check.schedule();
    this.updateRun();
  }

  // Said once per run of edits (a live region re-reads text that is set again).
  noteUnsaved() {
    if (this.status.textContent !== "Unsaved changes.") this.status.textContent = "Unsaved changes.";
  }

  emitYaml() {
    if (this.formsOk) this.yaml.set(toYaml(toDocument(this.model)));
  }

  /** A validation answer: problems everywhere they belong; YAML edits flow into the forms. */
  checked(result, text) {
    if (result.error) {
      this.preview.showProblems([], result.error);
      return;
    }
    this.problems = result.problems || [];
    if (this.yamlEdited && text === this.yaml.value) {
      if (result.workflow) this.adopt(result.workflow, null);
      else this.blockForms("the YAML cannot be read as a workflow");
    }
    this.tasks.showProblems(this.problems);
    this.yaml.mark(this.problems);
    const general = this.problems.filter((p) => !p.task);
    const about = (prefixes) => general.filter((p) => prefixes.some((prefix) => (p.field || "").startsWith(prefix))).map((p) => `${p.field}: ${p.message}`);
    showProblems(this.params.problems, about(["parameters"]));
    showProblems(this.workflow.problems, about(["vars", "output_map", "timeout", "cancellation_policy"]));
    this.workflow.reveal();
    this.preview.showProblems(this.problems);
    this.preview.showGraph(result.graph || graphOf(this.model), problemsByTask(this.problems));
  }

  /** Make a parsed document the model (in place: the editors hold this object) and redraw. */
  adopt(workflow, action) {
    let next;
    try {
      next = fromDocument(workflow);
    } catch (err) {
      if (!(err instanceof ShapeError)) throw err;
      this.blockForms(err.message);
      return;
    }
    if (action && !next.parameters.length && action.parameters) next.parameters = parametersFrom(normaliseParameters(action.parameters));
    if (action && !next.description && action.description) next.description = action.description;
    Object.assign(this.model, next);
    this.formsOk = true;
    this.formsNotice.hidden = true;
    this.formPanel.inert = false;
    this.descriptionInput.value = this.model.description;
    this.params.redraw();
    this.workflow.redraw();
    this.tasks.redraw();
  }

  /**
   * The YAML has something the forms cannot show: they stop editing (inert), so a form edit can
   * never overwrite the YAML being typed with an older model.
   */
  blockForms(reason) {
    this.formsOk = false;
    this.formPanel.inert = true;
    this.formsNotice.hidden = false;
    this.formsNotice.textContent = `The forms cannot show this workflow (${reason}); edit it in the YAML tab, where the problems are marked.`;
  }

  updateRun() {
    const saved = Boolean(this.original) && !this.dirty;
    this.runButton.disabled = !saved || !this.ctx.can("operator");
    this.runButton.hidden = !this.ctx.can("operator");
    this.runHint.textContent = saved ? "" : "Save the workflow to run it.";
  }

  clearErrors() {
    this.banner.replaceChildren();
    for (const el of Object.values(this.fieldErrors)) el.textContent = "";
    this.packInput.removeAttribute("aria-invalid");
    this.nameInput.removeAttribute("aria-invalid");
  }

  async save() {
    this.clearErrors();
    this.saveButton.disabled = true;
    this.status.textContent = "Saving…";
    try {
      await this.check.now();
      const body = {
        pack: this.packValue(),
        name: this.nameValue(),
        description: this.model.description,
        parameters: parametersTo(this.model.parameters),
        definition: this.yaml.value,
      };
      const saved = this.original
        ? await api.put(`/api/actions/${encodeURIComponent(this.original.ref)}`, body)
        : await api.post("/api/actions", body);
      this.original = saved;
      this.dirty = false;
      this.lockRef();
      history.replaceState(null, "", `#/builder/${encodeURIComponent(saved.ref)}`);
      this.status.textContent = `Saved ${saved.ref}.`;
      announce(`Saved ${saved.ref}.`);
    } catch (err) {
      this.status.textContent = "Not saved.";
      this.showSaveError(err);
    } finally {
      this.saveButton.disabled = false;
      this.updateRun();
    }
  }

  /** Violations beside the fields they name; the rest, and refusals, in the banner. */
  showSaveError(err) {
    const rest = [];
    for (const violation of (err && err.violations) || []) {
      const key = (violation.field || "").split(".")[0];
      const target = this.fieldErrors[key];
      if (target) {
        target.textContent = violation.description;
        if (key === "pack") this.packInput.setAttribute("aria-invalid", "true");
        if (key === "name") this.nameInput.setAttribute("aria-invalid", "true");
      } else {
        rest.push(violation);
      }
    }
    const lead = err && err.code === "FAILED_PRECONDITION" ? "The workflow was not saved; nothing changed. " : "";
    this.banner.replaceChildren(errorBox({ ...err, status: err && err.status, message: `${lead}${errorMessage(err)}` }, rest));
    this.banner.scrollIntoView({ block: "nearest" });
  }

  async run() {
    if (!this.original) return;
    this.clearErrors();
    const schema = normaliseParameters(this.original.parameters);
    const needsInput = Object.values(schema).some((spec) => spec && spec.required && spec.default === undefined);
    if (needsInput) {
      this.ctx.navigate(`#/run/${encodeURIComponent(this.original.ref)}`);
      return;
    }
    this.runButton.disabled = true;
    try {
      const { id } = await api.post("/api/executions", { action_ref: this.original.ref, parameters: {} });
      this.ctx.navigate(`#/executions/${encodeURIComponent(id)}`);
    } catch (err) {
      this.banner.replaceChildren(errorBox(err));
      this.updateRun();
    }
  }
}

function field(id, label, input, error) {
  return h("div", { class: "field" }, h("label", { for: id }, label), input, error);
}

// An action's parameters as {name: schema}, whichever way the API lists them.
function normaliseParameters(parameters) {
  if (Array.isArray(parameters)) return Object.fromEntries(parameters.map((p) => [p.name, p]));
  return parameters && typeof parameters === "object" ? parameters : {};
}
