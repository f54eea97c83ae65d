"""Alternating A/B runs of one benchmark figure against two builds, the way a feature's cost is
measured here (bench/RESULTS.md): the builds take turns run by run, so a machine that slows down
part way through slows both.

    .venv/bin/python bench/ab_compare.py FIGURE ROUNDS BUILD_BEFORE BUILD_AFTER

FIGURE is a name of run_bench.FIGURES whose result has a `rate`; each run is one call of it in a
fresh process with SLUICE_BUILD_DIR at the build. Prints every run, each build's median and the
ratio after/before. Build the "before" in a worktree: `git worktree add --detach ../before REV`,
then cmake it there (its sluice-api, sluice-broker, sluice-worker-native and sluice-keygen).
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ONE = ("import sys, json, tempfile, pathlib; sys.path.insert(0, sys.argv[2]); import run_bench; "
           "print('RESULT ' + json.dumps(run_bench.FIGURES[sys.argv[1]](pathlib.Path(tempfile.mkdtemp()))))")


def main() -> int:
    figure, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:5]
    rates: dict[str, list[float]] = {build: [] for build in builds}
    for i in range(rounds):
        for build in builds if i % 2 == 0 else builds[::-1]:
            done = subprocess.run([sys.executable, "-c", RUN_ONE, figure, str(ROOT / "bench")],
                                  env={**os.environ, "SLUICE_BUILD_DIR": build}, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                print(f"run {i} of {build} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            result = json.loads(lines[0].removeprefix("RESULT "))
            rates[build].append(result["rate"])
            print(f"round {i} {build}: {result['rate']:,.0f}/s", flush=True)
    medians = [statistics.median(rates[build]) for build in builds]
    for build, median in zip(builds, medians):
        print(f"{build}: median {median:,.0f}/s of {', '.join(f'{r:,.0f}' for r in rates[build])}")
    print(f"after/before: {medians[1] / medians[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
