-- wrk script: POST one small echo job per request (bench/run_bench.py).
wrk.method = "POST"
wrk.body = '{"type": "echo", "input": {"i": 1}}'
wrk.headers["Content-Type"] = "application/json"
-- An API key for an api with SLUICE_AUTH=required (the submit-auth figure).
local key = os.getenv("SLUICE_BENCH_KEY")
if key then wrk.headers["Authorization"] = "Bearer " .. key end
