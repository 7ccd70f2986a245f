// The console's one client of its HTTP API (/api/...): JSON in and out, errors as ApiError, the
// CSRF header on every change, and live views over EventSource. Every page calls the server
// through this module only.
//
//   api.get(path) / api.post(path, body) / api.put(path, body) / api.del(path) → Promise of JSON
//   api.session() → the signed-in session {name, role, auth_enabled, csrf_token}, or null
//   api.events(path, onMessage) → close(); onMessage(type, data) for each event
//
// A 401 on any call but the session's own dispatches `attune:unauthenticated` on window, so the
// shell can ask for a token again.

/** A failed API call: the HTTP status and the server's {code, message, violations}. */
export class ApiError extends Error {
  constructor(status, code, message, violations = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.violations = violations;
  }
}

const MUTATING = new Set(["POST", "PUT", "DELETE"]);
const SESSION_PATH = "/api/session";
const CODE_OF_STATUS = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  412: "FAILED_PRECONDITION",
  503: "UNAVAILABLE",
};

let csrfToken = null;

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && body.error ? body.error : {};
  const code = error.code || CODE_OF_STATUS[response.status] || "INTERNAL";
  const message = error.message || `The console answered ${response.status} ${response.statusText}`.trim();
  const violations = Array.isArray(error.violations) ? error.violations : [];
  return new ApiError(response.status, code, message, violations);
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (MUTATING.has(method) && path !== SESSION_PATH) {
    if (csrfToken === null) await session();
    if (csrfToken !== null) headers["X-CSRF-Token"] = csrfToken;
  } else if (method === "DELETE" && csrfToken !== null) {
    headers["X-CSRF-Token"] = csrfToken;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "UNAVAILABLE", "The console cannot be reached; check your connection.");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && path !== SESSION_PATH) {
      csrfToken = null;
      window.dispatchEvent(new CustomEvent("attune:unauthenticated", { detail: error }));
    }
    throw error;
  }
  if (response.status === 204) {
    if (path === SESSION_PATH) csrfToken = null; // signed out
    return null;
  }
  const data = await response.json();
  if (path === SESSION_PATH && data && "csrf_token" in data) csrfToken = data.csrf_token;
  return data;
}

/** The signed-in session, or null when nobody is (401). Other failures throw ApiError. */
async function session() {
  try {
    const current = await request("GET", SESSION_PATH);
    csrfToken = current ? current.csrf_token : null;
    return current;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      csrfToken = null;
      return null;
    }
    throw err;
  }
}

/**
 * Follows a live view (text/event-stream). onMessage(type, data) is called with the event's type
 * ("snapshot", "log", ...) and its parsed JSON; ("error", {error}) when the server reports a
 * failure or the stream cannot be opened; ("end", {}) when the view is complete, after which the
 * stream is closed (no reconnection). Returns the function that closes it.
 */
function events(path, onMessage) {
  const source = new EventSource(path, { withCredentials: true });
  let closed = false;
  const close = () => {
    closed = true;
    source.close();
  };
  const deliver = (type) => (event) => {
    if (closed) return;
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    onMessage(type, data);
  };
  for (const type of ["snapshot", "log"]) source.addEventListener(type, deliver(type));
  source.addEventListener("end", () => {
    if (closed) return;
    close();
    onMessage("end", {});
  });
  source.addEventListener("error", (event) => {
    if (closed) return;
    if (event instanceof MessageEvent) {
      deliver("error")(event); // the server's own error event: the stream ends next
      return;
    }
    if (source.readyState === EventSource.CLOSED) {
      // Refused before it began (signed out, no such execution): EventSource does not retry.
      close();
      onMessage("error", { error: { code: "UNAVAILABLE", message: "The live view could not be opened.", violations: [] } });
    }
    // Otherwise the browser reconnects by itself and the server starts with a fresh snapshot.
  });
  return close;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  put: (path, body = {}) => request("PUT", path, body),
  del: (path) => request("DELETE", path),
  session,
  events,
};

export default api;
