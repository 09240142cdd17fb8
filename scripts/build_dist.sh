#!/usr/bin/env bash
# Build what a cluster needs: a wheel (pip install on the driver / Databricks library) and
# a zip of the revseg package for spark-submit --py-files.
#   scripts/build_dist.sh   ->  dist/revseg-VERSION-py3-none-any.whl, dist/revseg.zip
source "$(dirname "$0")/_common.sh"
ensure_venv "local"
rm -rf dist build
mkdir -p dist
.venv/bin/python -m pip wheel --quiet --no-deps -w dist . >&2
.venv/bin/python - <<'PY'
import pathlib, zipfile
with zipfile.ZipFile("dist/revseg.zip", "w", zipfile.ZIP_DEFLATED) as archive:
    for path in sorted(pathlib.Path("revseg").rglob("*")):
        if path.suffix in {".py", ".typed"}:
            archive.write(path)
PY
ls dist
