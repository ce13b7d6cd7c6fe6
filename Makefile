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

# gevent monkey-patching (import locust) must not leak into the asyncio tests, and pytest-xdist's
# workers deadlock under it: the Locust tests run in two pytest processes of their own (--shard, by
# file), beside the rest. Most of the suite waits on timers of real processes (drills, mock pairs),
# so the rest runs on more workers (3) than cores; a file stays on one worker (--dist loadfile: a
# module's shared fixtures run once, each part of the README chain in order). The Locust tests'
# output follows when all are done.
TEST_WORKERS ?= 3
LOCUST_TESTS := $(PY) -m pytest tests/loadgen -p no:asyncio -p no:aiohttp
test: $(STAMP)
	@rm -f .test-loadgen-*.log
	@$(LOCUST_TESTS) --shard 0/2 $(PYTEST_ARGS) > .test-loadgen-0.log 2>&1 & a=$$!; \
	$(LOCUST_TESTS) --shard 1/2 $(PYTEST_ARGS) > .test-loadgen-1.log 2>&1 & b=$$!; \
	$(PY) -m pytest tests --ignore=tests/loadgen -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rest=$$?; \
	wait $$a; la=$$?; wait $$b; lb=$$?; \
	for i in 0 1; do echo "== tests/loadgen, shard $$i/2 (Locust, own process) =="; cat .test-loadgen-$$i.log; done; \
	echo "make test: the rest exit $$rest, tests/loadgen shards exit $$la $$lb"; \
	test $$rest -eq 0 -a $$la -eq 0 -a $$lb -eq 0

demo: $(STAMP)
	$(VENV)/bin/jabberemu drill

# The whole chain of the demo (pair, swarm, failover, both waves, report, verdict) at a size CI can
# afford on a busy 2-core box (about a minute); exits non-zero when no report was written. Its run
# directory is its own scratch: emptied first (the drill refuses a directory that holds a run).
demo-smoke: $(STAMP)
	rm -rf reports/demo-smoke
	$(VENV)/bin/jabberemu drill --clients 200 --ramp 50 --lower 2 --upper 6 --hold 2 --margin 3 \
		--out reports/demo-smoke

clean:
	rm -rf $(VENV) build *.egg-info
