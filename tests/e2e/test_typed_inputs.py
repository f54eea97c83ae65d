"""Typed inputs end to end (README.md, "Typed inputs"): a Python worker whose handler takes a
pydantic model declares its JSON Schema; GET /v1/types and /openapi.json show it; a submit that
does not fit is 422 invalid_input with the failing path, and nothing is stored; one that fits runs
and the handler gets the model; a type without a schema takes anything; rogue workers' schemas
(10 MB, past the bound, not JSON, cyclic, costly) harm neither the broker nor the api."""
import time

import pytest
import zmq

from pipeline import running_pipeline


@pytest.fixture(scope="module")
def typed(tmp_path_factory, request):
    """Redis, broker, api; a Python worker of typed_tasks and one of the built-in tasks."""
    with running_pipeline(tmp_path_factory.mktemp("typed"), lambda: request.session.testsfailed) as p:
        p.add_task_modules()
        p.start_worker("python", modules=["typed_tasks"], name="typed-worker")
        p.start_worker("python", name="builtin-worker")
        p.wait_ready("typed_summary")
        p.wait_ready("summarize")
        yield p


def types_of(p) -> dict:
    response = p.http.get("/v1/types")
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["types"]}


def wait_until(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(what)


def job_ids(p) -> list[str]:
    response = p.http.get("/v1/jobs", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


def test_types_lists_each_type_with_its_schema(typed):
    from typed_tasks import SummarizeInput

    types = types_of(typed)
    assert types["typed_summary"]["schema"] == SummarizeInput.model_json_schema()
    assert types["typed_summary"]["checked"] is True
    assert types["untyped"] == {"name": "untyped", "schema": None, "checked": False}
    assert types["summarize"]["schema"]["required"] == ["text"]
    assert types["echo"]["schema"] is None


@pytest.mark.parametrize("input_, path, words", [
    ({}, "/text", "required property 'text' is missing"),
    ({"text": "x", "max_words": "ten"}, "/max_words", "expected integer, got string"),
    ({"text": "x", "max_words": 501}, "/max_words", "expected at most 500"),
    ({"text": "x", "max_words": 2.0}, "/max_words", "expected integer, got number"),
    ({"text": "x", "tags": [{"name": "ok"}, {"name": ""}]}, "/tags/1/name", "at least 1 characters"),
    (["not", "an", "object"], "", "expected object, got array"),
    (None, "", "expected object, got null"),
])
def test_a_submit_that_does_not_fit_is_422_and_stores_nothing(typed, input_, path, words):
    before = job_ids(typed)
    response = typed.http.post("/v1/jobs", json={"type": "typed_summary", "input": input_})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["path"] == path
    assert words in error["message"] and "typed_summary" in error["message"]
    assert job_ids(typed) == before


def test_a_submit_that_fits_runs_and_the_handler_gets_the_model(typed):
    job = typed.submit("typed_summary", {"text": "one two three", "max_words": 2, "tags": [{"name": "a"}]})
    done = typed.wait_result(job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"received": "SummarizeInput", "words": ["one", "two"], "tags": ["a"]}


def test_a_type_without_a_schema_takes_anything(typed):
    for value in (None, 5, "text", [1, {"a": None}], {"text": 5}):
        job = typed.submit("untyped", value)
        assert typed.wait_result(job["id"])["result"] == value


def test_builtin_summarize_refuses_a_text_that_is_not_a_string_at_submit(typed):
    response = typed.http.post("/v1/jobs", json={"type": "summarize", "input": {"text": 5}})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["path"] == "/text"
    response = typed.http.post("/v1/jobs", json={"type": "chat", "input": {"messages": [{"role": "robot",
                                                                                       "content": "hi"}]}})
    assert response.status_code == 422 and response.json()["error"]["path"] == "/messages/0/role", response.text
    response = typed.http.post("/v1/jobs", json={"type": "sleep", "input": {"ms": -1}})
    assert response.status_code == 422 and response.json()["error"]["path"] == "/ms", response.text


def test_the_openapi_document_holds_the_schemas(typed):
    doc = typed.http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    component = schemas["Input.typed_summary"]
    assert component["required"] == ["text"]
    # Its $refs are rebased onto the document, and resolve there.
    ref = component["properties"]["tags"]["items"]["$ref"]
    assert ref == "#/components/schemas/Input.typed_summary/$defs/Tag"
    target = doc
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    assert target["required"] == ["name"]
    typed_submits = {s["properties"]["type"]["const"]: s for s in schemas["TypedJobSubmit"]["oneOf"]}
    assert typed_submits["typed_summary"]["properties"]["input"] == {"$ref": "#/components/schemas/Input.typed_summary"}
    assert "untyped" not in typed_submits and "summarize" in typed_submits
    assert "/v1/types" in doc["paths"]


def test_a_changed_schema_is_logged_by_the_broker_and_checked_by_the_api(typed):
    ctx = zmq.Context()
    try:
        first = typed.own_worker(ctx, "evolving-1", ["evolving"], ['{"type": "object", "required": ["a"]}'])
        typed.wait_ready("evolving")
        wait_until(lambda: types_of(typed)["evolving"]["checked"], "the first schema")
        assert typed.http.post("/v1/jobs", json={"type": "evolving", "input": {"b": 1}}).status_code == 422
        second = typed.own_worker(ctx, "evolving-2", ["evolving"], ['{"type": "object", "required": ["b"]}'])
        wait_until(lambda: "job type evolving: input schema changed (declared by worker 'evolving-2')"
                   in typed.broker_log(), "the broker's log line")
        wait_until(lambda: typed.http.post("/v1/jobs", json={"type": "evolving", "input": {"b": 1}}).status_code == 202,
                   "the api to take the new schema")
        # A worker that declares no schema for the type leaves the stored one alone.
        third = typed.own_worker(ctx, "evolving-3", ["evolving"], [""])
        wait_until(lambda: "worker evolving-3 (" in typed.broker_log(), "the third worker")
        assert types_of(typed)["evolving"]["schema"] == {"type": "object", "required": ["b"]}
        for sock in (first, second, third):
            sock.close()
    finally:
        ctx.term()


def test_rogue_schemas_harm_neither_broker_nor_api(typed):
    deep_alternatives = '{"$defs": {"d0": {"type": "integer"}' + "".join(
        f', "d{i}": {{"anyOf": [{{"$ref": "#/$defs/d{i - 1}"}}, {{"$ref": "#/$defs/d{i - 1}"}}]}}'
        for i in range(1, 40)) + '}, "$ref": "#/$defs/d39"}'
    rogues = {
        "rogue_big": '{"type": "object", "description": "' + "x" * (100 * 1024) + '"}',  # past 64 KiB
        "rogue_garbage": "{not json",
        "rogue_cycle": '{"$ref": "#"}',
        "rogue_costly": deep_alternatives,
        "rogue_number": "5",
    }
    ctx = zmq.Context()
    try:
        # 10 MB in one READY: libzmq refuses the frame (and drops the peer) before the broker sees it.
        huge = typed.own_worker(ctx, "rogue-huge", ["rogue_huge"], ['{"description": "' + "x" * (10 << 20) + '"}'])
        mismatched = typed.own_worker(ctx, "rogue-mismatch", ["rogue_mismatch"], ["{}", "{}"])
        rogue = typed.own_worker(ctx, "rogue-many", list(rogues), list(rogues.values()))
        typed.wait_ready("rogue_costly")
        typed.wait_ready("rogue_mismatch")
        log = wait_until(lambda: "ignored the input schema of type rogue_big" in typed.broker_log()
                         and typed.broker_log(), "the broker's line about rogue_big")
        assert "ignored the input schemas of worker 'rogue-mismatch': 2 for 1 type(s)" in log
        types = types_of(typed)
        assert "rogue_huge" not in types
        assert types["rogue_big"]["schema"] is None and types["rogue_mismatch"]["schema"] is None
        for name in ("rogue_garbage", "rogue_cycle", "rogue_number"):
            assert types[name]["checked"] is False, types[name]
        assert types["rogue_garbage"]["schema"] is None and types["rogue_number"]["schema"] is None
        assert types["rogue_cycle"]["schema"] == {"$ref": "#"}
        # Unusable schemas check nothing; a schema too costly to apply lets the input through.
        for name in rogues:
            response = typed.http.post("/v1/jobs", json={"type": name, "input": {"any": "thing"}})
            assert response.status_code == 202, (name, response.text)
        api_log = "".join(path.read_text() for path in typed.workdir.glob("api-*.log"))
        assert "job type rogue_garbage: its input schema is not usable" in api_log
        assert "job type rogue_cycle: its input schema is not usable" in api_log
        assert "job type rogue_costly: an input was too deep or too costly to check" in api_log
        assert typed.http.get("/readyz").status_code == 200
        assert typed.http.get("/openapi.json").status_code == 200
        for sock in (huge, mismatched, rogue):
            sock.close()
    finally:
        ctx.term()
