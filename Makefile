# The two commands: `make run` starts the whole pipeline, `make test` runs every test.
BUILD_DIR ?= build
JOBS ?= 2

FUZZ_DIR ?= build-fuzz
# Seconds each fuzz target runs: briefly in `make test`, longer in `make fuzz`.
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SECONDS ?= 600

.PHONY: setup build run test unit e2e screenshots fuzz-build fuzz-smoke fuzz bench clean

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
	SLUICE_BUILD_DIR=$(abspath $(BUILD_DIR)) .venv/bin/python -m pytest -q tests/python tests/e2e tests/faults tests/security

test: unit e2e fuzz-smoke

# The dashboard's test alone, keeping a PNG of each page in docs/screenshots/ (README.md, Dashboard).
screenshots: build
	SLUICE_BUILD_DIR=$(abspath $(BUILD_DIR)) SLUICE_SCREENSHOT_DIR=$(abspath docs/screenshots) \
		.venv/bin/python -m pytest -q tests/e2e/test_dashboard.py

fuzz-build: setup
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_protocol fuzz_http_request fuzz_ws_message fuzz_json_schema

# Each target starts from its seed corpus (fuzz/corpus/) in a scratch copy; a crash leaves its
# input in $(FUZZ_DIR)/ and the log's tail on the terminal, and fails the run.
fuzz-smoke fuzz: fuzz-build
	@for target in protocol http_request ws_message json_schema; do \
		rm -rf $(FUZZ_DIR)/corpus-$$target && cp -r fuzz/corpus/$$target $(FUZZ_DIR)/corpus-$$target && \
		echo "fuzz_$$target: $(if $(filter fuzz,$@),$(FUZZ_SECONDS),$(FUZZ_SMOKE_SECONDS)) s" && \
		if $(FUZZ_DIR)/fuzz/fuzz_$$target -max_total_time=$(if $(filter fuzz,$@),$(FUZZ_SECONDS),$(FUZZ_SMOKE_SECONDS)) \
			-max_len=4096 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$target- \
			$(FUZZ_DIR)/corpus-$$target > $(FUZZ_DIR)/fuzz-$$target.log 2>&1; \
		then grep -E "stat::number_of_executed_units|Done" $(FUZZ_DIR)/fuzz-$$target.log; \
		else tail -40 $(FUZZ_DIR)/fuzz-$$target.log; exit 1; fi; \
	done

bench: build
	SLUICE_BUILD_DIR=$(abspath $(BUILD_DIR)) .venv/bin/python bench/run_bench.py $(FIGURES)

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR)
