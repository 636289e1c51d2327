# credd — see README.md. `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit soak bench deps venv clean

$(VENV)/.installed: pyproject.toml
	@scripts/system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

deps:
	@scripts/system-deps

demo: $(VENV)/.installed
	$(BIN)/python -m credd_sandbox.demo

lint: $(VENV)/.installed
	$(BIN)/ruff check credd credd_sandbox tests bench
	$(BIN)/ruff format --check credd credd_sandbox

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# The suite mostly waits on real processes and real (short) rotations, so 4 workers on 2 cores.
# loadgroup: tests marked xdist_group("NAME") share one worker (and its module fixtures).
test: lint typecheck
	$(BIN)/python -m pytest -n 4 --dist loadgroup

unit: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not integration"

soak: $(VENV)/.installed
	CREDD_SOAK=1 $(BIN)/python -m pytest -m soak

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
