#!/usr/bin/env bash
# The README's test command (`make test`) runs this: system packages, then the whole default test suite
# (unit tests, every notebook in smoke mode, the browser test of the widgets). Long reproductions are
# marked `slow` and skipped here (`make test-slow`).
set -u
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/data/numba-cache}"
mkdir -p "$NUMBA_CACHE_DIR" test-artifacts
.venv/bin/python -m pytest -q "$@"
rc=$?
# pytest exits 5 when it collected no test at all: that is a failure of the suite, say so plainly.
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
