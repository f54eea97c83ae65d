// One job: its fields, the text it streams as it arrives, its events live (GET
// /v1/jobs/{id}/events, read with fetch: api.js), and cancel (DELETE) or, once dead, retry.
import { del, follow_events, get, post } from "./api.js";
import { badge, el, error_box, error_text, replace, when } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

// A value of any JSON shape as indented text, for a <pre>.
function json_text(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function event_detail(event) {
  switch (event.event) {
    case "started": return `attempt ${event.attempt} on ${event.worker}`;
    case "progress": return `${Math.round((event.fraction ?? 0) * 100)}% ${event.message ?? ""}`;
    case "retrying": case "failed": return event.error ?? "";
    case "succeeded": return "its result is above";
    default: return "";
  }
}

function fields(job) {
  const rows = [
    ["id", el("span", { className: "mono" }, job.id)], ["type", job.type], ["status", badge(job.status)],
    ["tenant", job.tenant], ["attempts", `${job.attempts} / ${job.max_attempts}`], ["priority", job.priority],
    ["created", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
    ["redeliveries", job.redeliveries],
  ];
  if (job.queue_position !== undefined) rows.push(["queue position", job.queue_position]);
  if (job.error) rows.push(["error", el("span", { id: "job-error" }, job.error)]);
  return el("dl", { className: "fields", id: "job-fields" }, rows.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

export async function render_job(main, { id }, signal) {
  let job = await get(`/v1/jobs/${encodeURIComponent(id)}`);
  if (signal.aborted) return;
  const summary = el("div", { id: "job-summary" });
  const actions = el("div", { className: "row", id: "job-actions" });
  const notice = el("div", { id: "job-notice" });
  const output = el("pre", { className: "output", id: "job-output" });
  const result = el("pre", { className: "output", id: "job-result" });
  const events_body = el("tbody", { id: "job-events" });
  const stream_state = el("span", { className: "muted", id: "stream-state" }, "connecting...");

  const draw = () => {
    replace(summary, fields(job));
    replace(result, job.result === null ? "-" : json_text(job.result));
    const buttons = [];
    if (!TERMINAL.has(job.status)) {
      const cancel = el("button", { id: "job-cancel", type: "button", className: "danger" }, "Cancel");
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await del(`/v1/jobs/${encodeURIComponent(job.id)}`);
          replace(notice, el("p", { className: "ok" }, "Cancel sent."));
        } catch (e) {
          replace(notice, error_box(e, "job-action-error"));
          cancel.disabled = false;
        }
      });
      buttons.push(cancel);
    }
    if (job.status === "failed") {
      const retry = el("button", { id: "job-retry", type: "button" }, "Retry");
      retry.addEventListener("click", async () => {
        try {
          await post(`/v1/jobs/${encodeURIComponent(job.id)}/retry`);
          dispatchEvent(new HashChangeEvent("hashchange"));  // draws the job again, its stream from the start
        } catch (e) {
          replace(notice, error_box(e, "job-action-error"));
        }
      });
      buttons.push(retry);
    }
    replace(actions, buttons);
  };
  const refresh = async () => {
    job = await get(`/v1/jobs/${encodeURIComponent(id)}`);
    if (!signal.aborted) draw();
  };

  draw();
  replace(main,
    el("h1", {}, "Job ", el("span", { className: "mono" }, job.id)),
    el("p", {}, el("a", { href: "#/jobs" }, "All jobs")),
    el("section", { className: "card" }, summary, actions, notice),
    el("section", { className: "card" }, el("h2", {}, "Output, as it streams ", stream_state), output),
    el("section", { className: "card" }, el("h2", {}, "Result"), result),
    el("section", { className: "card" }, el("h2", {}, "Events"),
       el("table", {}, el("thead", {}, el("tr", {}, ["seq", "event", "time", "detail"].map((c) => el("th", {}, c)))),
          events_body)));

  // One row per attempt's run of chunks, counted as they come, rather than one per token.
  let chunks = null;  // {attempt, first, count, chars, seq_cell, detail_cell}
  const add_row = (event, seq, detail) => {
    const seq_cell = el("td", {}, seq);
    const detail_cell = el("td", {}, el("span", { className: "clip" }, detail));
    events_body.append(el("tr", { "data-event": event.event },
      seq_cell, el("td", {}, event.event), el("td", {}, when(event.time)), detail_cell));
    return { seq_cell, detail_cell };
  };
  await follow_events(job.id, (event) => {
    replace(stream_state, "live");
    if (event.event === "chunk") {
      // A retried job streams its text again from the start: show the newest attempt's only.
      if (!chunks || chunks.attempt !== event.attempt) {
        chunks = { attempt: event.attempt, first: event.seq, count: 0, chars: 0, ...add_row(event, event.seq, "") };
        output.replaceChildren();
      }
      chunks.count += 1;
      chunks.chars += event.data.length;
      replace(chunks.seq_cell, `${chunks.first}-${event.seq}`);
      replace(chunks.detail_cell, `${chunks.count} chunk(s), ${chunks.chars} characters, streamed above`);
      output.append(event.data);
      return;
    }
    add_row(event, event.seq, event_detail(event));
    if (event.event !== "progress") refresh().catch(() => {});
  }, (e) => replace(stream_state, el("span", { className: "error" }, `stream: ${error_text(e)}`)), signal);
  if (!signal.aborted) {
    replace(stream_state, "ended");
    await refresh();
  }
}
