// Live logs of an execution (and of its workflow's tasks) from /api/executions/<id>/logs: lines
// appended as they arrive, the newest kept when there are too many, scrolled to the end unless
// the reader has scrolled up. Text only: never parsed as HTML.

import { h } from "./dom.js";
import { followLogs } from "./execution_stream.js";

const MAX_LINES = 5000;

/** Returns {element, destroy()}; the stream opens when the panel is first opened. */
export function renderLogs(executionId) {
  const output = h("pre", { class: "logs", tabindex: "0", role: "region", "aria-label": "log lines", "aria-live": "off" });
  const status = h("p", { class: "muted logs-status" }, "Open to follow the logs.");
  const element = h("details", { class: "logs-panel" }, h("summary", {}, h("h2", { class: "inline" }, "Logs")), status, output);
  let close = null;
  let count = 0;

  const onLine = (line) => {
    const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    const prefix = [line.task, line.stream === "stderr" ? "stderr" : null].filter(Boolean).join(" ");
    const row = document.createElement("span");
    row.className = line.stream === "stderr" ? "stderr" : "stdout";
    row.textContent = `${prefix ? `[${prefix}] ` : ""}${line.text}${line.text.endsWith("\n") ? "" : "\n"}`;
    output.append(row);
    count += 1;
    if (count > MAX_LINES) {
      output.firstChild.remove();
      count -= 1;
    }
    status.textContent = `${count} line${count === 1 ? "" : "s"}`;
    if (atEnd) output.scrollTop = output.scrollHeight;
  };

  element.addEventListener("toggle", () => {
    if (element.open && !close) {
      status.textContent = "Waiting for log lines…";
      close = followLogs(executionId, onLine, (state) => {
        if (state === "ended") status.textContent = `${count} line${count === 1 ? "" : "s"}; the logs are complete.`;
        else if (state !== "live") status.textContent = state;
      });
    }
  });
  return {
    element,
    destroy() {
      if (close) close();
      close = null;
    },
  };
}
