"""Cron schedules across broker faults (README.md, "Schedules"): a schedule firing every second
while the broker is killed (kill -9) and restarted, killed and replaced by its standby, or paused
past its lease and resumed once the standby leads (its fires then are fenced). Every
tick from the first to the last one fired is accounted for exactly once: by a job of its own
(its `schedule_tick`), by a later job that stands for it (`missed_ticks`, missed: run_once), or by
the schedule's `skipped` count (missed: skip). No tick fires twice, none goes missing."""
from datetime import datetime
import signal
import time

from pipeline import wait_for_line

# Far above the 2 s lease: a slow machine does not fail the test.
WAIT_S = 30
# How long the broker stays dead: several ticks of a per-second schedule go by without a leader.
DOWN_S = 3


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def schedule(p, schedule_id: str) -> dict:
    response = p.http.get(f"/v1/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_fired(p, schedule_id: str, at_least: int) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        shown = schedule(p, schedule_id)
        if shown["fired"] >= at_least:
            return shown
        assert time.monotonic() < deadline, f"schedule {schedule_id} never fired {at_least} times"
        time.sleep(0.2)


def account_for_every_tick(p, made: dict) -> dict:
    """Checks that every tick from the first to the last fired is one job's own tick, one a later
    job stands for, or a skipped one, each exactly once. Returns the schedule as it was read."""
    shown = schedule(p, made["id"])
    last = ms(shown["last_tick"])
    jobs = [job for job in p.http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
            if job.get("schedule_id") == made["id"] and ms(job["schedule_tick"]) <= last]
    ticks = sorted(ms(job["schedule_tick"]) for job in jobs)
    assert len(ticks) == len(set(ticks)) == shown["fired"], (ticks, shown)
    first = ms(made["next_tick"])
    covered = sum(1 + job["missed_ticks"] for job in jobs) + shown["skipped"]
    assert covered == (last - first) // 1000 + 1, (ticks, shown)
    # Jobs without missed ticks before them follow the one before by a second.
    by_tick = {ms(job["schedule_tick"]): job for job in jobs}
    for before, after in zip(ticks, ticks[1:]):
        if shown["missed"] == "run_once":
            assert after - before == 1000 * (1 + by_tick[after]["missed_ticks"]), (before, after)
    for job in jobs:
        done = p.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 30}).json()
        assert done["status"] == "succeeded", done
    return shown


def test_ticks_missed_while_the_broker_was_down_fire_once_after_its_restart(pipeline):
    p = pipeline.start()
    p.start_worker("native", name="native-1")
    p.wait_ready("echo")
    made = p.http.post("/v1/schedules", json={"cron": "* * * * * *", "job": {"type": "echo", "input": {"n": 1}}}).json()
    before = wait_fired(p, made["id"], 3)
    p.broker.send_signal(signal.SIGKILL)
    p.broker.wait()
    time.sleep(DOWN_S)
    p.start_broker(same_endpoints=True)
    wait_fired(p, made["id"], before["fired"] + 3)
    shown = account_for_every_tick(p, made)
    assert shown["skipped"] == 0 and shown["refused"] == 0
    jobs = [job for job in p.http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
            if job.get("schedule_id") == made["id"]]
    # One job stood for the ticks nobody fired while the broker was dead.
    assert any(job["missed_ticks"] >= DOWN_S - 1 for job in jobs), jobs
    assert "earlier tick(s) missed while no broker led: one job fires for them all" in p.broker_log()


def test_a_failover_to_the_standby_skips_missed_ticks_and_counts_them(pipeline):
    p = pipeline.start(standby=True)
    p.start_worker("native", name="native-1")
    p.wait_ready("echo")
    made = p.http.post("/v1/schedules", json={"cron": "* * * * * *", "missed": "skip",
                                              "job": {"type": "echo", "input": {"n": 2}}}).json()
    before = wait_fired(p, made["id"], 3)
    # The standby is held back for DOWN_S, so that at least two ticks go by without a leader
    # whenever the kill lands: a takeover within the 2 s lease can leave a single late tick,
    # which fires rather than being skipped.
    p.brokers["b"].send_signal(signal.SIGSTOP)
    try:
        p.brokers["a"].send_signal(signal.SIGKILL)
        p.brokers["a"].wait()
        time.sleep(DOWN_S)
    finally:
        p.brokers["b"].send_signal(signal.SIGCONT)
    wait_for_line(p.broker_outputs["b"], r"frontend (\S+) backend (\S+)", p.brokers["b"], timeout=WAIT_S)
    wait_fired(p, made["id"], before["fired"] + 3)
    shown = account_for_every_tick(p, made)
    assert shown["skipped"] >= 1 and shown["refused"] == 0, shown
    log_b = p.broker_outputs["b"].with_suffix(".log").read_text()
    assert "missed while no broker led" in log_b and "skipped" in log_b


def test_a_leader_paused_past_its_lease_fires_nothing_twice_when_resumed(pipeline):
    p = pipeline.start(standby=True)
    p.start_worker("native", name="native-1")
    p.wait_ready("echo")
    made = p.http.post("/v1/schedules", json={"cron": "* * * * * *", "job": {"type": "echo", "input": {"n": 3}}}).json()
    before = wait_fired(p, made["id"], 3)
    p.brokers["a"].send_signal(signal.SIGSTOP)
    try:
        wait_for_line(p.broker_outputs["b"], r"frontend (\S+) backend (\S+)", p.brokers["b"], timeout=WAIT_S)
        wait_fired(p, made["id"], before["fired"] + 2)
    finally:
        p.brokers["a"].send_signal(signal.SIGCONT)
    # The old leader, resumed with its due ticks in hand, steps down without firing any of them.
    wait_for_line(p.broker_outputs["a"].with_suffix(".log"), r"stepped down", p.brokers["a"], timeout=WAIT_S)
    wait_fired(p, made["id"], schedule(p, made["id"])["fired"] + 2)
    shown = account_for_every_tick(p, made)
    assert shown["skipped"] == 0 and shown["refused"] == 0, shown
