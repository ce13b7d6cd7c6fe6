# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-core test-loadgen demo demo-smoke venv clean

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

# The whole chain of the demo (pair, swarm, failover, both waves, report, verdict) at a size CI can
# afford on a busy 2-core box (about a minute); exits non-zero when no report was written.
demo-smoke: $(STAMP)
	$(VENV)/bin/jabberemu drill --clients 200 --ramp 50 --lower 2 --upper 6 --hold 2 --margin 3 \
		--out reports/demo-smoke

clean:
	rm -rf $(VENV) build *.egg-info
