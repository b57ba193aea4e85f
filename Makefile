# Quipu's daily loop. `make demo` and `make test` each build their own virtual
# environment (.venv) on first use; nothing else needs installing by hand.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lock lint typecheck layers unit bench bench-quick fmt clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" -c constraints.txt
	touch $(STAMP)

lock:  ## after a deliberate upgrade: install the newest allowed versions, run `make test`, commit constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -e ".[dev]"
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^quipu=='; } > constraints.new
	mv constraints.new constraints.txt

demo: $(STAMP)  ## the main job: a simulated month on the embedded SQLite default
	$(VENV)/bin/quipu demo

test: $(STAMP)  ## everything CI runs: lint, types, layers, docs, then the suite on SQLite and PostgreSQL
	scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

layers: $(STAMP)
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: $(STAMP)  ## the suite without starting PostgreSQL (its cases skip locally)
	$(VENV)/bin/pytest -q -n 2

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --quick

bench: $(STAMP)  ## full benchmarks (1M-event rebuild): tens of minutes
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) quipu-data .mypy_cache .ruff_cache .pytest_cache .hypothesis bench-results
