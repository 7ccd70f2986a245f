// The YAML tab: a textarea with a line-number gutter. The gutter marks the lines validation
// problems point at (class "problem", the messages in its title and in a list under the editor),
// so a problem found from the form view can be found in the text too.

import { h } from "./dom.js";
import { problemList, showProblems } from "./builder_fields.js";

// Matches the console server's request limit for a definition; the API refuses more anyway.
const MAX_YAML = 1_000_000;

/** The YAML editor. `onEdit(text)` runs on every keystroke. */
export function yamlEditor(onEdit) {
  const gutter = h("div", { class: "yaml-gutter", id: "builder-yaml-gutter", "aria-hidden": "true" });
  const text = h("textarea", {
    id: "builder-yaml",
    class: "yaml-text",
    spellcheck: "false",
    autocomplete: "off",
    wrap: "off",
    maxlength: String(MAX_YAML),
    "aria-label": "Workflow YAML",
    "aria-describedby": "builder-yaml-problems",
  });
  const problems = problemList("yaml-problems");
  problems.id = "builder-yaml-problems";
  let marks = new Map(); // line -> messages

  const drawGutter = () => {
    const count = text.value.split("\n").length;
    if (gutter.childElementCount !== count) {
      const lines = [];
      for (let line = 1; line <= count; line += 1) lines.push(h("div", { class: "yaml-line", dataset: { line: String(line) } }, String(line)));
      gutter.replaceChildren(...lines);
    }
    for (const el of gutter.children) {
      const messages = marks.get(Number(el.dataset.line));
      el.classList.toggle("problem", Boolean(messages));
      if (messages) el.title = messages.join("\n");
      else el.removeAttribute("title");
    }
  };
  text.addEventListener("input", () => {
    drawGutter();
    onEdit(text.value);
  });
  text.addEventListener("scroll", () => {
    gutter.scrollTop = text.scrollTop;
  });

  return {
    element: h("div", { class: "yaml-editor" }, h("div", { class: "yaml-frame" }, gutter, text), problems),
    get value() {
      return text.value;
    },
    /** Replace the text (from the forms); the caret is not the user's here, so nothing is lost. */
    set(value) {
      if (text.value !== value) text.value = value;
      drawGutter();
    },
    /** Mark the lines problems point at; problems without a line are listed only. */
    mark(list) {
      marks = new Map();
      for (const problem of list) {
        if (!problem.line) continue;
        const messages = marks.get(problem.line) || [];
        messages.push(problem.message);
        marks.set(problem.line, messages);
      }
      showProblems(problems, list.filter((problem) => problem.line).map((problem) => `line ${problem.line}: ${problem.message}`));
      drawGutter();
    },
    /** Put the caret at the start of a line and scroll to it. */
    goToLine(line) {
      const lines = text.value.split("\n");
      const offset = lines.slice(0, Math.max(0, line - 1)).reduce((sum, part) => sum + part.length + 1, 0);
      text.focus();
      text.setSelectionRange(offset, offset);
      const lineHeight = parseFloat(getComputedStyle(text).lineHeight) || 18;
      text.scrollTop = Math.max(0, (line - 3) * lineHeight);
    },
  };
}
