#!/usr/bin/env bash
# Style and type checks, as CI runs them: ruff check, ruff format --check, mypy revseg.
source "$(dirname "$0")/_common.sh"
ensure_venv "test,dev,docs"
status=0
.venv/bin/python -m ruff check revseg jobs scripts tests || status=1
.venv/bin/python -m ruff format --check revseg jobs scripts tests || status=1
.venv/bin/python -m mypy revseg || status=1
exit "$status"
