# Lifeboat: the two commands a newcomer types are `make demo` and `make test`.
# Both run `make setup` first; it is idempotent and fast once done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test lint checkov bench clean outcome-columns outcome-fixtures

setup: $(VENV)/.installed node_modules/.installed .venv-tools/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Lifeboat needs Python 3.11 (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# checkov in its own venv: its pins (packaging<24) clash with pytest 9.
.venv-tools/.installed: requirements-tools.txt
	test -x .venv-tools/bin/python || $(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/lifeboat demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Bicep's security scan: no failed check, no parsing error (suppressions carry reasons).
# checkov exits 0 on a file it cannot parse, so its report is read for parsing errors too.
checkov: setup
	@out=$$(.venv-tools/bin/checkov -d infra --framework bicep --compact --quiet --skip-download); \
	status=$$?; echo "$$out"; \
	test $$status -eq 0 && ! echo "$$out" | grep -q "Parsing errors"

test: lint checkov
	$(BIN)/pytest $(PYTEST_ARGS)

# The LifeboatOutcomes_CL columns of infra/app/monitor.bicep, generated from shared/model.py.
outcome-columns: setup
	$(BIN)/python -m cli.outcome_columns

# The alert tests' recorded outcomes: two demo nights through the local host and the stand-in.
outcome-fixtures: setup
	$(BIN)/lifeboat demo --nights 2 --json --outcomes tests/data/outcomes/demo-nights.jsonl >/dev/null

# Every benchmark; the rotation nights are full size (5,000 VMs, one night per Compute family,
# about 45 minutes). To develop: `make bench BENCH=rotation BENCH_VMS=1500` (about 12 minutes).
BENCH ?=
bench: setup
	$(if $(BENCH_VMS),BENCH_VMS=$(BENCH_VMS) )$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .venv-tools node_modules .lifeboat .pytest_cache .mypy_cache .ruff_cache
