"""`sluice`: the command line of the Sluice HTTP API (README.md, "The sluice command").

    sluice submit TYPE --input JSON|@FILE|- [-o NAME=VALUE ...] [--watch]
    sluice watch ID | show ID | cancel ID | retry ID
    sluice jobs [--status S] [--type T] [--limit N] | dead [--limit N]
    sluice queues | workers | top
    sluice keys create --tenant T [--role member|admin] [--name N] | keys list | keys revoke ID

Every command takes `--json`: machine-readable output on stdout and nothing else there (a
listing is one JSON array; `watch` and `submit --watch` print one JSON event a line). The api
is `--url` or SLUICE_URL (default http://127.0.0.1:8080), the key `--api-key` or
SLUICE_API_KEY. An error answer prints its code and message on stderr and exits with status 1
(2 for a bad command line); `watch` exits 1 for a job that failed or was canceled.

Needs httpx, click and rich only (`pip install sluice`); the worker is `sluice-worker`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Iterable

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from .client import ApiError, Client, Event, Job, RetryPolicy, TextAssembler
from .client.core import DEFAULT_URL
from .errors import SluiceError

err = Console(stderr=True)


def out_json(value: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False))


def json_option(command: Callable) -> Callable:
    """Adds `--json` to a command (as well as the group's), read back with want_json()."""
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(dict)["json"] = True
    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=remember,
                        help="Machine-readable output.")(command)


def want_json(ctx: click.Context) -> bool:
    return bool(ctx.find_root().ensure_object(dict).get("json") or ctx.ensure_object(dict).get("json"))


def client_of(ctx: click.Context) -> Client:
    return ctx.find_root().obj["client"]


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    """A rich table; None shows as an empty cell."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    Console().print(table(title, columns, rows))


class SluiceGroup(click.Group):
    """Turns the client's errors into a message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            err.print(f"[red]error[/red]: {exc.code} ({exc.status}): {exc.message}", highlight=False, markup=True)
            ctx.exit(1)
        except SluiceError as exc:
            err.print(f"[red]error[/red]: {exc}", highlight=False)
            ctx.exit(1)


