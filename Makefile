VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: venv run test bench examples clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Serve the sandbox project on the embedded SQLite database, with the example addons, and a
## background worker (webhook deliveries) next to the server; Ctrl-C stops both.
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py metacore_install_examples
	$(PY) manage.py metacore_worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) sandbox_project.asgi:application

## The whole suite on the database in DATABASE_URL (SQLite when unset).
test: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## Every benchmark, on SQLite and on PostgreSQL (BENCH="store upgrade" picks modules).
bench: venv
	env -u DATABASE_URL $(PY) -m bench $(BENCH)
	DATABASE_URL=$(POSTGRES_URL) $(PY) -m bench $(BENCH)

## Rebuild the example addons' wasm backends from their sources (examples/build.py).
examples: venv
	$(PY) examples/build.py

clean:
	rm -rf $(VENV) var
