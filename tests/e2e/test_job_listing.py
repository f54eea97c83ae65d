"""GET /v1/jobs: the caller's jobs, newest first, a page at a time with an opaque cursor, filtered
by status and type; a page costs the same whatever how many jobs the tenant has."""
import pytest


def page(p, **params) -> dict:
    response = p.http.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"jobs", "next_cursor"}
    return body


def test_paging_lists_every_job_once_newest_first_and_filters(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo,sleep")
    ids = [p.submit("echo" if i % 3 else "sleep", {"i": i})["id"] for i in range(25)]

    seen, cursor = [], None
    while True:
        body = page(p, limit=7, **({"cursor": cursor} if cursor else {}))
        assert len(body["jobs"]) <= 7
        seen += [job["id"] for job in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # Newest first by created_at; jobs of one millisecond come in an order of their own.
    assert sorted(seen) == sorted(ids)
    created = {job["id"]: job["created_at"] for job in page(p, limit=1000)["jobs"]}
    assert [created[i] for i in seen] == sorted((created[i] for i in seen), reverse=True)
    assert all("result" not in job and "history" not in job for job in page(p)["jobs"])

    sleeps = [job["id"] for job in page(p, type="sleep")["jobs"]]
    assert sorted(sleeps) == sorted(ids[i] for i in range(25) if i % 3 == 0)
    assert page(p, status="succeeded")["jobs"] == []  # no worker: all queued
    assert len(page(p, status="queued", limit=1000)["jobs"]) == 25


@pytest.mark.parametrize("params, message", [
    ({"limit": 0}, "limit must be an integer between 1 and 1000"),
    ({"limit": 1001}, "limit must be an integer between 1 and 1000"),
    ({"cursor": "x"}, "cursor must be a next_cursor"),
    ({"cursor": "12.not-a-uuid"}, "cursor must be a next_cursor"),
    ({"status": "done"}, "status must be"),
    ({"type": "a b"}, "type must match"),
    ({"order": "asc"}, "order is not a parameter"),
])
def test_bad_queries_are_422(fresh_pipeline, params, message):
    p = fresh_pipeline.start()
    response = p.http.get("/v1/jobs", params=params)
    assert response.status_code == 422 and message in response.json()["error"]["message"], response.text
