# The two commands of the README: `make demo` runs the service, `make test` runs the tests.
.PHONY: demo test test-reliability lint bundle

demo:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devkit.demo

test:
	bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider -rfER --reruns 1 --reruns-delay 5

# Only the fault, bad-input, security and load suite (part of `make test`; ~7 min on two cores).
test-reliability:
	bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider tests/reliability

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy contract bot worker devkit
