# Two commands set everything up on a fresh machine:
#   make run   - create .venv, install, run `bench run --models all` (then `bench report` on it)
#   make test  - create .venv, install, run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test,ray,timm]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/bench run --models all
	$(BIN)/bench report latest

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
