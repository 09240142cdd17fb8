"""Benchmark revseg against an equivalent DuckDB query on the same sample lake.

`--clv --customers N` runs the CLV benchmark instead (scripts/bench_clv.py); `--variants`
(with `--baseline DIR`, a checkout of an earlier revseg) times the job once per tier method
and summary setting, to show what each part adds.

The DuckDB run is a yardstick: it does the same work in-process on one machine, so the
ratio shows how much time revseg spends on Spark and Delta overhead. Both outputs are
cross-checked so a fast but wrong result cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
START, END = "2023-01-01", "2024-12-31"

SEGMENTS_SQL = """
WITH src AS (
    SELECT customer_id, transaction_id, CAST(transaction_ts AS TIMESTAMPTZ) AS ts, amount
    FROM read_parquet('{lake_glob}', hive_partitioning = true)
    WHERE currency = 'USD'
      AND customer_id IS NOT NULL AND trim(customer_id) <> ''
      AND transaction_id IS NOT NULL
      AND amount IS NOT NULL
      AND transaction_ts IS NOT NULL
),
tx AS (
    SELECT DISTINCT ON (customer_id, transaction_id)
        customer_id, ts, ts AT TIME ZONE 'UTC' AS ts_utc, CAST(amount * 100 AS BIGINT) AS cents
    FROM src
),
monthly AS (
    SELECT customer_id,
           CAST(date_trunc('month', ts_utc) AS DATE) AS month_start,
           CAST(sum(cents) AS BIGINT) AS revenue_cents,
           count(*) AS orders,
           min(ts) AS first_ts,
           max(ts) AS last_ts,
           count(DISTINCT CAST(ts_utc AS DATE)) AS active_days
    FROM tx
    GROUP BY ALL
),
periods AS (
    SELECT customer_id, 'month' AS period_grain, strftime(month_start, '%Y-%m') AS period,
           revenue_cents, orders, first_ts, last_ts, active_days
    FROM monthly
    UNION ALL BY NAME
    SELECT customer_id, 'quarter' AS period_grain,
           year(month_start) || '-Q' || quarter(month_start) AS period,
           CAST(sum(revenue_cents) AS BIGINT) AS revenue_cents,
           CAST(sum(orders) AS BIGINT) AS orders,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts,
           CAST(sum(active_days) AS BIGINT) AS active_days
    FROM monthly
    GROUP BY ALL
    UNION ALL BY NAME
    SELECT customer_id, 'year' AS period_grain, CAST(year(month_start) AS VARCHAR) AS period,
           CAST(sum(revenue_cents) AS BIGINT) AS revenue_cents,
           CAST(sum(orders) AS BIGINT) AS orders,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts,
           CAST(sum(active_days) AS BIGINT) AS active_days
    FROM monthly
    GROUP BY ALL
),
cuts AS (
    SELECT period_grain, period,
           quantile_disc(revenue_cents, [0.99, 0.90, 0.50, 0.0]) AS q
    FROM periods
    WHERE revenue_cents > 0
    GROUP BY ALL
)
SELECT p.customer_id, p.period, p.period_grain,
       CASE WHEN p.revenue_cents <= 0 THEN 'no_revenue'
            WHEN p.revenue_cents >= c.q[1] THEN 'platinum'
            WHEN p.revenue_cents >= c.q[2] THEN 'gold'
            WHEN p.revenue_cents >= c.q[3] THEN 'silver'
            ELSE 'bronze' END AS segment,
       CAST(CAST(p.revenue_cents AS DECIMAL(38, 0)) * 0.01 AS DECIMAL(18, 2)) AS revenue,
       p.orders,
       CAST(CAST(sign(p.revenue_cents) * ((2 * abs(CAST(p.revenue_cents AS HUGEINT)) + p.orders)
            // (2 * p.orders)) AS DECIMAL(38, 0)) * 0.01 AS DECIMAL(18, 2)) AS avg_order_value,
       p.first_ts AS first_transaction_ts,
       p.last_ts AS last_transaction_ts,
       p.active_days
FROM periods AS p
LEFT JOIN cuts AS c USING (period_grain, period)
"""


def sql_str(path: Path | str) -> str:
    """Quote a path as a SQL string literal; COPY targets cannot be bound parameters."""
    return "'" + str(path).replace("'", "''") + "'"


def spark_env() -> dict[str, str]:
    """Pin Spark to loopback so the benchmark does not depend on host networking."""
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}


def run_checked(cmd: list[str], what: str, cwd: Path = ROOT) -> None:
    """Run a subprocess (from the repo root, or `cwd`: `python -m revseg` then imports that
    checkout's revseg); on failure show its stderr tail and exit."""
    proc = subprocess.run(
        cmd, check=False, cwd=cwd, env=spark_env(), stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-40:])
        print(f"{what} failed (exit {proc.returncode}); stderr tail:\n{tail}", file=sys.stderr)
        sys.exit(proc.returncode or 1)


def ensure_lake(lake: Path, rows: int, seed: int) -> None:
    """Generate the sample lake once; it is reused across runs to keep timings comparable."""
    if (lake / "_SUCCESS").exists() or any(lake.glob("transaction_date=*")):
        return
    print(f"generating {rows} rows into {lake}")
    lake.parent.mkdir(parents=True, exist_ok=True)
    customers = max(1000, rows // 20)
    cmd = [sys.executable, "-m", "revseg", "generate", "--plain", "--rows", str(rows)]
    cmd += ["--seed", str(seed)]
    cmd += ["--start", START, "--end", END, "--customers", str(customers), "--output", str(lake)]
    run_checked(cmd, "revseg generate")


def run_revseg(
    lake: Path, out: Path, *args: str, fresh: bool = True, checkout: Path = ROOT
) -> float:
    """Time a revseg run as a user sees it: JVM start and Delta commits included
    (`checkout`: the revseg source tree to run, this one by default)."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    config = ROOT / "conf" / "bench.yaml"
    cmd = [sys.executable, "-m", "revseg", "run", "--config", str(config), *args]
    cmd += ["--set", f"source.path={lake}", "--set", f"output.path={out}"]
    start = time.perf_counter()
    run_checked(cmd, "revseg run", checkout)
    return time.perf_counter() - start


# What each part of the tiers and summaries costs: the job with one setting changed.
VARIANTS = {
    "default": [],
    "no summary tables": ["insights.segment_summary=false", "insights.concentration=false"],
    "no segment summary": ["insights.segment_summary=false"],
    "no concentration": ["insights.concentration=false"],
    # the opt-in tables
    "segment summary": ["insights.segment_summary=true"],
    "tier migrations": ["insights.tier_migrations=true"],
    "current segment": ["insights.customer_current_segment=true"],
    "rfm": ["tiers.method=rfm"],
    "pareto": ["tiers.method=pareto"],
    "thresholds": [
        "tiers.method=thresholds",
        "tiers.thresholds=[{name: vip, min: 1000}, {name: rest}]",
    ],
    "metric avg_order_value": ["tiers.metric=avg_order_value"],
    "stability": ["tiers.stability={hysteresis: 0.1, confirm_periods: 2}"],
}


def run_variants(
    lake: Path, out: Path, baseline: Path | None, only: list[str] | None = None
) -> dict[str, float]:
    """Each variant once (or those in `only`), one after the other on the same lake; with
    `baseline` (a checkout of an earlier revseg), that one first: the job without any of
    it."""
    seconds = {}
    if baseline is not None:
        seconds["baseline"] = run_revseg(lake, out, checkout=baseline)
    for name, settings in VARIANTS.items():
        if only and name not in only:
            continue
        args = [a for setting in settings for a in ("--set", setting)]
        seconds[name] = run_revseg(lake, out, *args)
    return seconds


def run_incremental(lake: Path, out: Path, late_day: str) -> dict[str, float]:
    """A full run without one day's partition, then `--incremental` once the day has
    arrived, then `--incremental` again with nothing changed."""
    partition = lake / f"transaction_date={late_day}"
    if not partition.is_dir():
        sys.exit(f"--late-day {late_day}: no partition {partition}")
    aside = lake.parent / f"{lake.name}.late" / partition.name
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(partition), str(aside))
    try:
        full = run_revseg(lake, out)
    finally:
        shutil.move(str(aside), str(partition))
    incremental = run_revseg(lake, out, "--incremental", fresh=False)
    unchanged = run_revseg(lake, out, "--incremental", fresh=False)
    return {"full": full, "incremental": incremental, "unchanged": unchanged}


def run_duckdb(lake: Path, out: Path, threads: int) -> float:
    """Compute the same segments with DuckDB and return wall-clock seconds incl. connecting."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    spill = out.with_name(out.name + ".tmp")
    query = SEGMENTS_SQL.format(lake_glob=str(lake / "*" / "*.parquet").replace("'", "''"))
    start = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {int(threads)}")
        con.execute(f"SET temp_directory = {sql_str(spill)}")
        con.execute(
            f"COPY ({query}) TO {sql_str(out)} (FORMAT parquet, PARTITION_BY (segment, period))"
        )
    finally:
        con.close()
    elapsed = time.perf_counter() - start
    shutil.rmtree(spill, ignore_errors=True)
    return elapsed


def summarise(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[dict[Any, Any], ...]:
    """Return per-period (rows, revenue) and per-(period, segment) customer counts."""
    totals = con.execute(
        f"SELECT period_grain, period, count(*), sum(revenue) FROM {relation} GROUP BY ALL"
    ).fetchall()
    segments = con.execute(
        f"SELECT period_grain, period, segment, count(*) FROM {relation} GROUP BY ALL"
    ).fetchall()
    return (
        {(g, p): (n, Decimal(str(rev))) for g, p, n, rev in totals},
        {(g, p, s): n for g, p, s, n in segments},
    )


def cross_check(revseg_table: Path, duckdb_out: Path) -> list[str]:
    """Compare both outputs: exact rows and revenue per period, tiers within a tolerance.

    Tier counts can differ slightly because Spark uses approximate percentiles.
    """
    from deltalake import DeltaTable

    cols = ["period_grain", "period", "segment", "revenue"]
    spark_tbl = DeltaTable(str(revseg_table)).to_pyarrow_table(columns=cols)
    duck_glob = sql_str(duckdb_out / "*" / "*" / "*.parquet")
    con = duckdb.connect()
    try:
        con.register("spark_tbl", spark_tbl)
        con.execute(
            f"CREATE VIEW duck_tbl AS SELECT {', '.join(cols)} FROM read_parquet({duck_glob}, "
            "hive_partitioning = true, hive_types_autocast = false)"
        )
        s_totals, s_segments = summarise(con, "spark_tbl")
        d_totals, d_segments = summarise(con, "duck_tbl")
    finally:
        con.close()
    problems: list[str] = []
    for key in sorted(s_totals.keys() | d_totals.keys()):
        (s_n, s_rev), (d_n, d_rev) = s_totals.get(key, (0, 0)), d_totals.get(key, (0, 0))
        if s_n != d_n:
            problems.append(f"rows {key[0]} {key[1]}: revseg={s_n} duckdb={d_n}")
        if s_rev != d_rev:
            problems.append(f"revenue {key[0]} {key[1]}: revseg={s_rev} duckdb={d_rev}")
    for key in sorted(s_segments.keys() | d_segments.keys()):
        s_n, d_n = s_segments.get(key, 0), d_segments.get(key, 0)
        period_rows = d_totals.get(key[:2], (0, 0))[0]
        if abs(s_n - d_n) > 0.02 * period_rows + 2:
            problems.append(f"segment {key[0]} {key[1]} {key[2]}: revseg={s_n} duckdb={d_n}")
    return problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="transactions in the lake")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"), help="lake/out root")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--skip-revseg", action="store_true", help="do not run revseg")
    parser.add_argument("--skip-duckdb", action="store_true", help="do not run DuckDB")
    parser.add_argument("--keep-output", action="store_true", help="keep the outputs afterwards")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="instead: a full run without --late-day's partition, then --incremental runs",
    )
    parser.add_argument("--late-day", default="2024-06-15", help="the day that arrives late")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="instead: the job once per tiers/insights variant (what each part adds)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        choices=sorted(VARIANTS),
        help="with --variants: run only this one (repeatable; default: all)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --variants: a checkout of an earlier revseg, run first as the job without",
    )
    return parser.parse_args(argv)


def fmt(value: float | None) -> str:
    """Format seconds or a ratio for the results table."""
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and return the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if "--clv" in argv:  # the CLV benchmark: scripts/bench_clv.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_clv

        return int(bench_clv.main([a for a in argv if a != "--clv"]))
    args = parse_args(argv)
    data_dir = args.data_dir if args.data_dir.is_absolute() else ROOT / args.data_dir
    lake = data_dir / f"lake-{args.rows}-seed{args.seed}"
    out = data_dir / f"out-{args.rows}"
    ensure_lake(lake, args.rows, args.seed)
    shutil.rmtree(out, ignore_errors=True)
    if args.incremental:
        try:
            seconds = run_incremental(lake, out / "revseg", args.late_day)
        finally:
            if not args.keep_output:
                shutil.rmtree(out, ignore_errors=True)
        print(f"{'rows':>12} {'full_s':>8} {'incremental_s':>14} {'unchanged_s':>12} {'ratio':>6}")
        speedup = seconds["full"] / seconds["incremental"]
        print(
            f"{args.rows:>12} {seconds['full']:>8.2f} {seconds['incremental']:>14.2f} "
            f"{seconds['unchanged']:>12.2f} {speedup:>6.2f}"
        )
        if args.json:
            args.json.write_text(json.dumps({"rows": args.rows, **seconds}, indent=2) + "\n")
        return 0
    if args.variants:
        try:
            seconds = run_variants(lake, out / "revseg", args.baseline, args.variant)
        finally:
            if not args.keep_output:
                shutil.rmtree(out, ignore_errors=True)
        base = seconds.get("baseline", next(iter(seconds.values())))
        print(f"{'rows':>12} {'variant':<24} {'seconds':>8} {'vs first':>9}")
        for name, value in seconds.items():
            print(f"{args.rows:>12} {name:<24} {value:>8.2f} {value / base - 1:>+9.1%}")
        if args.json:
            args.json.write_text(json.dumps({"rows": args.rows, **seconds}, indent=2) + "\n")
        return 0
    revseg_s = duckdb_s = ratio = None
    problems: list[str] = []
    try:
        if not args.skip_revseg:
            revseg_s = run_revseg(lake, out / "revseg")
        if not args.skip_duckdb:
            duckdb_s = run_duckdb(lake, out / "duckdb", os.cpu_count() or 1)
        if revseg_s is not None and duckdb_s is not None:
            ratio = revseg_s / duckdb_s
            problems = cross_check(out / "revseg" / "customer_segments", out / "duckdb")
    finally:
        if not args.keep_output:
            shutil.rmtree(out, ignore_errors=True)
    print(f"{'rows':>12} {'revseg_s':>10} {'duckdb_s':>10} {'ratio':>8}")
    print(f"{args.rows:>12} {fmt(revseg_s):>10} {fmt(duckdb_s):>10} {fmt(ratio):>8}")
    checked = ratio is not None
    print("cross-check: " + ("skipped" if not checked else "ok" if not problems else "FAILED"))
    for problem in problems:
        print(f"  {problem}")
    if args.json:
        result = {"rows": args.rows, "seed": args.seed, "revseg_seconds": revseg_s}
        result |= {"duckdb_seconds": duckdb_s, "ratio": ratio}
        result["cross_check"] = problems or ("ok" if checked else "skipped")
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
