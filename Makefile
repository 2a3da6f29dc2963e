VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WS_PORT ?= $(shell echo $$(($(PORT) + 1)))
# HTTP workers: one process per core, each running Django's views on WEB_THREADS threads.
WEB_CONCURRENCY ?= $(shell nproc)
WEB_THREADS ?= 2

POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: venv run web test check lock bench examples clean

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
## PORT (`make web`), the WebSocket hub on WS_PORT (Daphne), and a background worker (webhook
## deliveries); Ctrl-C stops all three. granian runs in its own session and is stopped by
## the trap's SIGTERM alone: given Ctrl-C's SIGINT as well, its workers mostly hung.
## Production layout: docs/embedding.md.
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py metacore_install_examples
	export METACORE_HUB_WS_URL=ws://$(HOST):$(WS_PORT)/api/ws METACORE_HUB_ALLOWED_ORIGINS=http://$(HOST):$(PORT); \
	$(PY) manage.py metacore_worker & worker=$$!; \
	$(VENV)/bin/daphne -b $(HOST) -p $(WS_PORT) sandbox_project.asgi:application & daphne=$$!; \
	setsid $(WEB) & web=$$!; \
	trap 'kill $$worker $$daphne $$web 2>/dev/null; wait' EXIT INT TERM; \
	wait $$web

## HTTP alone, as `make run` serves it (the tests and bench/memory.py start this): granian's
## WSGI workers, each with its own listening socket (SO_REUSEPORT), so the kernel spreads
## keep-alive connections over the cores (docs/performance.md). A worker is replaced when its
## RSS passes 512 MiB, which bounds memory itself; a lifetime would replace healthy workers on
## a timer. A warm worker holds ~130 MiB and stays flat (bench/memory.py). A worker that dies
## is started again. A stopping worker finishes its requests; one still running 10 s after
## SIGTERM is killed: granian 2.8's WSGI workers sometimes never exit (1 of 8 stops here).
WEB = $(VENV)/bin/granian --interface wsgi --host $(HOST) --port $(PORT) \
	--workers $(WEB_CONCURRENCY) --blocking-threads $(WEB_THREADS) --no-access-log \
	--workers-max-rss 512 --respawn-failed-workers --workers-kill-timeout 10 \
	sandbox_project.wsgi:application
web:
	$(WEB)

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
