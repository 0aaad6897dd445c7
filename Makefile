# fpsolver: one-command set-up on a machine with Python 3.10+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= results

.PHONY: demo test lint docs validate benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/python -m fpsolver demo -o $(OUT)

# lint first: a style or lint error fails `make test` before the suite runs
test: $(VENV)/.test lint
	$(BIN)/python -m pytest -n auto --dist loadfile tests fpsolver

docs: $(VENV)/.test
	$(BIN)/python -m sphinx -W -b html docs docs/_build/html

validate: $(VENV)/.test
	$(BIN)/python validation/run_all.py --out validation

benchmarks: $(VENV)/.test
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

# lint uses the installed tools: it installs the test extras only when ruff is
# missing, never re-installs
$(BIN)/ruff: | $(BIN)/python
	$(MAKE) $(VENV)/.test

lint: | $(BIN)/ruff
	$(BIN)/ruff check fpsolver tests benchmarks examples validation
	$(BIN)/ruff format --check fpsolver tests

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache docs/_build
