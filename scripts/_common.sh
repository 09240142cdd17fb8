# Shared set-up for revseg's scripts: loopback Spark, a Java check, the project venv.
# Source it from a script in scripts/; it cds to the repository root.

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# Spark binds and talks on loopback only (local mode and the test cluster).
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$REPO_ROOT/.venv/bin/python}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$REPO_ROOT/.venv/bin/python}"

require_java() {
  local java_bin="java"
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then java_bin="$JAVA_HOME/bin/java"; fi
  if ! command -v "$java_bin" >/dev/null 2>&1; then
    cat >&2 <<'MSG'
revseg needs Java 17 or 21 for Spark, and none was found.
  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless
  macOS:          brew install openjdk@17
  other:          install a JDK 17 or 21 and set JAVA_HOME to it
MSG
    exit 3
  fi
  local version
  version="$("$java_bin" -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)"
  if [[ "$version" != "17" && "$version" != "21" ]]; then
    echo "revseg: Java $version found; Spark 4.1 needs Java 17 or 21 (set JAVA_HOME)." >&2
    exit 3
  fi
}

# Create or reuse .venv and install revseg with the given extras (e.g. "test"), only when
# setup.py changed since the last install.
ensure_venv() {
  local extras="${1:-}"
  local python="${PYTHON:-python3}"
  if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv .venv
  fi
  local spec="."
  [[ -n "$extras" ]] && spec=".[$extras]"
  local stamp=".venv/.revseg-install-$(echo "$extras" | tr ',' '-')"
  local digest
  digest="$(cat setup.py pyproject.toml | sha256sum | cut -c1-16)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "installing revseg ($spec) into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e "$spec" >&2
    echo "$digest" > "$stamp"
  fi
}
