# The two commands of the README: `make run` and `make test`. On a bare Debian machine they install
# what they need first: the Debian packages (scripts/deps.sh, the one list) and the venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test deps deps-venv lint clean

# Written last: an interrupted install leaves no stamp, so the next make repairs the venv.
# sfu.native.build compiles the native fan-out (cffi, libsrtp2) and never fails: without a compiler or
# libsrtp2-dev the SFU keeps its Python fan-out. A changed fanout.c or fanout.h rebuilds (the stamp depends on both).
$(STAMP): pyproject.toml sfu/native/fanout.c sfu/native/fanout.h | deps-venv
	$(BIN)/python -c 'import pip' 2>/dev/null || (rm -rf $(VENV) && $(PYTHON) -m venv $(VENV))
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m sfu.native.build
	touch $(STAMP)

deps:
	PYTHON=$(PYTHON) scripts/deps.sh

deps-venv:
	PYTHON=$(PYTHON) scripts/deps.sh --venv

run: $(STAMP)
	$(BIN)/switchboard up

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

test: deps lint
	$(BIN)/python -m sfu.native.build --if-stale
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache .hypothesis .import_linter_cache
