# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if needed, then runs the bot on the paper default (config/paper.toml, SQLite)
#   make test   creates .venv if needed, then runs ruff, mypy and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint typecheck pytest venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/marginbot run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot strategies tests
	$(BIN)/ruff format --check bot strategies tests

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected no test: for this project that is a failure, said plainly
pytest: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
