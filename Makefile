# One Makefile in front of the tools. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
BENCH_PROFILE ?= quick
SEED ?= 1
SOAK_ARGS ?=

.PHONY: install demo test test-fast lint schemas bench broker wheel clean ops-tools helm-check soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the failover demo on the embedded broker: 3 agents, 12 tasks, one agent SIGKILLed midway.
demo: install
	$(BIN)/agent-failover dev

## The whole test suite (unit + broker + end-to-end + the `ops` checks of the Helm chart, alerts,
## dashboard and Dockerfile), against the embedded broker by default.
test: install ops-tools
	$(BIN)/pytest $(PYTEST_ARGS)

## Unit tests only (no broker).
test-fast: install
	$(BIN)/pytest -m "not broker" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## A seeded chaos run judged by its own ledger (docs/reliability.md): a few minutes. Exit code 0
## only without violations. `make soak SEED=7`; `SOAK_ARGS=--quick` for the one `make test` runs.
soak: install
	$(BIN)/python -m agent_failover.dev.soak --seed $(SEED) $(SOAK_ARGS)

## Regenerate schemas/*.schema.json from the record classes in agent_failover/models/.
schemas: install
	$(BIN)/python -m agent_failover.models.schemagen

## Benchmarks (failover vs consumer-group baseline, handoff, SDK cost, monitor capacity): writes
## docs/benchmarks/. Quick profile by default; `make bench BENCH_PROFILE=full` for the long run.
bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	BENCH_PROFILE=$(BENCH_PROFILE) $(BIN)/python -m bench

## Install helm v3 and v4, promtool, Prometheus, Alertmanager, kubernetes-validate, hadolint and
## the dashboard SDK once, into a cache outside the repository (tools/install-ops-tools.sh).
ops-tools:
	PYTHON=$(PYTHON) tools/install-ops-tools.sh --print

## Check the deployment artefacts with the real tools: helm lint/template (v3 and v4), the values
## schema, kubernetes-validate, the CRD schemas, promtool (rules, alert unit tests, dashboard
## queries), hadolint, and the generated dashboard and values table being current.
helm-check: install ops-tools
	$(BIN)/pytest -m ops tests/ops $(PYTEST_ARGS)

## Run the embedded broker alone (prints its bootstrap address).
broker: install
	$(BIN)/agent-failover broker

## Build the wheel into dist/ (`pip install dist/agent_failover-*.whl` is the SDK alone).
wheel: install
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info .agent-failover-*
