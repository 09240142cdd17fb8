#!/usr/bin/env bash
# Build what a cluster needs:
#   dist/revseg-VERSION-py3-none-any.whl  pip install on a driver, or a Databricks library
#   dist/revseg.pex                       spark-submit's one artifact: revseg and its Python
#                                         dependencies (not pyspark: the cluster's own) in one
#                                         file that runs as the driver's and executors' Python
#   dist/revseg.zip                       the revseg package alone, for --py-files where the
#                                         dependencies are installed on every node
# PEX_SHEBANG sets the Python the .pex runs on (default: the first python3 on the PATH).
source "$(dirname "$0")/_common.sh"
ensure_venv "local,dist"
rm -rf dist build
mkdir -p dist
.venv/bin/python -m pip wheel --quiet --no-deps -w dist . >&2
wheel="$(ls dist/revseg-*.whl)"
# --inherit-path=fallback: Spark puts its own pyspark.zip and py4j on PYTHONPATH; keep them.
.venv/bin/pex "$wheel" -o dist/revseg.pex --inherit-path=fallback \
  --python-shebang "${PEX_SHEBANG:-/usr/bin/env python3}" >&2
.venv/bin/python - <<'PY'
import pathlib, zipfile
with zipfile.ZipFile("dist/revseg.zip", "w", zipfile.ZIP_DEFLATED) as archive:
    for path in sorted(pathlib.Path("revseg").rglob("*")):
        if path.suffix in {".py", ".typed"}:
            archive.write(path)
PY
ls dist
