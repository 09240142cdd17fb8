"""The whole job on a small generated lake: tables, reconciliation, re-runs, errors,
grains, refunds and metrics.

Outputs are read back with delta-rs (an independent Delta reader) and the input's revenue is
computed independently with DuckDB over the same Parquet files. How the source is read:
`tests/io/test_source.py`; the tables as written: `tests/io/test_outputs.py`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import RunError, SourceError
from revseg.periods import Month
from revseg.pipeline import run_segmentation
from revseg.reasons import ROW_REASONS
from tests.lakes import SPEC, config_for, fx_beside, naive, read_delta, write_lake


def expected_revenue(lake: str) -> dict[tuple[str, str], Decimal]:
    """Net revenue per (grain, period) straight from the Parquet files with DuckDB:
    deduplicated, sales minus refunds, converted at the latest rate at most 3 days old
    (rounded half-even per transaction), rows without a rate or with an ignored type left
    out."""
    rates = Path(lake).parent / "fx_rates"
    sql = f"""
        SET TimeZone = 'UTC';
        WITH tx AS (
            SELECT DISTINCT ON (customer_id, transaction_id) *,
                upper(trim(currency)) AS ccy,
                CAST(transaction_ts AS DATE) AS day,
                CASE
                    WHEN transaction_type IS NULL OR trim(transaction_type) = ''
                      OR lower(trim(transaction_type)) IN ('sale', 'purchase', 'order') THEN 1
                    WHEN lower(trim(transaction_type)) IN ('refund', 'return', 'chargeback')
                      THEN -1
                    ELSE 0
                END AS sign
            FROM read_parquet('{lake}/*/*.parquet', hive_partitioning = true)
        ),
        rates AS (
            SELECT upper(trim(currency)) AS ccy, rate_date, rate
            FROM read_parquet('{rates}/*.parquet')
        ),
        net AS (
            SELECT tx.transaction_ts, tx.sign * abs(CASE
                WHEN tx.ccy = 'USD' THEN tx.amount
                WHEN tx.day - r.rate_date <= 3 THEN round_even(tx.amount * r.rate, 2)
            END) AS amount
            FROM tx ASOF LEFT JOIN rates r ON tx.ccy = r.ccy AND tx.day >= r.rate_date
            WHERE tx.sign <> 0
        ),
        usd AS (SELECT * FROM net WHERE amount IS NOT NULL)
        SELECT 'month', strftime(transaction_ts, '%Y-%m'), sum(amount) FROM usd GROUP BY 2
        UNION ALL
        SELECT 'quarter', strftime(transaction_ts, '%Y') || '-Q' || quarter(transaction_ts),
               sum(amount) FROM usd GROUP BY 2
        UNION ALL
        SELECT 'year', strftime(transaction_ts, '%Y'), sum(amount) FROM usd GROUP BY 2
    """
    con = duckdb.connect()
    statements = [s for s in sql.split(";") if s.strip()]
    for statement in statements[:-1]:
        con.execute(statement)
    rows = con.execute(statements[-1]).fetchall()
    return {(g, p): Decimal(v) for g, p, v in rows}


def revenue_by_period(rows: list[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[(row["period_grain"], row["period"])] += row["revenue"]
    return dict(totals)


def test_revenue_per_period_reconciles_to_the_cent(full_run: Any, lake: str) -> None:
    _, result = full_run
    written = revenue_by_period(read_delta(result.table_path(contract.CUSTOMER_SEGMENTS)))
    expected = expected_revenue(lake)
    assert written == expected
    assert len(expected) == 6 + 2 + 1
    boundaries = revenue_by_period(read_delta(result.table_path(contract.TIER_BOUNDARIES)))
    assert boundaries == expected
    kinds = duckdb.sql(
        f"SELECT transaction_type, count(*) FROM read_parquet('{lake}/*/*.parquet') GROUP BY 1"
    ).fetchall()
    rows = dict(kinds)
    assert result.counts.input_rows == sum(rows.values())
    assert result.counts.duplicates == 1
    assert result.counts.rejected("missing_fx_rate") == 1  # the CHF row
    assert result.counts.rejected("excluded_type") == rows["test"] > 0
    # every row is counted once: valid, duplicate or rejected with a reason
    rejected = sum(result.counts.rejected(code) for code in ROW_REASONS)
    assert result.counts.valid_rows + result.counts.duplicates + rejected == sum(rows.values())
    assert rows["refund"] + rows["chargeback"] > 0 and rows["sale"] > SPEC.rows * 0.99
    assert result.counts.refund_rows == rows["refund"] + rows["chargeback"]
    written = read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
    refunds = sum(r["refunds"] for r in written if r["period_grain"] == "month")
    assert Decimal(result.counts.refund_cents) / 100 == refunds


def test_segments_follow_cut_points(full_run: Any) -> None:
    _, result = full_run
    boundaries = read_delta(result.table_path(contract.TIER_BOUNDARIES))
    cut = {(b["period"], b["segment"]): b["min_revenue"] for b in boundaries}
    order = ["platinum", "gold", "silver", "bronze"]
    for row in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS)):
        if row["revenue"] <= 0:
            assert row["segment"] == "no_revenue"
            continue
        reached = [s for s in order if row["revenue"] >= cut[(row["period"], s)]]
        assert row["segment"] == reached[0], row
    shares = defaultdict(float)
    for b in boundaries:
        shares[b["period"]] += b["revenue_share"] or 0.0
    assert all(abs(total - 1.0) < 1e-9 for total in shares.values())


def test_rerun_changes_nothing_and_one_month_run_touches_only_its_periods(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    config = config_for(lake, tmp_path / "out")
    first = run_segmentation(spark, config)
    path = first.table_path(contract.CUSTOMER_SEGMENTS)
    rows_before = sorted(map(_key, read_delta(path)))
    files_before = _files_by_period(path)

    # The same work again, with nothing changed since: skipped, the tables untouched.
    again = run_segmentation(spark, config)
    assert (again.status, again.same_as) == ("skipped", first.run_id)
    assert again.table_versions == first.table_versions
    assert DeltaTable(path).version() == first.table_versions[contract.CUSTOMER_SEGMENTS]
    files_after_rerun = _files_by_period(path)
    assert files_after_rerun == files_before

    march = run_segmentation(spark, config, Month.parse("2024-03"), Month.parse("2024-03"))
    assert march.periods == {"month": ("2024-03",), "quarter": ("2024-Q1",), "year": ("2024",)}
    files_after = _files_by_period(path)
    touched = {"2024-03", "2024-Q1", "2024"}
    for period, files in files_after_rerun.items():
        if period in touched:
            assert files_after[period].isdisjoint(files)  # rewritten whole
        else:
            assert files_after[period] == files  # not a file changed
    assert sorted(map(_key, read_delta(path))) == rows_before  # same data gives same rows
    assert set(files_before) == set(files_after)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(naive(row[f.name]) for f in contract.CUSTOMER_SEGMENTS_SCHEMA.fields)


def _files_by_period(path: str) -> dict[str, set[str]]:
    result: dict[str, set[str]] = defaultdict(set)
    for action in pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist():
        result[action["partition.period"]].add(action["path"])
    return dict(result)


def test_empty_requested_period_fails_and_writes_nothing(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    config = config_for(lake, tmp_path / "out")
    run_segmentation(spark, config, Month.parse("2024-02"), Month.parse("2024-02"))
    path = str(tmp_path / "out" / contract.CUSTOMER_SEGMENTS)
    version = DeltaTable(path).version()
    with pytest.raises(RunError, match="no valid transactions for period"):
        run_segmentation(spark, config, Month.parse("2025-02"), Month.parse("2025-02"))
    assert DeltaTable(path).version() == version


def test_missing_column_names_the_column_and_key(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    config = config_for(lake, tmp_path / "out", "source.columns.amount=net_amount")
    with pytest.raises(SourceError) as info:
        run_segmentation(spark, config)
    message = str(info.value)
    assert "'amount'" in message and "'net_amount'" in message
    assert "source.columns.amount" in message
    assert not (tmp_path / "out").exists()


# (A Delta source: tests/test_incremental.py, which also follows its versions.)
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_other_source_formats_give_the_same_revenue(
    spark: SparkSession, lake: str, tmp_path: Path, fmt: str
) -> None:
    copy = write_lake(spark.read.parquet(lake), tmp_path / f"lake_{fmt}", fmt)
    config = config_for(
        copy, tmp_path / "out", f"source.format={fmt}", "periods.grains=[quarter]", *fx_beside(lake)
    )
    result = run_segmentation(spark, config)
    written = revenue_by_period(read_delta(result.table_path(contract.CUSTOMER_SEGMENTS)))
    expected = {k: v for k, v in expected_revenue(lake).items() if k[0] == "quarter"}
    assert written == expected


def test_fiscal_and_rolling_grains(spark: SparkSession, lake: str, tmp_path: Path) -> None:
    config = config_for(
        lake,
        tmp_path / "out",
        "periods.grains=[month, fiscal_quarter, fiscal_year, rolling_3m]",
        "periods.fiscal_year_start_month=4",
    )
    result = run_segmentation(spark, config)
    month = {p: v for (g, p), v in expected_revenue(lake).items() if g == "month"}
    written = revenue_by_period(read_delta(result.table_path(contract.CUSTOMER_SEGMENTS)))

    def months(*labels: str) -> Decimal:
        return sum((month[f"2024-{m}"] for m in labels), Decimal(0))

    assert written[("fiscal_year", "FY2024")] == months("01", "02", "03")
    assert written[("fiscal_year", "FY2025")] == months("04", "05", "06")
    assert written[("fiscal_quarter", "FY2024-Q4")] == months("01", "02", "03")
    assert written[("fiscal_quarter", "FY2025-Q1")] == months("04", "05", "06")
    for end in range(3, 7):
        label = f"L3M-2024-{end:02d}"
        assert written[("rolling_3m", label)] == months(
            *[f"{m:02d}" for m in range(end - 2, end + 1)]
        )
    rolling = sorted(p for g, p in written if g == "rolling_3m")
    assert rolling == ["L3M-2024-03", "L3M-2024-04", "L3M-2024-05", "L3M-2024-06"]
    assert result.skipped_windows == ("L3M-2024-01", "L3M-2024-02", "L3M-2024-07", "L3M-2024-08")

    # A range run reads the lookback its windows need; a window without history is skipped.
    march = run_segmentation(spark, config, Month.parse("2024-03"), Month.parse("2024-03"))
    assert march.periods["rolling_3m"] == ("L3M-2024-03",)
    february = run_segmentation(spark, config, Month.parse("2024-02"), Month.parse("2024-02"))
    assert february.periods["rolling_3m"] == ()
    assert february.skipped_windows == ("L3M-2024-02",)
    assert revenue_by_period(read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))) == written


def test_tiers_by_market(spark: SparkSession, lake: str, tmp_path: Path) -> None:
    config = config_for(lake, tmp_path / "out", "tiers.by=[market]", "periods.grains=[quarter]")
    result = run_segmentation(spark, config)
    segments = read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
    boundaries = read_delta(result.table_path(contract.TIER_BOUNDARIES))
    assert list(segments[0])[:4] == ["customer_id", "period", "period_grain", "market"]
    assert list(boundaries[0])[:3] == ["period", "period_grain", "market"]
    markets = {r["market"] for r in segments}
    assert markets == {"US", "GB", "DE", "JP", "BR"}
    expected = {k: v for k, v in expected_revenue(lake).items() if k[0] == "quarter"}
    assert revenue_by_period(segments) == expected  # groups split customers, not money
    for (period, market), share in _platinum_shares(segments).items():
        assert share <= 0.02 + 1 / 50, (period, market, share)  # top 1% within each market
    cut = {(b["period"], b["market"], b["segment"]): b["min_revenue"] for b in boundaries}
    for row in segments:
        if row["segment"] == "platinum":
            assert row["revenue"] >= cut[(row["period"], row["market"], "platinum")]


def _platinum_shares(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        key = (row["period"], row["market"])
        counts[key][1] += 1
        counts[key][0] += row["segment"] == "platinum"
    return {k: top / n for k, (top, n) in counts.items()}


def test_transaction_types_refunds_and_excluded_rows(spark: SparkSession, tmp_path: Path) -> None:
    rows = [
        ("t1", "a", datetime(2024, 1, 5, 10), Decimal("100.00"), "USD", "sale"),
        ("t2", "a", datetime(2024, 1, 9, 10), Decimal("-25.50"), "USD", " Refund "),
        ("t3", "a", datetime(2024, 2, 1, 10), Decimal("999.00"), "USD", "test"),
        ("t4", "b", datetime(2024, 1, 2, 10), Decimal("40.00"), "USD", None),
        ("t5", "b", datetime(2024, 2, 3, 10), Decimal("60.00"), "USD", "chargeback"),
        ("t6", "b", datetime(2024, 2, 4, 10), Decimal("5.00"), "USD", "gift"),
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), currency string, transaction_type string",
    )
    lake = write_lake(frame, tmp_path / "lake")
    result = run_segmentation(spark, config_for(lake, tmp_path / "out", "periods.grains=[month]"))
    got = {
        (r["customer_id"], r["period"]): (
            r["gross_revenue"],
            r["refunds"],
            r["revenue"],
            r["orders"],
            r["segment"],
        )
        for r in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
    }
    assert got == {
        ("a", "2024-01"): (Decimal("100.00"), Decimal("25.50"), Decimal("74.50"), 1, "platinum"),
        ("b", "2024-01"): (Decimal("40.00"), Decimal("0.00"), Decimal("40.00"), 1, "silver"),
        ("b", "2024-02"): (Decimal("0.00"), Decimal("60.00"), Decimal("-60.00"), 0, "no_revenue"),
    }
    assert (
        result.counts.rejected("excluded_type") == 1
        and result.counts.rejected("unknown_transaction_type") == 1
    )


def test_recency_tenure_active_months_quantity_and_margin(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        ("t1", "a", datetime(2024, 1, 5, 9), Decimal("100.00"), "sale", 2, Decimal("60.00")),
        ("t2", "a", datetime(2024, 3, 10, 9), Decimal("50.00"), "sale", 1, Decimal("20.00")),
        ("t3", "a", datetime(2024, 3, 20, 9), Decimal("-10.00"), "refund", 1, None),
        ("t4", "b", datetime(2024, 2, 29, 23), Decimal("30.00"), "sale", 3, None),
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), transaction_type string, quantity int, cost decimal(18,2)",
    ).withColumn("currency", F.lit("USD"))
    lake = write_lake(frame, tmp_path / "lake")
    config = config_for(lake, tmp_path / "out", "periods.grains=[month, quarter]")
    result = run_segmentation(spark, config)
    got = {
        (r["customer_id"], r["period"]): (
            r["revenue"],
            r["recency_days"],
            r["tenure_days"],
            r["active_months"],
            r["quantity"],
            r["margin"],
        )
        for r in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
    }
    assert got == {
        ("a", "2024-01"): (Decimal("100.00"), 26, 26, 1, 2, Decimal("40.00")),
        ("a", "2024-03"): (Decimal("40.00"), 11, 86, 1, 0, Decimal("20.00")),
        ("a", "2024-Q1"): (Decimal("140.00"), 11, 86, 2, 2, Decimal("60.00")),
        ("b", "2024-02"): (Decimal("30.00"), 0, 0, 1, 3, None),
        ("b", "2024-Q1"): (Decimal("30.00"), 31, 31, 1, 3, None),
    }
    # The same run without the optional metrics: the columns stay, empty.
    lean = config_for(lake, tmp_path / "lean", "periods.grains=[month]", "metrics.include=[]")
    lean_rows = read_delta(run_segmentation(spark, lean).table_path(contract.CUSTOMER_SEGMENTS))
    assert {(r["quantity"], r["margin"]) for r in lean_rows} == {(None, None)}
    assert {r["tenure_days"] for r in lean_rows if r["customer_id"] == "a"} == {26, 86}


def test_iso_weeks_cross_month_ends(spark: SparkSession, tmp_path: Path) -> None:
    rows = [  # 2024-W05 runs from Monday 29 January to Sunday 4 February
        ("t1", "a", datetime(2024, 1, 30, 12), Decimal("10.00")),
        ("t2", "a", datetime(2024, 2, 2, 12), Decimal("5.00")),
        ("t3", "a", datetime(2024, 2, 6, 12), Decimal("1.00")),  # 2024-W06
        ("t4", "b", datetime(2024, 2, 29, 12), Decimal("7.00")),  # 2024-W09 ends 3 March
        ("t5", "c", datetime(2024, 2, 13, 12), Decimal("2.00")),  # 2024-W07
        ("t6", "c", datetime(2024, 2, 20, 12), Decimal("2.00")),  # 2024-W08
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)",
    ).withColumn("currency", F.lit("USD"))
    lake = write_lake(frame, tmp_path / "lake")
    config = config_for(lake, tmp_path / "out", "periods.grains=[week, month]")
    result = run_segmentation(spark, config)

    def table() -> dict[tuple[str, str], tuple[Any, ...]]:
        return {
            (r["customer_id"], r["period"]): (
                r["revenue"],
                r["active_days"],
                r["active_months"],
                r["recency_days"],
            )
            for r in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
        }

    full = table()
    assert full[("a", "2024-W05")] == (Decimal("15.00"), 2, 2, 2)
    assert full[("a", "2024-W06")] == (Decimal("1.00"), 1, 1, 5)
    assert full[("a", "2024-01")] == (Decimal("10.00"), 1, 1, 1)
    assert full[("a", "2024-02")] == (Decimal("6.00"), 2, 1, 23)
    assert full[("b", "2024-W09")] == (Decimal("7.00"), 1, 1, 3)
    weeks = tuple(f"2024-W{n:02d}" for n in range(5, 10))
    assert result.periods["week"] == weeks
    # A run of February rewrites its weeks whole, reading the January days of W05.
    february = run_segmentation(spark, config, Month.parse("2024-02"), Month.parse("2024-02"))
    assert february.periods["week"] == weeks
    assert table() == full


def test_refund_attribution_transaction_or_original(spark: SparkSession, tmp_path: Path) -> None:
    sale, refund = "sale", "refund"
    rows = [
        ("s1", "a", datetime(2024, 1, 20, 9), Decimal("100.00"), sale, None),
        ("r1", "a", datetime(2024, 2, 5, 9), Decimal("-30.00"), refund, "s1"),
        ("r1", "a", datetime(2024, 2, 5, 9), Decimal("-30.00"), refund, "s1"),  # a copy
        ("s2", "a", datetime(2024, 2, 10, 9), Decimal("50.00"), sale, None),
        ("r6", "a", datetime(2024, 3, 15, 9), Decimal("10.00"), refund, "s1"),
        ("s3", "b", datetime(2024, 2, 1, 9), Decimal("40.00"), sale, None),
        ("r2", "b", datetime(2024, 2, 7, 9), Decimal("-10.00"), refund, "nope"),  # unknown sale
        ("r3", "b", datetime(2024, 3, 3, 9), Decimal("-5.00"), refund, None),  # names none
        ("r4", "c", datetime(2024, 2, 8, 9), Decimal("-1.00"), refund, "s1"),  # a's sale
        ("s5", "d", datetime(2023, 12, 28, 9), Decimal("60.00"), sale, None),
        ("r5", "d", datetime(2024, 1, 3, 9), Decimal("-60.00"), refund, "s5"),
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), transaction_type string, original_transaction_id string",
    ).withColumn("currency", F.lit("USD"))
    lake = write_lake(frame, tmp_path / "lake")

    def run(out: str, attribution: str, *more: str, months: tuple[str, str] | None = None) -> Any:
        config = config_for(
            lake,
            tmp_path / out,
            "periods.grains=[month]",
            f"revenue.refund_attribution={attribution}",
            *more,
        )
        first, last = (Month.parse(m) for m in months) if months else (None, None)
        result = run_segmentation(spark, config, first, last)
        table = {
            (r["customer_id"], r["period"]): (r["gross_revenue"], r["refunds"], r["revenue"])
            for r in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
        }
        return result, table

    def money(*values: str) -> tuple[Decimal, ...]:
        return tuple(Decimal(v) for v in values)

    _, by_transaction = run("transaction", "transaction")
    assert by_transaction == {
        ("a", "2024-01"): money("100", "0", "100"),
        ("a", "2024-02"): money("50", "30", "20"),
        ("a", "2024-03"): money("0", "10", "-10"),
        ("b", "2024-02"): money("40", "10", "30"),
        ("b", "2024-03"): money("0", "5", "-5"),
        ("c", "2024-02"): money("0", "1", "-1"),
        ("d", "2023-12"): money("60", "0", "60"),
        ("d", "2024-01"): money("0", "60", "-60"),
    }
    full, by_original = run("original", "original")
    assert by_original == {
        ("a", "2024-01"): money("100", "40", "60"),  # refunded in February and March
        ("a", "2024-02"): money("50", "0", "50"),
        ("b", "2024-02"): money("40", "10", "30"),  # its sale is unknown: its own month
        ("b", "2024-03"): money("0", "5", "-5"),
        ("c", "2024-02"): money("0", "1", "-1"),  # names another customer's sale
        ("d", "2023-12"): money("60", "60", "0"),
    }
    assert full.counts.unattributed_refunds == 3 and full.counts.refund_rows == 6
    assert full.counts.duplicates == 1

    # A run of January and February reads December's sales and March's refunds for them,
    # and gives the same rows as the full run; d's refund belongs to December, outside it.
    ranged, by_range = run("range", "original", months=("2024-01", "2024-02"))
    assert by_range == {k: v for k, v in by_original.items() if k[1] in ("2024-01", "2024-02")}
    counts = ranged.counts.logged()
    rejected = sum(counts[code] for code in ROW_REASONS)
    assert counts["input_rows"] == len(rows)
    assert counts["valid_rows"] + counts["duplicate"] + counts["outside_range"] + rejected == len(
        rows
    )
    # Without reading beyond the range, the later refunds of s1 are not seen.
    _, short = run("short", "original", "revenue.max_refund_delay_days=0", months=("2024-01",) * 2)
    assert short[("a", "2024-01")] == money("100", "0", "100")


def test_top_channel_and_category_with_shares(spark: SparkSession, tmp_path: Path) -> None:
    rows = [  # 2024-W02 is 8-14 January, 2024-W06 is 5-11 February
        ("t1", "a", datetime(2024, 1, 9, 9), Decimal("100.00"), "sale", "web", "books"),
        ("t2", "a", datetime(2024, 1, 10, 9), Decimal("30.00"), "sale", "app", "toys"),
        ("t3", "a", datetime(2024, 1, 11, 9), Decimal("-20.00"), "refund", "web", "books"),
        ("t4", "a", datetime(2024, 2, 5, 9), Decimal("50.00"), "sale", "store", "toys"),
        ("t5", "a", datetime(2024, 2, 6, 9), Decimal("50.00"), "sale", "app", "toys"),
        ("t6", "b", datetime(2024, 1, 9, 9), Decimal("40.00"), "sale", "  ", "toys"),
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), transaction_type string, channel string, product_category string",
    ).withColumn("currency", F.lit("USD"))
    lake = write_lake(frame, tmp_path / "lake")
    config = config_for(
        lake,
        tmp_path / "out",
        "periods.grains=[week, month, quarter]",
        "metrics.include=[top_channel, top_category]",
    )
    result = run_segmentation(spark, config)
    got = {
        (r["customer_id"], r["period"]): (
            r["top_channel"],
            r["top_channel_share"],
            r["top_category"],
            r["top_category_share"],
        )
        for r in read_delta(result.table_path(contract.CUSTOMER_SEGMENTS))
    }
    january = ("web", 80 / 110, "books", 80 / 110)  # web and books net of the refund
    february = ("app", 0.5, "toys", 1.0)  # a tie between app and store: the first by name
    b_january = (None, None, "toys", 1.0)  # a blank channel counts for none
    assert got == {
        ("a", "2024-W02"): january,
        ("a", "2024-01"): january,
        ("a", "2024-W06"): february,
        ("a", "2024-02"): february,
        ("a", "2024-Q1"): ("app", 80 / 210, "toys", 130 / 210),  # app 80 ties web 80
        ("b", "2024-W02"): b_january,
        ("b", "2024-01"): b_january,
        ("b", "2024-Q1"): b_january,
    }
