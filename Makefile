# The README's commands. `make setup` is idempotent: it reinstalls only when pyproject.toml, constraints.txt or this
# file change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test test-fast lint format sample mart screenshots clean docs docs-serve

setup: $(STAMP)

# Installed packages are compiled to bytecode once, here: where PYTHONDONTWRITEBYTECODE is set (CI images, Docker)
# Python never caches it, and every process importing Prefect would compile its sources again (about 3 s of CPU).
$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep '^uv==' constraints.txt)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --constraint constraints.txt \
		--editable '.[dev,bench,docs]'
	@touch $(STAMP)

demo: setup
	$(BIN)/python -m flows.etl

# The suite on two pytest-xdist workers, a module to a worker, longest modules first (tests/conftest.py): on 2 cores
# the servers' and subprocesses' waits of one worker overlap the other's work. TEST_WORKERS=0 runs it in one process.
# The project's own modules are compiled to bytecode once (into the ignored __pycache__ folders), not by each of
# the suite's many processes, PYTHONDONTWRITEBYTECODE or not.
TEST_WORKERS ?= 2
test: setup
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The pure-function tests: no server, no flow run, no subprocess; seconds. `make test` (what CI runs) is the whole suite.
FAST_TESTS := tests/test_rules.py tests/test_schema.py tests/test_transform.py tests/test_parity.py \
	tests/test_properties.py tests/test_generator.py tests/test_zones.py tests/test_container.py tests/test_peak_memory.py
test-fast: setup
	$(BIN)/python -m pytest -m "not flow and not realdata" $(FAST_TESTS)

# The course site (mkdocs.yml): built offline into site/ with --strict, so a broken link or reference fails.
# Never add --quiet: it hides the warnings that --strict counts, and a broken link would pass.
export NO_MKDOCS_2_WARNING := 1
docs: setup
	$(BIN)/mkdocs build --strict

docs-serve: setup
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

sample: setup
	$(BIN)/python -m data.generate --sample

mart: setup
	$(BIN)/python -m flows.mart --chart

# The Prefect UI screenshots of the course site (docs/images/ui/): a throwaway server, a deploy, and the sample ETL
# and every lesson run from their deployments by a process worker (a few minutes).
screenshots: setup
	$(BIN)/python -m tools.ui_screenshots

clean:
	rm -rf output data/cache .pytest_cache site

# Local servers, each on 127.0.0.1 on a free port, recorded under .run/ and stopped by `make stop`.
# After starting one, `source .run/<name>.env` points your shell at it.
.PHONY: server pool limits deploy worker s3 dask stop bench bench-quick
POOL := taxi-process
WITH_SERVER := test -f .run/prefect.env || { echo "no Prefect server: run make server first" >&2; exit 1; }; . .run/prefect.env &&

server: setup
	@test -f .run/prefect.env && echo "already running: $$(cat .run/prefect.env)" || $(BIN)/python -m servers start prefect

pool: setup
	@$(WITH_SERVER) ($(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 && echo "work pool $(POOL) exists" \
		|| $(BIN)/prefect work-pool create $(POOL) --type process)

# The project's Prefect concurrency limits (TLC download rate); `make deploy` creates them too. Idempotent.
limits: setup
	@$(WITH_SERVER) $(BIN)/python -m blocks.limits

deploy: setup
	@$(WITH_SERVER) $(BIN)/python -m servers deploy

worker: setup
	@$(WITH_SERVER) $(BIN)/python -m servers start worker

s3: setup
	$(BIN)/python -m servers start s3

# A scheduler and two workers (resource MONTH=1 each, one CPU thread each, readied for months as they start:
# servers.DASK_WORKER_ARGS); .run/dask.env sets TAXI_DASK_ADDRESS, which
# `python -m flows.etl` uses by default: `. .run/prefect.env && . .run/dask.env && python -m flows.etl`.
dask: setup
	@test -f .run/prefect.env || $(BIN)/python -m servers start prefect
	. .run/prefect.env && $(BIN)/python -m servers start dask

# A Pushgateway and Prometheus (Debian packages: `make monitor-deps`) on free loopback ports, with the alert rules of
# monitoring/; scrapes the Prefect server of .run/prefect.env when `make server` ran first. `source .run/monitor.env`
# sets TAXI_PUSHGATEWAY_URL (flow runs push there) and PROMETHEUS_URL.
.PHONY: monitor monitor-deps system-deps
monitor: setup
	@test -f .run/monitor.env && echo "already running: $$(cat .run/monitor.env)" || $(BIN)/python -m servers start monitor

# Debian's prometheus, prometheus-pushgateway and chromium (for make monitor and make screenshots), when missing.
system-deps:
	tools/install-debian-packages.sh

monitor-deps: system-deps

stop:
	@test -x $(BIN)/python && $(BIN)/python -m servers stop || true

bench: setup
	$(BIN)/python -m benchmarks.run

bench-quick: setup
	$(BIN)/python -m benchmarks.run --quick

# A year of generated months and the ETL over them: `make year` (YEAR, SERVICE, ROWS override the defaults).
# Months already in data/generated/ with ROWS rows are kept, so a second run only reruns the ETL. The synthetic
# year gets its own output root, never the default lake ./output. RUNNER is the ETL's --runner (threads or dask);
# with `make dask` running, `source .run/dask.env` first and the months go to that cluster.
.PHONY: year
YEAR ?= 2024
SERVICE ?= yellow
ROWS ?= 3000000
RUNNER ?= threads
YEAR_OUTPUT ?= output/year
YEAR_MONTHS = $(foreach mm,01 02 03 04 05 06 07 08 09 10 11 12,--month $(YEAR)-$(mm))

year: setup
	$(BIN)/python -m data.generate --service $(SERVICE) --year $(YEAR) --rows $(ROWS) --out data/generated
	$(BIN)/python -m flows.etl --service $(SERVICE) --source 'data/generated/{service}_tripdata_{month}.parquet' \
		$(YEAR_MONTHS) --output $(YEAR_OUTPUT) --runner $(RUNNER)
