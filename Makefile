# The two commands: `make run` starts the whole pipeline, `make test` runs every test.
BUILD_DIR ?= build
JOBS ?= 2

.PHONY: setup build run test unit e2e bench clean

setup:
	@scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@scripts/run.sh

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure

e2e: build
	SLUICE_BUILD_DIR=$(abspath $(BUILD_DIR)) .venv/bin/python -m pytest -q tests/python tests/e2e tests/faults

test: unit e2e

bench: build
	SLUICE_BUILD_DIR=$(abspath $(BUILD_DIR)) .venv/bin/python bench/run_bench.py

clean:
	rm -rf $(BUILD_DIR)
