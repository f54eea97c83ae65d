-- wrk script: POST one small echo job per request (bench/run_bench.py).
wrk.method = "POST"
wrk.body = '{"type": "echo", "input": {"i": 1}}'
wrk.headers["Content-Type"] = "application/json"
