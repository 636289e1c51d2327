# credd — see README.md. `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit soak bench deps venv clean labextension

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

# The JupyterLab front end (docs/jupyter.md): TypeScript in jupyter/labextension, built with the
# machine's Node.js and npm packages (npm ci: the versions package-lock.json pins) by the PyPI
# jupyterlab's builder, into credd/jupyter/labextension, which is committed: installing credd and
# CI need no Node. The stamp records which sources the committed build came from
# (tests/test_jupyterlab_assets.py checks it).
LABEXT := jupyter/labextension
LABOUT := credd/jupyter/labextension

labextension: $(VENV)/.installed
	cd $(LABEXT) && npm ci --no-audit --no-fund
	rm -rf $(LABOUT)/static $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo
	cd $(LABEXT) && npx tsc && PATH="$(CURDIR)/$(BIN):$$PATH" jupyter-builder build .
	cp $(LABEXT)/install.json $(LABOUT)/install.json
	$(BIN)/python scripts/labext_stamp.py > $(LABOUT)/source.sha256

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
