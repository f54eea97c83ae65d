"""The OpenAPI document (schemas/openapi.yaml): it names every error code of common/errors.hpp with
its status, the api serves it as JSON at GET /openapi.json, and Schemathesis, run against a real
api with keys required, finds every answer as the document says: no 5xx, and each status,
content type, header and body documented. Schemathesis reads an event stream to its end and
checks each event against the document (as `schema` describes one event before OpenAPI 3.2), so
every job here must end. That every route is documented is checked beside the route table
(tests/unit/test_routes.cpp)."""
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest

from pipeline import ROOT, VENV_BIN, running_pipeline

_spec = importlib.util.spec_from_file_location("openapi_json", ROOT / "schemas" / "openapi_json.py")
openapi_json = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(openapi_json)

ADMIN_KEY = "openapi-admin-key-" + "0" * 32
ALLOWED_ORIGIN = "http://allowed.example"
# A bad Last-Event-ID answers 400 invalid_request, as it always has (api/routes.cpp, get_events),
# where invalid_request is 422 otherwise: the one code documented at a status of its own.
STATUS_EXCEPTIONS = {("400", "invalid_request")}

# What Schemathesis checks in every answer. Left out: negative_data_rejection, which counts an
# unknown header or query parameter as invalid data (the api ignores those, as HTTP servers do);
# positive_data_acceptance, which counts 422 unknown_job_type for a type no worker declared, and
# 422 for an option written 10.0 (JSON Schema's integers include 10.0; the api takes integers
# written as such), as valid data refused; use_after_free, for DELETE /v1/jobs/{id} cancels a job
# and leaves it readable; object_level_authorization, which needs a second identity's resources
# named to it (tests/security/test_tenants.py covers tenants).
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
    "response_schema_conformance", "missing_required_header", "unsupported_method", "allow_header_conformance",
    "ignored_auth", "ensure_resource_availability",
])
# Test cases per operation: each run below takes 20 to 30 s on 2 cores.
MAX_EXAMPLES = 100
# A long poll waits up to 60 s (?wait=60), if its job has not ended by then.
REQUEST_TIMEOUT_S = 75
RUN_TIMEOUT_S = 300


def error_codes(response: dict) -> list[str]:
    """The error codes a response object of the document lists, [] for a success."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("properties", {}).get("error", {}).get("properties", {}).get("code", {}).get("enum", [])


def documented_codes(doc: dict) -> set[tuple[str, str]]:
    """(status, code) for every error code the document lists: under each operation's statuses,
    and for the answers of any path, under their x-status."""
    responses = doc["components"]["responses"]
    found = set()
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].removeprefix("#/components/responses/")]
                found |= {(status, code) for code in error_codes(response)}
    for response in responses.values():
        if "x-status" in response:
            found |= {(str(response["x-status"]), code) for code in error_codes(response)}
    return found


def test_every_error_code_is_documented_with_its_status():
    errors_hpp = (ROOT / "common" / "errors.hpp").read_text()
    catalogue = dict(re.findall(r'Code \w+\{"(\w+)", (\d+)\}', errors_hpp))
    assert len(catalogue) == errors_hpp.count("inline constexpr Code "), "a code in common/errors.hpp was not read"
    documented = documented_codes(openapi_json.document())
    for code, status in catalogue.items():
        assert (status, code) in documented, f"{status} {code} (common/errors.hpp) is not in schemas/openapi.yaml"
    for status, code in documented:
        assert code in catalogue, f"schemas/openapi.yaml names {code}, which common/errors.hpp does not"
        assert catalogue[code] == status or (status, code) in STATUS_EXCEPTIONS, f"{code} is {catalogue[code]}, not {status}"


KEY_LIMITS = {"member": {}, "throttled": {"requests_per_s": 2, "submits_per_s": 1}}


def member_key(p, who: str) -> str:
    """A new member key of tenant `who`, with its KEY_LIMITS."""
    made = p.http.post("/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                       json={"tenant": who, "role": "member", "name": who, "rate_limit": KEY_LIMITS[who]})
    assert made.status_code == 201, made.text
    return made.json()["key"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Keys required, one browser origin listed; a native worker, so every echo job Schemathesis
    submits ends (and so do its event streams and long polls). Keys: the admin's, a member's, and
    one held to 2 requests and 1 submit a second, which answers mostly 429. For the admin and the
    member, a dead job each, so dead-letter pages and retries have real jobs to show."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_API_CORS_ORIGINS": ALLOWED_ORIGIN}
    with running_pipeline(tmp_path_factory.mktemp("openapi"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        keys = {"admin": ADMIN_KEY, "member": member_key(p, "member")}
        for who in ("admin", "member"):
            headers = {"Authorization": f"Bearer {keys[who]}"}
            # A sleep the worker cuts off after 1 s, with no attempt left: dead.
            job = p.http.post("/v1/jobs", headers=headers, json={
                "type": "sleep", "input": {"ms": 5000}, "options": {"timeout_s": 1, "max_attempts": 1}})
            assert job.status_code == 202, job.text
            dead = p.http.get(f"/v1/jobs/{job.json()['id']}/result", params={"wait": 10}, headers=headers)
            assert dead.json()["status"] == "failed", dead.text
        yield p, keys


def test_the_api_serves_the_document_as_json(site):
    p, _ = site
    response = p.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi_json.document(), "the api serves another document: rebuild it"


# The member's requests come from a page of the listed origin, so every answer carries the CORS
# headers, and the document's word on them is checked too.
@pytest.mark.parametrize("who, origin", [("admin", None), ("member", ALLOWED_ORIGIN), ("throttled", None)],
                         ids=["admin", "member-in-a-browser", "throttled"])
def test_schemathesis_finds_every_answer_as_documented(site, who, origin, tmp_path):
    p, _ = site
    # A key of its own: the admin's run revokes keys it lists (DELETE /v1/admin/keys/{id}).
    key = ADMIN_KEY if who == "admin" else member_key(p, who)
    command = [
        str(VENV_BIN / "schemathesis"), "run", f"{p.url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--generation-database", "none",
        "--workers", "2", "--request-timeout", str(REQUEST_TIMEOUT_S), "--no-color",
        # Not the coverage phase: on Debian 12's Python 3.11 its query-parameter mutations crash
        # inside the interpreter ("SystemError: AST constructor recursion depth mismatch" while
        # Hypothesis reads a filter lambda's source), whatever the api answers.
        "--phases", "examples,fuzzing,stateful",
    ]
    if origin:
        command += ["--header", f"Origin: {origin}"]
    # The hooks keep scheduled jobs within a second, so every job still ends (schemathesis_hooks.py).
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_hooks.py"))}
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
