// Calls to the api's JSON routes with the API key the user logged in with, and a job's event
// stream read with fetch() (an EventSource cannot send the key in a header).

const KEY_ITEM = "sluice.api_key";
// A dropped event stream is opened again this long after, from the last event seen.
const RECONNECT_MS = 1000;

// An error answer of the api ({"error": {"code", "message"}}), or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The key kept for this browser tab (sessionStorage: gone when the tab closes), or "".
export function api_key() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

export function set_api_key(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

function headers(extra = {}) {
  const key = api_key();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// `method` `path` with an optional JSON `body`; returns the parsed answer, or throws ApiError.
export async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network_error", `the api did not answer: ${e.message}`);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(response.status, "bad_answer", `the api answered ${response.status} with something not JSON`);
  }
  if (!response.ok) {
    const error = (parsed && parsed.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return parsed;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const del = (path) => call("DELETE", path);

// A query string from the members of `params` that are set ("" and null are left out).
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== "" && value != null) q.set(name, value);
  const text = q.toString();
  return text ? `?${text}` : "";
}

const TERMINAL_EVENTS = new Set(["succeeded", "failed", "canceled"]);

// Follows job `id`'s events from the first, calling on_event(event) with each event's data (its
// `seq`, `event` and the rest) in order, reconnecting with Last-Event-ID when the stream drops,
// until a terminal event has come and the api ends the stream, or `signal` aborts. on_error(e)
// hears of each failure before the next try (an ApiError answer other than 503 ends it).
export async function follow_events(id, on_event, on_error, signal) {
  let last = null;
  let done = false;
  while (!done && !signal.aborted) {
    try {
      const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`, {
        headers: headers(last === null ? {} : { "Last-Event-ID": String(last) }),
        cache: "no-store",
        signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        const error = body.error || {};
        throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
      }
      for await (const event of sse_events(response.body)) {
        last = event.seq;
        if (TERMINAL_EVENTS.has(event.event)) done = true;
        on_event(event);
      }
      if (done) return;
    } catch (e) {
      if (signal.aborted) return;
      on_error(e);
      if (e instanceof ApiError && e.status !== 503) return;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

// The `data` of each event of a text/event-stream body, parsed, as it arrives (the api ends
// its lines with "\n" alone).
async function* sse_events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

// Runs `step` now and then every `interval_ms` until `signal` aborts, one run at a time. An
// error goes to on_error(e) and the polling goes on, except that a key the api no longer
// takes (401) sends the user back to the login form (app.js).
export async function poll(step, interval_ms, signal, on_error) {
  while (!signal.aborted) {
    try {
      await step();
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 401) {
        dispatchEvent(new CustomEvent("sluice:unauthenticated", { detail: e }));
        return;
      }
      on_error(e);
    }
    await new Promise((resolve) => setTimeout(resolve, interval_ms));
  }
}
