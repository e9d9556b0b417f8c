# Two commands for a fresh clone:
#   make demo    set up and run the demo on SQLite
#   make test    set up and run lint, the docs build and the test suite on SQLite, PostgreSQL and
#                MariaDB (two lanes in parallel; see below)
PYTHON ?= python3.12
VENV ?= .venv
BIN := $(VENV)/bin
# The venv of the Python 3.13 pass (test-py313).
PY313 ?= python3.13
PY313_VENV ?= .venv-py313
# The venv of the Django 5.2 LTS pass (test-django52).
DJ52_VENV ?= .venv-dj52
# Databases the suite runs against; `make test DBS=sqlite` when no servers are at hand.
DBS ?= sqlite postgres mariadb
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
MARIADB_URL ?= mysql://root@127.0.0.1:3306/test
PYTEST_ARGS ?=

.PHONY: demo test docs docs-serve lint test-sqlite test-postgres test-mariadb test-django52 install clean bench bench-admin
.PHONY: test-pgbouncer test-loaded wheel-check test-py313 soak

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python manage.py bgtask_demo

# mypy --strict on bgtask/ and the typing test tests/type_checks/ (settings in pyproject.toml [tool.mypy]:
# all of bgtask/, only the generated migrations left out).
# cfn-lint runs on template.yaml and on what the SAM transform makes of it (infra/translate_template.py).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint -c I -- template.yaml
	$(BIN)/python infra/translate_template.py build/template.translated.json
	$(BIN)/cfn-lint -c I -- build/template.translated.json

# `make test` runs two lanes side by side (TEST_JOBS=1: one after the other), each target's output
# printed whole when it ends: lint, docs, then PostgreSQL and the PgBouncer pass (they share a test
# database); and SQLite, MariaDB, then Django 5.2. The passes never share a test database (SQLite's
# file, PostgreSQL's and MariaDB's test_bgtask_<checkout> databases, the Django 5.2 pass's own
# SQLite directory), and the tests wait for events with ceilings meant for a loaded machine
# (make test-loaded), so a second suite beside one is load they are built for. The venvs are
# installed first, one at a time: two editable installs at once would both write *.egg-info.
TEST_JOBS ?= 2
LANE_POSTGRES := lint docs $(if $(filter postgres,$(DBS)),test-postgres test-pgbouncer) test-py313
LANE_OTHERS := $(addprefix test-,$(filter-out postgres,$(DBS))) test-django52
test: $(BIN)/.docs-installed $(DJ52_VENV)/bin/.installed $(PY313_VENV)/bin/.installed
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-lane-postgres test-lane-others

.PHONY: test-lane-postgres test-lane-others
test-lane-postgres:
	for target in $(LANE_POSTGRES); do $(MAKE) --no-print-directory $$target || exit 1; done
test-lane-others:
	for target in $(LANE_OTHERS); do $(MAKE) --no-print-directory $$target || exit 1; done

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

# The oldest supported Django (5.2 LTS): a migrations check, and the suite on SQLite but for the
# tests whose subject Django's version does not touch: the fault loops (marker slow) and the tests
# of process life and death (DJ52_IGNORE: SIGKILL and SIGTERM of workers, heartbeats and leases,
# outcome groups of killed workers, poison tasks, killed and timed-out Lambda invocations, the
# Lambda runtime client, parallel workers) prove what the queue's own code does when a process
# dies or races, on each database in the passes above. Everything that goes through a Django API
# still runs here: models, migrations and the store's ORM paths (core, store, compat), the admin
# and its permissions, the Tasks backend, signals, the management commands and their argument
# parsing, the web handler's request handling, time zones, input validation, outages and
# connection errors, secrets in error reports. The browser test is left out too: the admin pages
# it drives are rendered and checked on Django 5.2 by tests/features/test_admin.py.
DJ52_IGNORE ?= tests/reliability/test_heartbeat.py tests/reliability/test_sigkill.py \
	tests/reliability/test_sigterm.py tests/reliability/test_outcome_batching.py \
	tests/reliability/test_poison.py tests/handlers/test_worker_killed.py \
	tests/handlers/test_worker_deadline.py tests/handlers/test_awslambdaric.py \
	tests/core/test_concurrency.py tests/browser tests/faults
