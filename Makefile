# The same commands CI runs (.ci/run), for local use inside the project's virtual environment.
.PHONY: install lint test check constraints

install:
	pip install -e ".[test]"

lint:
	bash .ci/lint

test:
	codebot setup && python -m pytest

check: lint test

# After a deliberate dependency upgrade that passes `make check`: pin it for CI.
constraints:
	python .ci/constraints.py > constraints.txt
