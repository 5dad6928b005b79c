# The README's two commands are `make run` and `make test`; everything else is a helper.
.PHONY: run test lint typecheck bench setup setup-dev services clean

LIBRARY ?=
ARGS ?=

# LIBRARY quoted (a folder may hold spaces or parentheses), and only when given: an empty
# argument would be the current folder
run: setup
	.venv/bin/twinlens up $(if $(LIBRARY),"$(LIBRARY)") $(ARGS)

test: setup-dev services
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy core
	.venv/bin/pytest -q -p no:cacheprovider

setup:
	@bash .ci/setup.sh run

setup-dev:
	@bash .ci/setup.sh dev

services:
	@bash .ci/services.sh

lint: setup-dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup-dev
	.venv/bin/mypy core

# Every benchmark that runs on its own. bench_memory.py and bench_regroup.py build a large
# catalog first and compare two checkouts (a worktree of the code before): their commands
# are in bench/RESULTS.md.
STANDALONE_BENCH = $(filter-out bench/bench_memory.py bench/bench_regroup.py,$(wildcard bench/bench_*.py))

bench: setup-dev services
	@for b in $(STANDALONE_BENCH); do echo "== $$b"; .venv/bin/python $$b || exit 1; done

clean:
	rm -rf .venv build *.egg-info .pytest_cache .mypy_cache .ruff_cache
