"""Run two revseg versions on the same lake and configs, and compare every table they write.

A check for changes that must not change results (a restructuring, a speed-up):

    .venv/bin/python scripts/same_outputs.py --base 0c87057 [--rows 20000] [--keep DIR]

The base commit is checked out as a git worktree; each side runs every scenario in one
Python process of its own (the base with its checkout first on the import path), on one
generated lake with refunds, test orders and several currencies. Tables are read back
with delta-rs and compared row for row (run ids and work keys included); the run's date and
times, and the `files` count of the run log (0 in revseg up to 0c87057, a defect), are left
out. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLES = ("customer_segments", "tier_boundaries", "quarantined_transactions", "runs")
# Columns that differ between any two runs, whatever the code.
VOLATILE = {
    "quarantined_transactions": {"run_date"},
    "runs": {"started_at", "finished_at"},
}

# Weeks, fiscal and rolling grains, a business time zone, tiers by market, refunds booked to
# their sale, every optional metric, excluded rows quarantined.
EVERY_OPTION = [
    "periods.grains=[week, month, fiscal_quarter, fiscal_year, rolling_3m, rolling_12m]",
    "periods.fiscal_year_start_month=4",
    "periods.timezone=America/New_York",
    "tiers.by=[market]",
    "revenue.refund_attribution=original",
    "metrics.include=[quantity, margin, top_channel, top_category]",
    "quality.quarantine_excluded=true",
]
# name -> (config overrides, from, to, incremental); run in this order on each side.
SCENARIOS: dict[str, tuple[list[str], str | None, str | None, bool]] = {
    "full": ([], None, None, False),
    "range": ([], "2024-03", "2024-04", False),
    "grains": (
        EVERY_OPTION,
        None,
        None,
        False,
    ),
    "grains_range": (
        EVERY_OPTION,
        "2024-02",
        "2024-05",
        False,
    ),
    "incremental": ([], None, None, True),
}

DRIVER = """
import json, sys
from datetime import date
from revseg.config import load_config
from revseg.periods import Month
from revseg.pipeline import run_segmentation
from revseg.session import build_local_session

spec = json.loads(sys.argv[1])
spark = build_local_session({"spark.master": "local[2]", "spark.ui.enabled": "false",
                             "spark.sql.shuffle.partitions": "4"})
import revseg
print("revseg from", revseg.__file__, file=sys.stderr)
for name, (overrides, first, last, incremental) in spec["scenarios"].items():
    out = spec["out"] + "/" + name.removesuffix("_range")
    config = load_config(None, [f"source.path={spec['lake']}", f"output.path={out}",
                                f"revenue.fx_rates.path={spec['fx']}", *overrides])
    month = lambda text: Month.parse(text) if text else None
    if incremental:  # a full run, then an incremental one with nothing changed
        run_segmentation(spark, config, as_of=date(2025, 1, 31))
    run_segmentation(spark, config, month(first), month(last), as_of=date(2025, 1, 31),
                     incremental=incremental)
spark.stop()
"""


def run_side(python_path: Path, lake: Path, fx: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(python_path), "SPARK_LOCAL_IP": "127.0.0.1"}
    spec = {"lake": str(lake), "fx": str(fx), "out": str(out), "scenarios": SCENARIOS}
    subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(spec)], env=env, check=True, cwd=python_path
    )


def as_map(value: object) -> object:
    """A Delta map column (delta-rs gives its entries as a list of pairs) as a dict: the
    order of a map's entries means nothing."""
    if isinstance(value, list) and value and all(isinstance(e, tuple) for e in value):
        return dict(sorted(value))
    return value


def table_rows(path: Path, table: str) -> list[str]:
    from deltalake import DeltaTable

    if not (path / table / "_delta_log").exists():
        return []
    rows = DeltaTable(str(path / table)).to_pyarrow_table().to_pylist()
    out = []
    for row in rows:
        kept = {k: as_map(v) for k, v in row.items() if k not in VOLATILE.get(table, set())}
        if table == "runs" and kept.get("source_read"):
            read = json.loads(kept["source_read"])
            read.pop("files", None)
            kept["source_read"] = read
        out.append(json.dumps(kept, sort_keys=True, default=str))
    return sorted(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="revseg-same-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    if not base.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
            check=True,
        )
    try:
        lake, fx = work / "lake", work / "fx_rates"
        if not lake.exists():
            subprocess.run(
                [
                    *(sys.executable, "-m", "revseg", "generate", "--output", str(lake)),
                    *("--rows", str(args.rows), "--start", "2023-06-01", "--end", "2024-12-31"),
                    *("--fx-output", str(fx)),
                ],
                check=True,
                cwd=REPO,
                env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
            )
        for side, path in (("base", base), ("head", REPO)):
            if not (work / f"out-{side}").exists():
                # Both sides write to the same path (it is part of the config's fingerprint,
                # so of run ids and work keys), moved aside after each side's runs.
                shutil.rmtree(work / "out", ignore_errors=True)
                run_side(path, lake, fx, work / "out")
                (work / "out").rename(work / f"out-{side}")
        differences = 0
        for scenario in {name.removesuffix("_range") for name in SCENARIOS}:
            for table in TABLES:
                old = table_rows(work / "out-base" / scenario, table)
                new = table_rows(work / "out-head" / scenario, table)
                same = old == new
                differences += not same
                verdict = "same" if same else "DIFFERENT"
                print(f"{scenario:<12} {table:<26} {len(old):>7} rows  {verdict}")
                if not same:
                    for line in sorted(set(old) ^ set(new))[:5]:
                        print(f"    {'base' if line in old else 'head'}: {line[:300]}")
        print("identical" if not differences else f"{differences} table(s) differ")
        return 1 if differences else 0
    finally:
        if args.keep is None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)])
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # not through interpreter shutdown, where delta-rs' threads may abort
