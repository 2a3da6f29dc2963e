VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WS_PORT ?= $(shell echo $$(($(PORT) + 1)))

POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: venv run test check lock bench examples clean

# Coverage floor for `make test`: branch coverage of metacore/ measured 89.8% on SQLite, 91.1% on PostgreSQL.
COVERAGE_FLOOR ?= 89

## The pinned dependency set (requirements.lock), then metacore itself without resolving again.
$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

## Serve the sandbox project on the embedded SQLite database, with the example addons: HTTP on
## PORT (gunicorn, threaded workers), the WebSocket hub on WS_PORT (Daphne), and a background worker
## (webhook deliveries); Ctrl-C stops all three. Production layout: docs/embedding.md.
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py metacore_install_examples
	export METACORE_HUB_WS_URL=ws://$(HOST):$(WS_PORT)/api/ws METACORE_HUB_ALLOWED_ORIGINS=http://$(HOST):$(PORT); \
	$(PY) manage.py metacore_worker & worker=$$!; \
	$(VENV)/bin/daphne -b $(HOST) -p $(WS_PORT) sandbox_project.asgi:application & daphne=$$!; \
	trap 'kill $$worker $$daphne 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/gunicorn -c sandbox_project/gunicorn.conf.py -b $(HOST):$(PORT) sandbox_project.wsgi

## The whole suite on the database in DATABASE_URL (SQLite when unset), with branch coverage.
test: venv
	$(VENV)/bin/pytest --cov --cov-report= --cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS)
	$(PY) tools/coverage_by_package.py

## Lint, format, types and known vulnerabilities in the locked dependencies (CI runs it first).
check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy metacore
	$(VENV)/bin/pip-audit --requirement requirements.lock --disable-pip --no-deps --progress-spinner off

## Re-pin requirements.lock from pyproject.toml (after changing a dependency).
lock: venv
	$(VENV)/bin/pip-compile --quiet --extra test --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements.lock pyproject.toml

## Every benchmark, on SQLite and on PostgreSQL (BENCH="store upgrade" picks modules).
bench: venv
	$(VENV)/bin/pip install -q -e ".[bench]"
	env -u DATABASE_URL $(PY) -m bench $(BENCH)
	DATABASE_URL=$(POSTGRES_URL) $(PY) -m bench $(BENCH)

## Rebuild the example addons' wasm backends from their sources (examples/build.py).
examples: venv
	$(PY) examples/build.py

clean:
	rm -rf $(VENV) var
