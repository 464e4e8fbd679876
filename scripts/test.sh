#!/usr/bin/env bash
# The README's test command (`make test`) runs this: system packages, then the whole default test suite
# (unit tests, every notebook in smoke mode, the browser test of the widgets). Long reproductions are
# marked `slow` and skipped here (`make test-slow`).
#
# Without arguments it then reruns the numerically sensitive tests (marker `numerics`: pinned losses,
# distributed equality, resume) under two other CPU kernel settings, so that a tolerance that holds for one CPU
# only fails here before it fails on a user's machine (issue 18; the spreads behind the tolerances are in
# docs/kernel-matrix.md, measured with scripts/kernel_matrix.py). With arguments it runs pytest with them, alone.
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
[ $# -gt 0 ] && exit $rc

# oneDNN (convolutions) limited to AVX2 with ATen's AVX2 kernels, then oneDNN SSE4.1 with ATen's scalar
# (default) kernels: two kernel families besides this machine's best. Only the files that hold numerics tests
# are collected (collecting the whole suite would cost more than some of the runs).
files=$(grep -rl --include="test_*.py" "mark.numerics" tests)
settings=("ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2" "ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default")
for setting in "${settings[@]}"; do
    echo "numerics tests under $setting"
    start=$SECONDS
    # shellcheck disable=SC2086  # $setting and $files are lists of words
    env $setting .venv/bin/python -m pytest -q -m "numerics and not slow" $files
    r=$?
    echo "numerics tests under $setting: exit $r in $((SECONDS - start)) s"
    if [ $r -eq 5 ]; then echo "no numerics tests were collected" >&2; r=1; fi
    if [ $r -ne 0 ] && [ $rc -eq 0 ]; then rc=$r; fi
done
exit $rc
