VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test test-sqlite test-postgres bench examples clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Serve the sandbox project on the embedded SQLite database, with the example addons.
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py metacore_install_examples
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) sandbox_project.asgi:application

## The whole suite on the database in DATABASE_URL (SQLite when unset).
test: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-sqlite: venv
	env -u DATABASE_URL $(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: venv
	DATABASE_URL=$${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} $(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv
	$(PY) -m bench

## Rebuild the example addons' wasm backends from their sources (examples/build.py).
examples: venv
	$(PY) examples/build.py

clean:
	rm -rf $(VENV) var
