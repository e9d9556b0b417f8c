# Two commands for a fresh clone:
#   make demo    set up and run the demo on SQLite
#   make test    set up and run lint, the docs build and the whole test suite on SQLite, PostgreSQL
#                and MariaDB
PYTHON ?= python3.12
VENV ?= .venv
BIN := $(VENV)/bin
# Databases the suite runs against; `make test DBS=sqlite` when no servers are at hand.
DBS ?= sqlite postgres mariadb
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
MARIADB_URL ?= mysql://root@127.0.0.1:3306/test
PYTEST_ARGS ?=

.PHONY: demo test docs docs-serve lint test-sqlite test-postgres test-mariadb test-django52 install clean bench bench-admin
.PHONY: test-pgbouncer test-loaded

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python manage.py bgtask_demo

# cfn-lint runs on template.yaml and on what the SAM transform makes of it (infra/translate_template.py).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python infra/translate_template.py build/template.translated.json
	$(BIN)/cfn-lint build/template.translated.json

test: lint docs $(addprefix test-,$(DBS)) $(if $(filter postgres,$(DBS)),test-pgbouncer) test-django52

test-sqlite: $(BIN)/.installed
	@echo "=== test suite on SQLite ==="
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(BIN)/.installed
	@echo "=== test suite on PostgreSQL ==="
	DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-mariadb: $(BIN)/.installed
	@echo "=== test suite on MariaDB ==="
	DATABASE_URL=$(MARIADB_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

# Issue 11: the concurrency and exactly-once tests again through a PgBouncer in transaction pooling
# mode (pool smaller than the workers, DISABLE_SERVER_SIDE_CURSORS), which the tests start on a free
# port in front of the PostgreSQL of POSTGRES_URL (tests/conftest.py, fixture pgbouncer).
PGBOUNCER_TESTS ?= tests/core/test_concurrency.py tests/reliability/test_exactly_once.py \
	tests/faults/test_session_state.py
test-pgbouncer: $(BIN)/.installed
	@echo "=== concurrency tests through PgBouncer (transaction pooling) ==="
	BGTASK_TEST_PGBOUNCER=1 DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest $(PYTEST_ARGS) \
		$(PGBOUNCER_TESTS)

# Issue 11: the suite under CPU load (not part of `make test`): stress-ng keeps every core busy
# while the suite runs on LOADED_DBS; a test that passes quiet and fails here waits on time, not
# on an event. `apt-get install stress-ng` first.
LOADED_DBS ?= sqlite postgres
test-loaded: $(BIN)/.installed
	@command -v stress-ng >/dev/null || { echo "stress-ng is required (apt-get install stress-ng)"; exit 1; }
	stress-ng --cpu $$(nproc) --timeout 3600s --quiet & load=$$!; \
	trap 'kill $$load' EXIT; \
	$(MAKE) $(addprefix test-,$(LOADED_DBS))

# The oldest supported Django (5.2 LTS): the suite on SQLite and a migrations check.
DJ52_VENV ?= .venv-dj52
$(DJ52_VENV)/bin/.installed: pyproject.toml
	$(PYTHON) -m venv $(DJ52_VENV)
	$(DJ52_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(DJ52_VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]' 'Django>=5.2,<5.3'
	touch $@

test-django52: $(DJ52_VENV)/bin/.installed
	@echo "=== test suite on SQLite with Django 5.2 LTS ==="
	DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=. $(DJ52_VENV)/bin/python -m django makemigrations --check --dry-run
	$(DJ52_VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The benchmark (not part of the test run): `make bench BENCH_ARGS=--quick` for a smoke run.
BENCH_ARGS ?=
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The documentation site (docs/, mkdocs.yml): built strictly (a broken link, anchor or docstring
# reference fails it) into the gitignored site/. `make docs-serve` previews it with live reload.
$(BIN)/.docs-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check -e '.[docs]'
	touch $@

docs: $(BIN)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(BIN)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

# The admin and dashboard at 1,000,000 finished + 100,000 queued rows (issue 13): median page
# times on SQLite and PostgreSQL, and the claim/outcome cost of migration 0006's indexes.
bench-admin: $(BIN)/.installed
	$(BIN)/python benchmarks/admin_scale.py --db sqlite --index-cost
	$(BIN)/python benchmarks/admin_scale.py --db postgres --index-cost

clean:
	rm -rf $(VENV) $(DJ52_VENV) *.egg-info .pytest_cache demo.sqlite3* site
	
# Serverless: `sam build` runs these (template.yaml: BuildMethod makefile) with ARTIFACTS_DIR set;
# `make lambda-measure` builds here and prints the artifact sizes and the worker's cold start.
.PHONY: build-WorkerFunction build-WebFunction build-ManageFunction lambda-measure
LAMBDA_PYTHON ?= $(PYTHON)
build-WorkerFunction:
	$(LAMBDA_PYTHON) infra/build.py --function worker --out "$(ARTIFACTS_DIR)"
build-WebFunction:
	$(LAMBDA_PYTHON) infra/build.py --function web --out "$(ARTIFACTS_DIR)"
build-ManageFunction:
	$(LAMBDA_PYTHON) infra/build.py --function manage --out "$(ARTIFACTS_DIR)"
lambda-measure: $(BIN)/.installed
	$(BIN)/python infra/measure_lambda.py
