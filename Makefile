# Shortcuts for tasks.py, which needs nothing but Python 3.11+.
PYTHON ?= python3

.PHONY: run test demo bench clean

run:
	$(PYTHON) tasks.py run

test:
	$(PYTHON) tasks.py test

demo:
	$(PYTHON) tasks.py demo

bench:
	$(PYTHON) tasks.py bench

clean:
	rm -rf .venv .pytest_cache .ruff_cache
