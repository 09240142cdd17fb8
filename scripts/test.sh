#!/usr/bin/env bash
# Run the test suite: creates or reuses .venv, installs revseg[test,dev], runs pytest.
#   scripts/test.sh                 # everything, the standalone-cluster test included
#   scripts/test.sh -m "not cluster" -x tests/test_tiers.py   # any pytest arguments
source "$(dirname "$0")/_common.sh"
require_java
ensure_venv "test,dev"
exec .venv/bin/python -m pytest "$@"
