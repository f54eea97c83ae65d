"""Schemathesis hooks of tests/e2e/test_openapi.py (loaded through SCHEMATHESIS_HOOKS). Its site
runs every job it is sent to its end, so event streams and long polls end with them: a generated
submit that would schedule a job more than a second ahead gets a delay of one second instead (a
run_at in the coming year, one in the past). Values out of range are left alone, so their 422s
are still generated and checked."""
import datetime

import schemathesis

YEAR_S = 366 * 24 * 3600


@schemathesis.hook
def map_body(context, body):
    options = body.get("options") if isinstance(body, dict) else None
    if not isinstance(options, dict):
        return body
    delay = options.get("delay_s")
    if isinstance(delay, (int, float)) and not isinstance(delay, bool) and 1 < delay <= YEAR_S:
        options["delay_s"] = 1
    run_at = options.get("run_at")
    if isinstance(run_at, str):
        try:
            ahead = datetime.datetime.fromisoformat(run_at).timestamp() - datetime.datetime.now().timestamp()
        except (ValueError, OverflowError, OSError):
            return body
        if 0 < ahead <= YEAR_S:
            options["run_at"] = "2001-01-01T00:00:00Z"
    return body
