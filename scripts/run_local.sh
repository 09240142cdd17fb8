#!/usr/bin/env bash
# Run revseg in local mode on the bundled sample lake (generated on first use), then draw
# its report (data/report/report.html; the path is printed last).
#   scripts/run_local.sh [revseg run options, e.g. --from 2024-03 --to 2024-03]
source "$(dirname "$0")/_common.sh"
require_java
ensure_venv "local,report"

SAMPLE_ROWS="${SAMPLE_ROWS:-200000}"
# The lake and its FX rates table are generated together (and again if either is missing).
if [[ ! -d data/transactions || ! -d data/fx_rates ]]; then
  echo "generating a sample lake of $SAMPLE_ROWS sales in data/transactions" \
    "(FX rates in data/fx_rates) ..." >&2
  .venv/bin/revseg generate --output data/transactions --rows "$SAMPLE_ROWS" --overwrite
fi
# conf/local.yaml names no FX table (a lake of one's own has its own): the sample's is given here.
.venv/bin/revseg run --config conf/local.yaml --set revenue.fx_rates.path=data/fx_rates "$@"
.venv/bin/revseg report --config conf/local.yaml --set revenue.fx_rates.path=data/fx_rates \
  --out data/report
