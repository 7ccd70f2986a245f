// The execution view's live feeds, over api.events (EventSource): `snapshot` events of
// /api/executions/<id>/events and `log` events of /api/executions/<id>/logs. onStatus hears how
// the feed is doing ("live", "ended", or an error message) so the page can say so.

import { api } from "./api.js";

const quiet = () => {};

function follow(path, type, onData, onStatus) {
  onStatus("live");
  return api.events(path, (kind, data) => {
    if (kind === type) onData(data);
    else if (kind === "end") onStatus("ended");
    else if (kind === "error") onStatus((data && data.error && data.error.message) || "The live view stopped.");
  });
}

/**
 * Follow an execution: onSnapshot(snapshot) for each snapshot. When the stream ends the execution
 * is read once more, so the page ends on its stored final state even if the last snapshot raced
 * the end. Returns the function that closes it.
 */
export function followExecution(id, onSnapshot, onStatus = quiet) {
  const path = `/api/executions/${encodeURIComponent(id)}`;
  let closed = false;
  const status = (state) => {
    onStatus(state);
    if (state !== "ended") return;
    api.get(path).then(
      (snapshot) => !closed && snapshot && snapshot.id && onSnapshot(snapshot),
      () => {},
    );
  };
  const close = follow(`${path}/events`, "snapshot", (s) => !closed && s && s.id && onSnapshot(s), status);
  return () => {
    closed = true;
    close();
  };
}

/** Follow an execution's logs: onLine({task, stream, text}) per line. Returns the closing function. */
export function followLogs(id, onLine, onStatus = quiet) {
  return follow(`/api/executions/${encodeURIComponent(id)}/logs`, "log", (line) => line && typeof line.text === "string" && onLine(line), onStatus);
}
