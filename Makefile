# Two commands on a fresh machine (Python 3.11, no Docker, no AWS account):
#   make demo   - installs everything, starts aws_twin, runs the churn pipeline on it, stops the twin;
#                 prints warnings, errors and the summary (with the HTML report's link), the rest goes
#                 to .airflow-demo/demo.log. V=1: every log line. KEEP=1: the twin (and so the report
#                 link) stays up after the run; it prints the `kill` that stops it.
#   make test   - installs everything, runs ruff and the tests against the twin, leaving out the long
#                 ones (marked slow: every e2e DAG run, browser and deployment test); SLOW=1 runs the
#                 whole suite, as CI does (.ci/run)
# And the Airflow UI on the twin: make up (127.0.0.1 only, login admin + a generated password printed
# once, AIRFLOW_HOME .airflow-up) / make down.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
#: the marker of a finished install; its name changes when the recipe installs differently (an
#: older venv is then brought up to date by the next `make`)
STAMP := $(VENV)/.installed-bytecode
#: the venv is byte-compiled (uv's --compile-bytecode; uv leaves it out by default): every fresh
#: interpreter (an Airflow task, the twin, its Glue jobs and training workers) would otherwise compile
#: what it imports, each time where PYTHONDONTWRITEBYTECODE is set (about a third of a churn DAG run).
#: uv compiles only what it installs: compileall does the rest of a venv installed before this rule.
SITE_PACKAGES = $(VENV)/lib/python3.11/site-packages
# make demo uses .airflow-demo/ and make up .airflow-up/ unless AIRFLOW_HOME is set
export TWIN_PORT ?= 4566
PYTEST_ARGS ?=
#: SLOW=1: the whole suite (CI); without it the tests marked slow (tests/conftest.py) are left out
SLOW ?=
PYTEST_SELECT := $(if $(filter-out 0,$(SLOW)),,-m "not slow")
#: the Amazon MWAA image the project targets; requirements/mwaa/README.md says where its files come from
MWAA_AIRFLOW := 3.3.1
MWAA_CONSTRAINTS := requirements/mwaa/airflow-$(MWAA_AIRFLOW)/airflow_constraints.txt
#: MWAA pins the dev set cannot take: numpy and scipy (those releases need Python 3.12; dev runs 3.11,
#: which the twin's model packages need), tabulate and marshmallow (the test-only peer libraries trp and
#: textract-prettyprinter need tabulate<0.10 and marshmallow<4; the provider does not import marshmallow,
#: and its tabulate grids are checked to print the same on 0.9 and MWAA's 0.10.0)
DEV_UNPINNED := numpy|scipy|tabulate|marshmallow

.PHONY: install demo test lint format twin up down mwaa-package lock bench clean

install: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -e .
	test -d $(SITE_PACKAGES)/airflow/__pycache__ || $(BIN)/python -m compileall -qq -j 0 $(SITE_PACKAGES) || true
	./scripts/install_system_deps.sh
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) lint
	$(BIN)/python scripts/tested_versions.py
	$(BIN)/python -m pytest $(PYTEST_SELECT) $(PYTEST_ARGS)

V ?=
KEEP ?=
demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(if $(filter-out 0,$(V)),-v) $(if $(filter-out 0,$(KEEP)),--keep-twin)

twin: $(STAMP)
	$(BIN)/python -m aws_twin serve --host 127.0.0.1 --port $(TWIN_PORT)

up: $(STAMP)
	./scripts/up.sh

down:
	./scripts/down.sh

mwaa-package: $(STAMP)
	$(BIN)/python scripts/mwaa_package.py

bench: $(STAMP)
	$(BIN)/python bench/twin_bench.py
	$(BIN)/python bench/pipeline_bench.py

lock:
	grep -vE '^($(DEV_UNPINNED))==' $(MWAA_CONSTRAINTS) > $(VENV)/mwaa-dev-constraints.txt
	$(BIN)/uv pip compile requirements/dev.in -c $(VENV)/mwaa-dev-constraints.txt --python-version 3.11 \
		--no-annotate -o requirements/dev.lock
	sed -i "1i # Full pinned set for local runs, tests and CI, under Amazon MWAA $(MWAA_AIRFLOW)'s constraints\n# ($(MWAA_CONSTRAINTS), less $(DEV_UNPINNED)). Regenerate: make lock" requirements/dev.lock

clean:
	rm -rf $(VENV) .airflow .airflow-demo .airflow-up .twin dist build *.egg-info
