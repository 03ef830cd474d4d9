# Whistle: `make run` for the demo, `make test` for the checks. Everything installs itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser run up down status test lint pytest bench chaos topics deploy-tools deploy-check clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,stack]'
	@touch $(STAMP)

install: $(STAMP)  ## virtualenv with pinned dependencies

run: install  ## the demo: stack, sample morning, departments and residents, summary
	$(PY) -m tools run

up: install  ## broker + the five services, supervised, in the background; waits for /readyz
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

# The monthly report's test renders its page in Debian's Chromium (never a browser build of
# Playwright's own); installed only when missing, as root or through sudo.
browser:  ## Debian's chromium and CJK fonts, for the report's screenshot
	@test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }

pytest: install browser  ## unit and integration tests (starts its own broker and services)
	$(PY) -m pytest

deploy-tools:  ## promtool (Debian's prometheus package) when missing; kubectl comes with the venv
	@bash deploy/install-promtool.sh

deploy-check: install deploy-tools  ## render every overlay, validate every manifest, promtool, render drift
	$(PY) -m tools.deploy_check

# deploy-check first: it installs promtool, which the tests that corrupt deploy/ also run.
test: lint deploy-check pytest  ## what CI runs

bench: install  ## throughput and latency through the running pipeline; report under reports/ (ARGS=--preload-year)
	$(PY) -m tools bench $(ARGS)

chaos: install  ## fault injection: two replicas each, SIGKILLs, a PostgreSQL crash, a broker restart; report under reports/
	$(PY) -m tools chaos $(ARGS)

clean:  ## stop everything and remove local state (not the databases)
	-$(PY) -m tools down
	rm -rf .whistle reports
