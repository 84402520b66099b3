# esa-enricher — developer and CI entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: native speedups help install demo test test-unit test-integration test-crash-full lint bench assets splunk-app services-up services-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml native/Cargo.toml native/Cargo.lock native/src/lib.rs
	$(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' own notices go to a log, shown only when the install fails.
	@echo "installing the package and its test tools into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -e '.[dev,sigma,speedups,splunk]'; } >$(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }
	@$(MAKE) --no-print-directory native
	@touch $@

# Compiled copies of the hot modules (Cython, enricher/accel/compiled.py): rebuilt only when a source changed; a
# module edited since is imported from its .py. Optional like the native core; ESA_COMPILED=1 (CI) requires it.
speedups: $(STAMP) ## compile the hot modules with Cython into enricher/_compiled (skipped when up to date)
	@$(BIN)/python -m enricher.accel.build || { \
	  [ "$${ESA_COMPILED:-}" != 1 ] || exit 1; \
	  echo "warning: compiled modules not built; the Python sources are used" >&2; }
	@# The package's bytecode, written here because a run may not write it (PYTHONDONTWRITEBYTECODE, as many
	@# container images set; a read-only checkout): without it every start compiles ~40 modules from source
	@# (~20 ms of CPU, 150 M instructions). A .pyc older than its source is ignored, never run.
	@$(BIN)/python -m compileall -q enricher

# The native typing core is optional: without cargo (or when its build fails) the Python parser types every
# line, with the same results. ESA_NATIVE=1 (CI) turns a failed build into a failed install.
native: ## build the native typing core into .venv (Rust; needs cargo, fetches crates from crates.io)
	@export PATH="$$HOME/.cargo/bin:$$PATH"; \
	if ! command -v cargo >/dev/null; then \
	  [ "$${ESA_NATIVE:-}" != 1 ] || { echo "ESA_NATIVE=1 but cargo is not installed" >&2; exit 1; }; \
	  echo "cargo not found: native core not built, the Python parser types every line"; \
	elif ! $(BIN)/pip install -q ./native; then \
	  [ "$${ESA_NATIVE:-}" != 1 ] || exit 1; \
	  echo "warning: the native core did not build; the Python parser types every line" >&2; \
	fi

install: $(STAMP) speedups ## create .venv and install the package with its test tools

demo: $(STAMP) speedups ## replay the bundled sample and print the summary (the embedded default)
	$(BIN)/esa-enricher replay samples/demo-mail_logs.log --appliance esa1.corp.example -o .demo-sessions.ndjson
	@echo "session documents written to .demo-sessions.ndjson"

test: $(STAMP) speedups ## run the whole test suite (unit, golden, integration on real Kafka and Elasticsearch)
	@bash services/system-deps.sh
	$(BIN)/pytest -q --durations=25

test-unit: $(STAMP) speedups ## run the tests that need no services
	$(BIN)/pytest -q -m 'not integration'

test-integration: $(STAMP) speedups ## only the tests against real Kafka and Elasticsearch (ESA_KAFKA_BOOTSTRAP/ESA_ES_URL, else started)
	$(BIN)/pytest -q -m integration

test-crash-full: $(STAMP) speedups ## kill -9 test on the 1.1M-line corpus (>= 50,000 messages), as CI runs it
	ESA_FULL_CRASH_TEST=1 $(BIN)/pytest -q -s tests/integration/test_crash.py

lint: $(STAMP) ## ruff, and mypy (strict on enricher/core)
	$(BIN)/ruff check enricher tests bench
	$(BIN)/mypy

bench: $(STAMP) speedups ## replay throughput vs syslog-ng grouping-by, and memory per open session
	@# syslog-ng: the installed one, else Debian's package unpacked under bench/.data by bench/syslog-ng.sh
	@# (installing syslog-ng-core would remove rsyslog, which the tests need).
	$(BIN)/python bench/replay_bench.py --runs 3 --parser both --json-out bench/.data/results.jsonl
	$(BIN)/python bench/session_memory.py --with-syslog-ng --json-out bench/.data/results.jsonl

assets: $(STAMP) ## rebuild the mapping, docs/fields.md, the Kibana bundle, the Sigma conversions, the Splunk add-on
	$(BIN)/python -m enricher.assets.es_mapping
	$(BIN)/python -m enricher.assets.kibana
	$(BIN)/python -m enricher.assets.sigma
	$(BIN)/python -m enricher.assets.splunk

splunk-app: $(STAMP) ## package the Splunk add-on (up-to-date check first) into dist/TA-esa-enricher.tar.gz
	$(BIN)/python -m enricher.assets.splunk --check --package dist/TA-esa-enricher.tar.gz

services-up: ## start Kafka and Elasticsearch on 127.0.0.1 (no Docker); prints the ESA_* lines to export
	services/kafka/kafka.sh up
	services/elasticsearch/es.sh up

services-down: ## stop them
	-services/elasticsearch/es.sh down
	-services/kafka/kafka.sh down

lab: $(STAMP) ## the lab without Docker: Kafka, Elasticsearch, listen + run, the demo replayed over syslog
	services/lab.sh up

lab-down: ## stop the lab (and Kafka/Elasticsearch if `make lab` started them)
	services/lab.sh down
