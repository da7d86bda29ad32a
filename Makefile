# The two commands of the README: `make demo` runs the service, `make test` runs the tests.
.PHONY: demo test test-reliability lint bundle

demo:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devkit.demo

# Three test processes on two cores (pytest-xdist, whole files per process, the reliability files as
# one unit: each process has its own redis-servers and stacks; many scenarios wait on timers, so a
# third process keeps the cores busy; each computes on one torch thread; longest units first, in the
# order tests/conftest.py sorts them), no reruns (a flake fails loudly), the 20 slowest tests and the
# wall time printed.
test:
	bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider -rfER -n 3 --dist loadfile --no-loadscope-reorder --durations=20

# Only the fault, bad-input, security and load suite (part of `make test`).
test-reliability:
	bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider tests/reliability

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy contract bot worker devkit