@click.group(cls=SluiceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SLUICE_URL", default=DEFAULT_URL, show_default=True, help="The api (SLUICE_URL).")
@click.option("--api-key", envvar="SLUICE_API_KEY", default=None, help="An API key (SLUICE_API_KEY).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per request.")
@click.option("--retries", type=click.IntRange(0), default=5, show_default=True,
              help="Retries of a 429 or 503 answer or a failed connection.")
@json_option
@click.pass_context
def main(ctx: click.Context, url: str, api_key: str | None, timeout: float, retries: int) -> None:
    """Submit, follow and manage Sluice jobs from the command line."""
    client = Client(url, api_key=api_key, timeout=timeout, retry_policy=RetryPolicy(max_retries=retries))
    ctx.ensure_object(dict)["client"] = client
    ctx.call_on_close(client.close)


# -- jobs ----------------------------------------------------------------------------------
def read_input(text: str) -> Any:
    """--input: JSON text, @FILE (JSON in a file) or - (JSON on stdin)."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        with open(text[1:], encoding="utf-8") as file:
            text = file.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from exc


def parse_option(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """-o NAME=VALUE: the value as JSON when it parses (10, "x", true), else as a string."""
    options = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="-o")
        try:
            options[name] = json.loads(value)
        except ValueError:
            options[name] = value
    return options


@main.command()
@click.argument("job_type", metavar="TYPE")
@click.option("--input", "-i", "input_text", default="null", help="JSON, @FILE or - (stdin).")
@click.option("--option", "-o", "options", multiple=True, callback=parse_option, metavar="NAME=VALUE",
              help="A job option (timeout_s=60, priority=5, ...); repeat for more.")
@click.option("--idempotency-key", default=None, help="Your own key (default: a new UUID).")
@click.option("--watch", "-w", is_flag=True, help="Follow the job until it ends (as `sluice watch`).")
@json_option
@click.pass_context
def submit(ctx: click.Context, job_type: str, input_text: str, options: dict[str, Any],
           idempotency_key: str | None, watch: bool) -> None:
    """Submit a job of TYPE; prints its id."""
    job = client_of(ctx).submit(job_type, read_input(input_text), idempotency_key=idempotency_key, **options)
    if want_json(ctx):
        out_json(job.raw)
    else:
        (err if watch else Console()).print(f"{job.id}  {job.type}  {job.status}", highlight=False)
    if watch:
        follow(ctx, job.id)


@main.command("watch")
@click.argument("job_id", metavar="ID")
@json_option
@click.pass_context
def watch_command(ctx: click.Context, job_id: str) -> None:
    """Follow a job: a progress bar, its streamed output as it comes, then its result."""
    follow(ctx, job_id)


def follow(ctx: click.Context, job_id: str) -> None:
    """Prints the job's events until its end; exits 1 unless it succeeded."""
    events = client_of(ctx).events(job_id)
    if want_json(ctx):
        last = None
        for event in events:
            out_json({"id": event.id, "event": event.event, "data": event.data})
            last = event
        final = last.event if last else "succeeded"
    elif sys.stdout.isatty():
        final = follow_live(events)
    else:
        final = follow_plain(events)
    if final != "succeeded":
        ctx.exit(1)


def describe(event: Event) -> str | None:
    """A line for stderr about an event that is not streamed text, or None."""
    data = event.data
    if event.event == "started":
        return f"started attempt {data.get('attempt')} on {data.get('worker')}"
    if event.event == "retrying":
        return f"attempt {data.get('attempt')} failed: {data.get('error')}; retrying (its text starts again)"
    if event.event in ("failed", "canceled"):
        return f"{event.event}" + (f": {data['error']}" if data.get("error") else "")
    return None


def result_text(event: Event) -> str:
    return json.dumps(event.data.get("result"), ensure_ascii=False, indent=2)


def follow_plain(events: Iterable[Event]) -> str:
    """For a pipe: chunks on stdout as they come, progress and the rest on stderr, the result
    on stdout."""
    text = TextAssembler()
    final = "succeeded"
    mid_line = False  # chunks were written since the last newline
    for event in events:
        chunk = text.feed(event)
        if chunk is not None:
            if chunk.restart:
                sys.stdout.write("\n")
            sys.stdout.write(chunk)
            sys.stdout.flush()
            mid_line = True
        elif event.event == "progress":
            fraction = event.data.get("fraction")
            percent = f"{fraction * 100:3.0f}%" if isinstance(fraction, (int, float)) else "   "
            err.print(f"[{percent}] {event.data.get('message', '')}", highlight=False, markup=False)
        elif (line := describe(event)) is not None:
            err.print(line, highlight=False, markup=False)
        if event.terminal:
            final = event.event
            if mid_line:
                sys.stdout.write("\n")
            if event.event == "succeeded":
                click.echo(result_text(event))
    return final


def follow_live(events: Iterable[Event]) -> str:
    """For a terminal: the streamed text above a progress bar, redrawn as events come."""
    text = TextAssembler()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    task = progress.add_task("queued", total=1.0)
    console = Console()
    final = "succeeded"
    with Live(Group(Text(""), progress), console=console, refresh_per_second=10,
              vertical_overflow="visible") as live:
        for event in events:
            text.feed(event)
            if event.event == "progress":
                fraction = event.data.get("fraction")
                progress.update(task, description=str(event.data.get("message", "")),
                                completed=fraction if isinstance(fraction, (int, float)) else None)
            elif (line := describe(event)) is not None:
                progress.update(task, description=line)
            if event.terminal:
                final = event.event
                progress.update(task, description=event.event,
                                completed=1.0 if final == "succeeded" else progress.tasks[0].completed)
            live.update(Group(Text(text.text), progress))
        if final == "succeeded" and not text.parts:
            live.console.print(result_text(event))
    return final


@main.command()
@click.argument("job_id", metavar="ID")
@json_option
@click.pass_context
def show(ctx: click.Context, job_id: str) -> None:
    """A job's state, result or error and its attempts."""
    job = client_of(ctx).get(job_id)
    if want_json(ctx):
        return out_json(job.raw)
    fields = table(f"job {job.id}", ["field", "value"], [
        (name, job.raw.get(name)) for name in ("type", "status", "tenant", "priority", "attempts", "max_attempts",
                                               "timeout_s", "redeliveries", "created_at", "started_at",
                                               "finished_at", "error") if job.raw.get(name) is not None])
    console = Console()
    console.print(fields)
    if job.history:
        console.print(table("attempts", ["attempt", "worker", "started_at", "finished_at", "outcome", "error"],
                            ([h.get(k) for k in ("attempt", "worker", "started_at", "finished_at", "outcome", "error")]
                             for h in job.history)))
    if job.result is not None:
        console.print("result:", json.dumps(job.result, ensure_ascii=False, indent=2), highlight=False)


JOB_COLUMNS = ["id", "type", "status", "attempts", "created_at", "finished_at", "error"]


def print_jobs(ctx: click.Context, title: str, jobs: Iterable[Job]) -> None:
    jobs = list(jobs)
    if want_json(ctx):
        return out_json([job.raw for job in jobs])
    print_table(title, JOB_COLUMNS, ([getattr(job, c) for c in JOB_COLUMNS] for job in jobs))


@main.command()
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "canceled"]))
@click.option("--type", "job_type", default=None, help="Only jobs of this type.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Jobs to list.")
@json_option
@click.pass_context
def jobs(ctx: click.Context, status: str | None, job_type: str | None, limit: int) -> None:
    """Your jobs, newest first."""
    print_jobs(ctx, "jobs", client_of(ctx).list_jobs(status=status, type=job_type, limit=limit))


