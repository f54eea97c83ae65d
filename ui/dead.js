// Dead letters: jobs that failed with no attempt left (GET /v1/dead, newest first, a page at a
// time), each with its last error and a button that puts it back in its queue (POST
// /v1/jobs/{id}/retry).
import { get, post, query } from "./api.js";
import { el, error_box, replace, table, when } from "./dom.js";

const PAGE_SIZE = 25;

export async function render_dead(main, { params }, signal) {
  const offset = Number(params.get("offset") || 0);
  const page = await get(`/v1/dead${query({ limit: PAGE_SIZE, offset })}`);
  if (signal.aborted) return;
  const notice = el("div", { id: "dead-notice" });
  const rows = page.jobs.map((job) => {
    const retry = el("button", { type: "button", "data-retry": job.id }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        const answer = await post(`/v1/jobs/${encodeURIComponent(job.id)}/retry`);
        replace(notice, el("p", { className: "ok", id: "dead-retried" }, `Job ${answer.id} is ${answer.status} again.`));
        retry.closest("tr").classList.add("retried");
      } catch (e) {
        replace(notice, error_box(e, "dead-error"));
        retry.disabled = false;
      }
    });
    return [el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, className: "mono", "data-job": job.id }, job.id),
            job.type, job.tenant, job.attempts, when(job.finished_at),
            el("span", { className: "clip", title: job.error ?? "" }, job.error ?? ""), retry];
  });
  replace(main,
    el("h1", {}, "Dead letters"),
    el("p", { className: "muted" }, `${page.total} dead job(s). A retry puts a job back in its queue with its attempts counting on.`),
    notice,
    el("section", { className: "card" },
       page.jobs.length ? table(["id", "type", "tenant", "attempts", "died", "last error", ""], rows, { id: "dead-table" })
                        : el("p", { className: "muted", id: "dead-empty" }, "No dead jobs."),
       el("div", { className: "row" },
          offset > 0 ? el("a", { href: `#/dead${query({ offset: Math.max(0, offset - PAGE_SIZE) })}` }, "Previous page") : null,
          page.next_offset ? el("a", { href: `#/dead${query({ offset: page.next_offset })}`, id: "dead-next" }, "Next page") : null)));
}
