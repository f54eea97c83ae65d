// The overview: each job type's queue (depth, running, throughput) as a table and as two charts
// of the last minutes, and the workers the broker knows. Both come from polling GET /v1/queues
// and GET /v1/workers, which the broker's reports refresh once a second.
import uPlot from "./vendor/uPlot.esm.js";
import { get, poll } from "./api.js";
import { el, error_text, replace, table, when } from "./dom.js";

const POLL_MS = 2000;
// What a chart shows: the last five minutes, 150 polls of 2 s.
const WINDOW_S = 300;
const MAX_POINTS = WINDOW_S * 1000 / POLL_MS;
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

// One chart of a number per job type over time. The series follow the types seen: a new type
// rebuilds the chart (uPlot's series are fixed once it is drawn), with the history kept.
class TypeChart {
  constructor(host, title, unit) {
    this.host = host;
    this.title = title;
    this.unit = unit;
    this.times = [];
    this.values = new Map();  // type -> array parallel to times (null: not reported then)
    this.plot = null;
  }

  add(time_s, by_type) {
    let new_type = false;
    for (const type of Object.keys(by_type)) {
      if (!this.values.has(type)) {
        this.values.set(type, this.times.map(() => null));
        new_type = true;
      }
    }
    this.times.push(time_s);
    for (const [type, series] of this.values) series.push(type in by_type ? by_type[type] : null);
    if (this.times.length > MAX_POINTS) {
      this.times.shift();
      for (const series of this.values.values()) series.shift();
    }
    const data = [this.times, ...this.values.values()];
    if (!this.plot || new_type) this.build(data);
    else this.plot.setData(data);
    this.host.dataset.points = String(this.times.length);
  }

  build(data) {
    if (this.plot) this.plot.destroy();
    const types = [...this.values.keys()];
    const width = Math.max(320, this.host.clientWidth || 560);
    this.plot = new uPlot({
      title: this.title,
      width,
      height: 220,
      // The last five minutes, whatever how many polls there were; counts from 0.
      scales: { x: { time: true, range: (u, min, max) => [max - WINDOW_S, max] },
                y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] } },
      legend: { live: false },
      axes: [{}, { label: this.unit, size: 60 }],
      series: [{}, ...types.map((type, i) => ({ label: type, stroke: PALETTE[i % PALETTE.length], width: 2,
                                                  spanGaps: true }))],
    }, data, this.host);
  }

  destroy() {
    if (this.plot) this.plot.destroy();
  }
}

function queue_rows(queues) {
  return queues.map((q) => [
    el("a", { href: `#/jobs?type=${encodeURIComponent(q.type)}` }, q.type),
    q.workers, q.queued, q.scheduled, q.running,
    q.oldest_queued_age_s === null ? "-" : `${q.oldest_queued_age_s} s`,
    q.succeeded_last_minute, q.failed_last_minute]);
}

function worker_rows(workers) {
  return workers.map((w) => [w.name, w.runtime, w.types.join(", "), `${w.running} / ${w.concurrency}`,
                             when(w.last_heartbeat), w.leaving ? "leaving" : "ready"]);
}

export async function render_overview(main, _route, signal) {
  const status = el("p", { className: "muted", id: "overview-status" }, "Loading...");
  const queues_box = el("div", { id: "queues" });
  const workers_box = el("div", { id: "workers" });
  const depth_host = el("div", { className: "chart", id: "depth-chart" });
  const rate_host = el("div", { className: "chart", id: "throughput-chart" });
  replace(main,
    el("h1", {}, "Overview"), status,
    el("section", { className: "card" }, el("h2", {}, "Queues"), queues_box),
    el("section", { className: "charts" }, el("div", { className: "card" }, depth_host),
       el("div", { className: "card" }, rate_host)),
    el("section", { className: "card" }, el("h2", {}, "Workers"), workers_box));
  const depth = new TypeChart(depth_host, "Queue depth (queued jobs)", "jobs");
  const rate = new TypeChart(rate_host, "Throughput (jobs ended in the last minute)", "jobs/min");
  signal.addEventListener("abort", () => {
    depth.destroy();
    rate.destroy();
  });

  await poll(async () => {
    const [queues, workers] = await Promise.all([get("/v1/queues"), get("/v1/workers")]);
    if (signal.aborted) return;
    replace(queues_box, queues.queues.length
      ? table(["type", "workers", "queued", "scheduled", "running", "oldest queued", "succeeded/min", "failed/min"],
              queue_rows(queues.queues), { id: "queues-table" })
      : el("p", { className: "muted" }, "No job types yet: start a worker."));
    replace(workers_box, workers.workers.length
      ? table(["name", "runtime", "types", "running", "last heartbeat", "state"], worker_rows(workers.workers),
              { id: "workers-table" })
      : el("p", { className: "muted" }, "No workers connected."));
    const now = Date.now() / 1000;
    const queued = {}, ended = {};
    for (const q of queues.queues) {
      queued[q.type] = q.queued;
      ended[q.type] = q.succeeded_last_minute + q.failed_last_minute;
    }
    depth.add(now, queued);
    rate.add(now, ended);
    replace(status, `Refreshed every ${POLL_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`);
  }, POLL_MS, signal, (e) => replace(status, el("span", { className: "error" }, error_text(e))));
}