@main.command()
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Jobs to list.")
@json_option
@click.pass_context
def dead(ctx: click.Context, limit: int) -> None:
    """Dead jobs (out of attempts, or failed for good), newest first."""
    print_jobs(ctx, "dead jobs", client_of(ctx).dead(limit=limit))


def answer_command(name: str, verb: str, help_text: str) -> None:
    """Adds a command NAME ID that calls the client's method NAME and prints its answer."""
    @main.command(name, help=help_text)
    @click.argument("job_id", metavar="ID")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, job_id: str) -> None:
        answer = getattr(client_of(ctx), name)(job_id)
        if want_json(ctx):
            out_json(answer)
        else:
            click.echo(f"{verb} {answer['id']} ({answer['status']})")


answer_command("cancel", "canceled", "Cancel a queued or running job.")
answer_command("retry", "retried", "Put a dead job back in its queue.")


# -- the system ----------------------------------------------------------------------------
QUEUE_COLUMNS = ["type", "workers", "queued", "scheduled", "running", "oldest_queued_age_s",
                 "succeeded_last_minute", "failed_last_minute"]
WORKER_COLUMNS = ["name", "runtime", "types", "concurrency", "running", "last_heartbeat", "leaving"]


def queues_table(report: dict[str, Any]) -> Table:
    columns = [c for c in QUEUE_COLUMNS if any(c in q for q in report.get("queues", []))] or QUEUE_COLUMNS[:1]
    return table(f"queues (as of {report.get('as_of')})", columns,
                 ([q.get(c) for c in columns] for q in report.get("queues", [])))


def workers_table(report: dict[str, Any]) -> Table:
    def cell(worker: dict[str, Any], column: str) -> Any:
        value = worker.get(column)
        return ", ".join(value) if isinstance(value, list) else value
    return table(f"workers ({report.get('total', 0)}, as of {report.get('as_of')})", WORKER_COLUMNS,
                 ([cell(w, c) for c in WORKER_COLUMNS] for w in report.get("workers", [])))


@main.command()
@json_option
@click.pass_context
def queues(ctx: click.Context) -> None:
    """Per job type: jobs queued, scheduled, running, and the workers serving it."""
    report = client_of(ctx).queues()
    if want_json(ctx):
        return out_json(report)
    Console().print(queues_table(report))


@main.command()
@json_option
@click.pass_context
def workers(ctx: click.Context) -> None:
    """The workers the broker knows."""
    report = client_of(ctx).workers()
    if want_json(ctx):
        return out_json(report)
    Console().print(workers_table(report))


def top_view(client: Client) -> Group:
    """The queues and workers now; a part the api does not serve (or that fails) says why."""
    parts = []
    for fetch, render in ((client.queues, queues_table), (client.workers, workers_table)):
        try:
            parts.append(render(fetch()))
        except ApiError as exc:
            parts.append(Text(f"{fetch.__name__}: {exc.code} ({exc.status}): {exc.message}", style="red"))
    return Group(*parts)


