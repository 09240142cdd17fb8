#!/usr/bin/env bash
# Run the test suite: creates or reuses .venv, installs revseg[test,dev], runs pytest.
#   scripts/test.sh                 # everything, the standalone-cluster test included
#   scripts/test.sh -m "not cluster" -x tests/test_tiers.py   # any pytest arguments
# Two pytest workers (pytest-xdist), each with its own Spark session: one session leaves
# about a quarter of two cores idle between its many small jobs. A worker that runs out of
# tests takes over the other's queue (worksteal): the tests take from 0.1 s to a minute.
# REVSEG_TEST_WORKERS=0 runs in one process (or pass your own -n).
source "$(dirname "$0")/_common.sh"
require_java
ensure_venv "test,dev,docs"
workers=(-n "${REVSEG_TEST_WORKERS:-2}" --dist worksteal)
for arg in "$@"; do
  case "$arg" in -n | -n* | --numprocesses*) workers=() ;; esac
done
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
