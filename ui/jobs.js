// Jobs: the caller's jobs newest first (GET /v1/jobs), filtered by status and type and paged with
// the api's cursors, and a form that submits a job (POST /v1/jobs) and opens it.
import { get, post, query } from "./api.js";
import { badge, el, error_box, replace, table, when } from "./dom.js";

const PAGE_SIZE = 25;
const STATUSES = ["", "scheduled", "queued", "running", "succeeded", "failed", "canceled"];
const EXAMPLE_INPUT = '{"messages": [{"role": "user", "content": "Write a haiku about queues."}], "max_tokens": 48}';

function submit_form(types) {
  const type = el("input", { id: "submit-type", name: "type", required: true, value: "chat", size: 16,
                             autocomplete: "off" });
  type.setAttribute("list", "job-types");
  const input = el("textarea", { id: "submit-input", name: "input", rows: 4, cols: 70, value: EXAMPLE_INPUT });
  const options = el("input", { id: "submit-options", name: "options", size: 40, placeholder: '{"max_attempts": 1}' });
  const outcome = el("div", { id: "submit-outcome" });
  const form = el("form", { id: "submit-form", className: "card" },
    el("h2", {}, "Submit a job"),
    el("datalist", { id: "job-types" }, types.map((t) => el("option", { value: t }))),
    el("div", { className: "row" }, el("label", { for: "submit-type" }, "Type"), type,
       el("label", { for: "submit-options" }, "Options (JSON)"), options),
    el("label", { for: "submit-input" }, "Input (JSON)"), input,
    el("div", {}, el("button", { id: "submit-go", type: "submit" }, "Submit")), outcome);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = { type: type.value.trim(), input: JSON.parse(input.value || "null") };
      if (options.value.trim()) body.options = JSON.parse(options.value);
    } catch (e) {
      replace(outcome, error_box(`not JSON: ${e.message}`, "submit-error"));
      return;
    }
    try {
      const job = await post("/v1/jobs", body);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      replace(outcome, error_box(e, "submit-error"));
    }
  });
  return form;
}

export async function render_jobs(main, { params }, signal) {
  const status = params.get("status") || "";
  const type = params.get("type") || "";
  const cursor = params.get("cursor") || "";
  const types = await get("/v1/types").then((t) => t.types.map((x) => x.name)).catch(() => []);
  const page = await get(`/v1/jobs${query({ limit: PAGE_SIZE, status, type, cursor })}`);
  if (signal.aborted) return;

  const status_select = el("select", { id: "filter-status", name: "status" },
    STATUSES.map((s) => el("option", { value: s, selected: s === status }, s || "any status")));
  const type_input = el("input", { id: "filter-type", name: "type", value: type, placeholder: "any type", size: 16 });
  type_input.setAttribute("list", "job-types");
  const filters = el("form", { id: "filters", className: "row" },
    el("label", { for: "filter-status" }, "Status"), status_select,
    el("label", { for: "filter-type" }, "Type"), type_input,
    el("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/jobs${query({ status: status_select.value, type: type_input.value.trim() })}`;
  });

  const rows = page.jobs.map((job) => [
    el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, className: "mono", "data-job": job.id }, job.id),
    job.type, badge(job.status), when(job.created_at), `${job.attempts} / ${job.max_attempts}`,
    job.error ? el("span", { className: "clip", title: job.error }, job.error) : ""]);
  const paging = el("div", { className: "row" },
    cursor ? el("a", { href: `#/jobs${query({ status, type })}`, id: "page-first" }, "First page") : null,
    page.next_cursor
      ? el("a", { href: `#/jobs${query({ status, type, cursor: page.next_cursor })}`, id: "page-next" }, "Next page")
      : null);
  replace(main,
    el("h1", {}, "Jobs"),
    submit_form(types),
    el("section", { className: "card" }, filters,
       page.jobs.length ? table(["id", "type", "status", "created", "attempts", "error"], rows, { id: "jobs-table" })
                        : el("p", { className: "muted", id: "jobs-empty" }, "No jobs here."),
       paging));
}
