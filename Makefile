# Aegis Studio: `make run` to try it, `make test` to test it. `make` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The test suite runs on the real services; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/aegis
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# The demo's three CPU judge slots share one model, so one solo worker serves them all.
DEMO_JURY_QUEUES ?= jury.demo-smollm2-a,jury.demo-smollm2-b,jury.demo-smollm2-c

.DEFAULT_GOAL := help
.PHONY: help install run web worker beat jury-worker services browser test lint format bench bench-jury clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml scripts/install.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the app with its dev tools (idempotent)

run: install ## Migrate, load the demo, start web and workers on SQLite, print the URL and logins
	@VENV=$(VENV) PORT=$(PORT) DEMO_JURY_QUEUES=$(DEMO_JURY_QUEUES) scripts/run.sh

web: install ## Start only the web process: runserver in debug, else collectstatic and gunicorn
	@VENV=$(VENV) PORT=$(PORT) scripts/web.sh

worker: install ## Start only a Celery worker for imports, exports and reports, with beat (the reaper) inside
	mkdir -p var
	$(VENV)/bin/celery -A config worker -Q default --loglevel=INFO --concurrency=2 -B --schedule var/celerybeat-schedule

beat: install ## Start Celery beat alone (the reaper of lost jobs): one per deployment, for workers started without `make worker`
	mkdir -p var
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

jury-worker: install ## Start a jury worker (QUEUES=jury.<judge>,...; the demo's by default)
	$(VENV)/bin/celery -A config worker -Q $${QUEUES:-$(DEMO_JURY_QUEUES)} --pool=solo --concurrency=1 --loglevel=INFO

services: ## Start PostgreSQL and Redis here if they are not answering
	@scripts/services.sh

browser: ## Install Debian's Chromium for the browser tests if it is missing
	@scripts/browser.sh

test: install services browser ## Run the whole suite on PostgreSQL and Redis
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  DJANGO_DEBUG=1 $(VENV)/bin/pytest -n 2 --dist loadgroup $(ARGS)

lint: install ## ruff, mypy (strict on rules and services), import-linter contracts, djlint on the templates
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/djlint templates --lint

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install services ## Run the benchmarks in bench/ against PostgreSQL (about 15 minutes)
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/aegis_bench} $(PY) bench/import.py
	$(PY) bench/annotate.py
	$(PY) bench/agreement.py
	$(PY) bench/export.py

bench-jury: install services ## The jury's SmolLM2 benchmark, in-process and via Celery (30+ minutes on 2 cores)
	$(PY) bench/jury.py

clean: ## Remove the virtualenv and local data (SQLite files, uploads)
	rm -rf $(VENV) var
