#!/usr/bin/env bash
# Run revseg in local mode on the bundled sample lake (generated on first use).
#   scripts/run_local.sh [revseg run options, e.g. --from 2024-03 --to 2024-03]
source "$(dirname "$0")/_common.sh"
require_java
ensure_venv ""

SAMPLE_ROWS="${SAMPLE_ROWS:-200000}"
if [[ ! -d data/transactions ]]; then
  echo "generating a sample lake of $SAMPLE_ROWS transactions in data/transactions ..." >&2
  .venv/bin/revseg generate --output data/transactions --rows "$SAMPLE_ROWS"
fi
exec .venv/bin/revseg run --config conf/local.yaml "$@"