@main.command()
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True, help="Seconds between updates.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many updates (default: Ctrl-C).")
@click.pass_context
def top(ctx: click.Context, interval: float, count: int | None) -> None:
    """A live table of queues and workers, refreshed every --interval; Ctrl-C ends it."""
    client = client_of(ctx)
    shown = 0
    try:
        with Live(top_view(client), console=Console(), auto_refresh=False) as live:
            while True:
                shown += 1
                live.update(top_view(client), refresh=True)
                if count is not None and shown >= count:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def print_records(ctx: click.Context, title: str, columns: list[str], found: list[dict[str, Any]]) -> None:
    """A listing: the records as JSON with --json, else a table of their `columns`."""
    if want_json(ctx):
        return out_json(found)
    print_table(title, columns, ([record.get(c) for c in columns] for record in found))


def print_answer(ctx: click.Context, answer: dict[str, Any], done: str) -> None:
    """The answer to a removal: as JSON with --json, else "`done` ID"."""
    if want_json(ctx):
        return out_json(answer)
    click.echo(f"{done} {answer['id']}")


# -- cron schedules ------------------------------------------------------------------------
@main.group()
def schedules() -> None:
    """Cron schedules: a job at each tick (README.md, Schedules)."""


SCHEDULE_COLUMNS = ["id", "cron", "timezone", "missed", "next_tick", "fired", "skipped", "last_job_id"]


@schedules.command("create")
@click.argument("cron")
@click.argument("job_type", metavar="TYPE")
@click.option("--input", "-i", "input_text", default="null", help="JSON, @FILE or - (stdin).")
@click.option("--option", "-o", "options", multiple=True, callback=parse_option, metavar="NAME=VALUE",
              help="A job option (timeout_s=60, priority=5, ...); repeat for more.")
@click.option("--timezone", "-z", default=None, help="An IANA zone (default UTC).")
@click.option("--missed", type=click.Choice(["run_once", "skip"]), default=None,
              help="Ticks missed while no broker led: one job for all (run_once, the default) or none.")
@json_option
@click.pass_context
def schedules_create(ctx: click.Context, cron: str, job_type: str, input_text: str, options: dict[str, Any],
                     timezone: str | None, missed: str | None) -> None:
    """Make a schedule firing a job of TYPE at each tick of CRON; prints its id and first tick."""
    made = client_of(ctx).create_schedule(cron, job_type, read_input(input_text), timezone=timezone, missed=missed,
                                          **options)
    if want_json(ctx):
        return out_json(made)
    click.echo(f"{made['id']}  next tick {made['next_tick']}")


@schedules.command("list")
@json_option
@click.pass_context
def schedules_list(ctx: click.Context) -> None:
    """The tenant's schedules (the first 1000)."""
    print_records(ctx, "schedules", SCHEDULE_COLUMNS, client_of(ctx).list_schedules(limit=1000))


@schedules.command("delete")
@click.argument("schedule_id", metavar="ID")
@json_option
@click.pass_context
def schedules_delete(ctx: click.Context, schedule_id: str) -> None:
    """Delete a schedule: no tick fires after it."""
    print_answer(ctx, client_of(ctx).delete_schedule(schedule_id), "deleted")


# -- API keys ------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """API keys (admin keys only)."""


KEY_COLUMNS = ["id", "tenant", "role", "name", "created_at", "rate_limit"]


@keys.command("create")
@click.option("--tenant", required=True)
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@click.option("--name", default=None, help="What the key is for (default: the tenant).")
@click.option("--submits-per-s", type=click.IntRange(0), default=None)
@click.option("--requests-per-s", type=click.IntRange(0), default=None)
@json_option
@click.pass_context
def keys_create(ctx: click.Context, tenant: str, role: str, name: str | None, submits_per_s: int | None,
                requests_per_s: int | None) -> None:
    """Make a key; its secret is shown this once."""
    limits = {k: v for k, v in (("submits_per_s", submits_per_s), ("requests_per_s", requests_per_s)) if v is not None}
    made = client_of(ctx).create_key(tenant, role, name or tenant, rate_limit=limits or None)
    if want_json(ctx):
        return out_json(made)
    err.print(f"key {made['id']} for tenant {made['tenant']} ({made['role']}); the secret, shown this once:",
              highlight=False)
    click.echo(made["key"])


@keys.command("list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """Every key, without secrets."""
    print_records(ctx, "keys", KEY_COLUMNS, client_of(ctx).list_keys())


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; every api refuses it within a second."""
    print_answer(ctx, client_of(ctx).revoke_key(key_id), "revoked")


if __name__ == "__main__":
    main(prog_name="sluice")
