# Inference Console — the two commands that matter are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`: one per core (at most 8: each worker has its own test
# database and Redis database); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= auto

.PHONY: setup storage-initializer model-runtimes run test lint layers format faults bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lint,sandbox]"
	@$(PY) -m pip install --quiet -e ".[ldap]" >/dev/null 2>&1 \
	  || echo "note: LDAP sign-in not installed (python-ldap needs libldap2-dev and libsasl2-dev: install them, then 'make setup' again)"
	@touch $(STAMP)

## setup: create .venv and install the console with its test and lint extras
setup: $(STAMP)

## storage-initializer: KServe's real storage initializer (PyPI kserve-storage) for the sandbox, in
## its own virtualenv (var/kserve-storage, or $$SANDBOX_STORAGE_INITIALIZER_VENV); made once, then
## reused. Not fatal: without it the sandbox simulates downloads (the tests that need it skip, in CI fail).
storage-initializer: setup
	-$(PY) -m endpoints.sandbox.storage_initializer ensure

## model-runtimes: the sandbox's model servers (PyPI kserve + scikit-learn + xgboost-cpu + lightgbm)
## in their own virtualenv (var/model-runtimes, or $$SANDBOX_MODEL_RUNTIMES_VENV); made once (~1-2 min),
## then reused. Not fatal: without it the sandbox's models are not served (the serving tests skip, in CI fail).
model-runtimes: setup
	-$(PY) -m endpoints.sandbox.serving.runtimes ensure

## run: migrate, seed the demo and start web + worker + beat; Ctrl-C stops everything
run: setup
	$(PY) -m console.portal.devstack

## test: the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, else SQLite), in parallel,
## then the fault suite (tests/faults: its own PostgreSQL and redis-server); with PYTEST_ARGS, only the
## main suite with those arguments (CI's legs), and `make faults` runs the fault suite alone
test: setup storage-initializer model-runtimes
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxprocesses 8 $(PYTEST_ARGS)
	$(if $(strip $(PYTEST_ARGS)),,$(PY) -m pytest tests/faults -p no:cacheprovider)

## lint: static checks, the import contract included
lint: setup layers
	$(VENV)/bin/ruff check .

## layers: the import contract and the migration graph follow the layers (docs/architecture.md)
layers: setup
	$(PY) -m pytest -q tests/test_layers.py

## format: apply the code formatter
format: setup
	$(VENV)/bin/ruff format .

## faults: the fault suite (docs/robustness.md): its own PostgreSQL and redis-server, real worker and beat
faults: setup
	$(PY) -m pytest tests/faults -p no:cacheprovider $(PYTEST_ARGS)

## bench: the benchmarks in tests/benchmarks (not part of `make test`)
bench: setup
	$(PY) -m pytest tests/benchmarks -s -p no:cacheprovider $(PYTEST_ARGS)

## clean: remove local state (database, broker queue, demo logins) but keep .venv and the
## virtualenvs of the storage initializer and the model servers
clean:
	find var -mindepth 1 -maxdepth 1 ! -name kserve-storage ! -name .kserve-storage.lock \
	  ! -name model-runtimes ! -name .model-runtimes.lock -exec rm -rf {} + 2>/dev/null || true
	rm -rf test-output