$(DJ52_VENV)/bin/.installed: pyproject.toml
	$(PYTHON) -m venv $(DJ52_VENV)
	$(DJ52_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(DJ52_VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]' 'Django>=5.2,<5.3'
	touch $@

test-django52: $(DJ52_VENV)/bin/.installed
	@echo "=== test suite on SQLite with Django 5.2 LTS (without fault loops and process-death tests) ==="
	DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=. $(DJ52_VENV)/bin/python -m django makemigrations --check --dry-run
	mkdir -p $(CURDIR)/build/django52
	BGTASK_TEST_SQLITE_DIR=$(CURDIR)/build/django52 $(DJ52_VENV)/bin/python -m pytest -m "not slow" \
		$(addprefix --ignore=,$(DJ52_IGNORE)) $(PYTEST_ARGS)

# Issue 22, packaging: build the wheel and sdist (python -m build, into build/dist), check what they
# carry (migrations, templates, py.typed, licence metadata), install the wheel into a fresh venv in a
# temp dir outside the checkout and run the demo there with only that venv's bgtask on the path
# (infra/wheel_check.py). About 1 min, most of it pip and the demo's 10 s run.
wheel-check: $(BIN)/.installed
	$(BIN)/python infra/wheel_check.py --python $(PYTHON)

# Issue 22: the suite on SQLite under Python 3.13 (pyenv's 3.13, its own venv), but for the browser
# test (the Playwright driver is the same on both), the slow fault loops, as in test-django52, and
# the Lambda artifact test (the artifact is built for Lambda's python3.12 runtime, by a 3.12).
$(PY313_VENV)/bin/.installed: pyproject.toml
	PYENV_VERSION=3.13 $(PY313) -m venv $(PY313_VENV)
	$(PY313_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(PY313_VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test-py313: $(PY313_VENV)/bin/.installed
	@echo "=== test suite on SQLite with Python 3.13 ==="
	$(PY313_VENV)/bin/python --version
	mkdir -p $(CURDIR)/build/py313
	BGTASK_TEST_SQLITE_DIR=$(CURDIR)/build/py313 $(PY313_VENV)/bin/python -m pytest -m "not slow" \
		--ignore=tests/browser --ignore=tests/handlers/test_artifact.py $(PYTEST_ARGS)
# Issue 20 B: the chaos soak (tests/soak) on a PostgreSQL and a MariaDB server of its own: a
# producer at 20 tasks/s, three workers (one long-lived, two `--duration 20` rerun in a loop) and a
# random fault every 10-20 s (SIGKILL or SIGSTOP of a worker, server restart -m fast|immediate, a
# 15 s stop), then a drain and the report. `make test` runs a 60 s version per database
# (tests/soak/test_soak.py). Options: --db postgres|mariadb|both --duration S --seed N
# --concurrency N --report FILE; e.g. `make soak SOAK_ARGS="--db mariadb --duration 120"`.
SOAK_ARGS ?= --duration 600
soak: $(BIN)/.installed
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

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
	rm -rf $(VENV) $(DJ52_VENV) $(PY313_VENV) *.egg-info .pytest_cache demo.sqlite3* site
	
# Serverless: `sam build` runs these (template.yaml: BuildMethod makefile) with ARTIFACTS_DIR set;
# `make lambda-measure` builds here and prints the artifact sizes and the worker's cold start.
.PHONY: build-WorkerFunction build-WebFunction build-ManageFunction build-DeployHookFunction lambda-measure
LAMBDA_PYTHON ?= $(PYTHON)
build-WorkerFunction:
	$(LAMBDA_PYTHON) infra/build.py --function worker --out "$(ARTIFACTS_DIR)"
build-WebFunction:
	$(LAMBDA_PYTHON) infra/build.py --function web --out "$(ARTIFACTS_DIR)"
build-ManageFunction:
	$(LAMBDA_PYTHON) infra/build.py --function manage --out "$(ARTIFACTS_DIR)"
# The PreTraffic hook runs migrate with the management function's code.
build-DeployHookFunction:
	$(LAMBDA_PYTHON) infra/build.py --function manage --out "$(ARTIFACTS_DIR)"
lambda-measure: $(BIN)/.installed
	$(BIN)/python infra/measure_lambda.py

# The Lambda lock file: pyproject.toml's `lambda` extra resolved with uv for the functions' platform
# (arm64 Linux, Python 3.12) from any machine, pinned with hashes; infra/build.py installs it with
# --require-hashes. `make lock-check` (CI) resolves again, preferring the pins, and fails when the
# result differs, i.e. when pyproject.toml changed and the lock did not follow.
LOCK := infra/requirements-lambda.lock
LOCK_ARGS := pip compile pyproject.toml --extra lambda --python-version 3.12 \
	--python-platform aarch64-manylinux2014 --generate-hashes --custom-compile-command "make lock" --quiet
.PHONY: lock lock-check
lock: $(BIN)/.installed
	$(BIN)/uv $(LOCK_ARGS) -o $(LOCK)
lock-check: $(BIN)/.installed
	mkdir -p build && cp $(LOCK) build/lock-check.txt
	$(BIN)/uv $(LOCK_ARGS) -o build/lock-check.txt
	diff -u $(LOCK) build/lock-check.txt || { echo "$(LOCK) does not match pyproject.toml: run make lock"; exit 1; }
