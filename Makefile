# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-core test-loadgen demo venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# gevent monkey-patching (import locust) must not leak into the asyncio tests:
# the Locust tests run in a pytest process of their own.
test: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/loadgen $(PYTEST_ARGS)
	$(PY) -m pytest tests/loadgen -p no:asyncio -p no:aiohttp $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/jabberemu drill

clean:
	rm -rf $(VENV) build *.egg-info
