# The project's commands. Everything runs from a virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run test lint schemas validate bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/gateway serve --host $(HOST) --port $(PORT)

test: install
	bash .ci/system-deps
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# The layering contracts of pyproject.toml: a wrong-way import or an import cycle fails.
lint: install
	$(VENV)/bin/lint-imports

validate: install
	$(VENV)/bin/gateway validate routes.yaml providers.yaml

schemas: install
	$(PY) -m gateway.ops.schemas schemas

# The benchmark (bench/, report in docs/benchmarks.md): about 8 minutes, needs root for
# its Debian tools (nginx, wrk, redis-server) on first use. py-spy adds the profile.
bench: install
	$(PY) -m pip install --quiet py-spy
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
