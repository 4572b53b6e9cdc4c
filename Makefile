# The two quick-start commands: `make demo` (the main job) and `make test`.
# Each makes its own virtual environment in .venv and installs what it needs: the demo
# (and bench) the package alone, the tests its [test] extras too (pytest, hypothesis, playwright);
# `make test PYTHON=python3.13 VENV=.venv313` tests under another Python in its own venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: demo test bench install clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/tinygraph demo --out $(OUT)

test: $(BIN)/.installed-test
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf .venv .venv3* $(VENV) $(OUT) build *.egg-info
