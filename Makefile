# movierec: `make demo` runs the service's main job, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export KMP_BLOCKTIME ?= 0

# .venv/bin/movierec marks the runtime install, .venv/.dev the dev tools on top of it.
.PHONY: runtime install demo test test-fast check format graphiql bench-import bench-train-load bench-sasrec-venv clean

$(BIN)/movierec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/movierec
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

runtime: $(BIN)/movierec  ## virtual environment with the project only: what `make demo` needs

install: $(VENV)/.dev  ## the same, plus the tools of tests, checks and benchmarks

# make demo PORT=8080 DATA_DIR=~/data/ml-latest-small: another port; a dataset for the first import
PORT ?=
DATA_DIR ?=

demo: runtime  ## migrate, import, train and index what is missing, then serve on http://127.0.0.1:8000
	$(if $(DATA_DIR),MOVIEREC_DATA_DIR=$(DATA_DIR) )$(BIN)/movierec up$(if $(PORT), --port $(PORT))

# Both test targets run on every core (pytest-xdist); a Milvus server's tests, and the browser's,
# each keep to one worker (tests/conftest.py), so that one server and one browser start.
PYTEST := $(BIN)/pytest -n auto --dist loadgroup

test: install  ## the test suite on SQLite and MySQL (MOVIEREC_TEST_MYSQL_URL; skipped when unreachable unless CI=true)
	$(PYTEST)

# The edit loop's tier: SQLite and Milvus Lite only; no MySQL, no Milvus server, no browser, no slow
# training (pytest markers mysql, milvus_server, browser, slow in pyproject.toml).
test-fast: install  ## the tests that need no MySQL, Milvus server or browser, nor train for long
	$(PYTEST) -m "not (mysql or milvus_server or browser or slow)"

check: install  ## lint, type checks and the import contracts (ml <- api <- admin, layers inside api)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

graphiql:  ## rebuild GraphiQL's bundle (api/static/graphiql, committed) from frontend/graphiql with npm
	cd frontend/graphiql && npm ci --no-audit --no-fund && npm run build

bench-import: install  ## import speed into MySQL (MOVIEREC_BENCH_MYSQL_URL) from MOVIEREC_DATA_DIR
	$(BIN)/python bench/import_speed.py

bench-train-load: install  ## API req/s idle and while the dashboard retrains (MySQL, wrk)
	$(BIN)/python bench/train_load.py

# RecBole's SASRec (torch) for bench/quality.py --sasrec: a virtual environment of its own, never the product's.
SASREC_VENV ?= .venv-sasrec

$(SASREC_VENV)/.installed: bench/requirements-sasrec.txt
	$(PYTHON) -m venv $(SASREC_VENV)
	$(SASREC_VENV)/bin/pip install --quiet -r bench/requirements-sasrec.txt
	@touch $@

bench-sasrec-venv: $(SASREC_VENV)/.installed  ## torch and RecBole 1.2.1 in .venv-sasrec, for bench/quality.py --sasrec

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
