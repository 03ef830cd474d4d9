# Whistle: `make run` for the demo, `make test` for the checks. Everything installs itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run up down status test lint pytest bench topics clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## virtualenv with pinned dependencies

run: install  ## the demo: stack, sample morning, departments and residents, summary
	$(PY) -m tools run

up: install  ## broker + four services in the background, waits for /readyz
	$(PY) -m tools up

down: install  ## stop what `make up` started
	$(PY) -m tools down

status: install  ## each part of the local stack
	$(PY) -m tools status

topics: install  ## create every topic (for an external Kafka)
	$(PY) -m tools topics

lint: install  ## ruff + mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared services tools tests

pytest: install  ## unit and integration tests (starts its own broker and services)
	$(PY) -m pytest

test: lint pytest  ## what CI runs

bench: install  ## throughput and latency through the running pipeline; report under reports/
	$(PY) -m tools bench

clean:  ## stop everything and remove local state (not the databases)
	-$(PY) -m tools down
	rm -rf .whistle reports
