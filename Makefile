# Docflow: `make demo` runs it on SQLite with inline tasks; `make test` runs the test suite
# on PostgreSQL and Redis (started by .ci/run in CI, expected running locally).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/docflow
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/13

.PHONY: demo test screenshots lint format bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

demo: install
	env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=true $(BIN)/python manage.py migrate --noinput
	env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=true LOG_LEVEL=WARNING $(BIN)/python manage.py demo
	env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:8000

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) DEBUG=false \
		$(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests, saving a screenshot of each main page into docs/screenshots.
screenshots: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		DOCFLOW_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark, one JSON file with every figure (bench/results/latest.json; bench/README.md).
# BENCH_ARGS="--quick" for a smoke run, "--only admin search" for some.
bench: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
		$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
