"""Metrics: month aggregates from hand-built rows, every grain rolled up from months."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg.metrics import (
    average_order_value,
    deduplicate,
    month_aggregates,
    roll_up,
    to_cents,
    to_money,
    transaction_facts,
    with_period_labels,
)
from revseg.periods import Month, make_grains

TX_SCHEMA = (
    "customer_id string, transaction_id string, transaction_ts timestamp, amount decimal(18,2)"
)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_cents_round_trip_is_exact(spark: SparkSession) -> None:
    values = [Decimal("0.01"), Decimal("-12.34"), Decimal("9999999999999999.99"), Decimal("0.10")]
    frame = spark.createDataFrame([(v,) for v in values], "amount decimal(18,2)")
    rows = frame.select(to_cents("amount").alias("c"), to_money(to_cents("amount")).alias("m"))
    result = rows.collect()
    assert [r["c"] for r in result] == [1, -1234, 999999999999999999, 10]
    assert [r["m"] for r in result] == values


def test_month_aggregates_and_rollup(spark: SparkSession) -> None:
    rows = [
        ("a", "t1", ts("2024-01-05 10:00:00"), Decimal("10.00")),
        ("a", "t2", ts("2024-01-05 18:00:00"), Decimal("5.50")),
        ("a", "t3", ts("2024-02-10 09:00:00"), Decimal("1.25")),
        ("a", "t4", ts("2024-04-01 00:00:00"), Decimal("100.00")),
        ("b", "t5", ts("2024-03-31 23:59:59"), Decimal("7.00")),
    ]
    tx = spark.createDataFrame(rows, TX_SCHEMA)
    months = month_aggregates(transaction_facts(tx, "UTC"))
    grains = make_grains(("month", "quarter", "year"))
    per_period = with_period_labels(roll_up(months, grains), grains)
    expected = spark.createDataFrame(
        [
            (
                "a",
                "month",
                "2024-01",
                1550,
                2,
                ts("2024-01-05 10:00:00"),
                ts("2024-01-05 18:00:00"),
                1,
            ),
            (
                "a",
                "month",
                "2024-02",
                125,
                1,
                ts("2024-02-10 09:00:00"),
                ts("2024-02-10 09:00:00"),
                1,
            ),
            (
                "a",
                "month",
                "2024-04",
                10000,
                1,
                ts("2024-04-01 00:00:00"),
                ts("2024-04-01 00:00:00"),
                1,
            ),
            (
                "a",
                "quarter",
                "2024-Q1",
                1675,
                3,
                ts("2024-01-05 10:00:00"),
                ts("2024-02-10 09:00:00"),
                2,
            ),
            (
                "a",
                "quarter",
                "2024-Q2",
                10000,
                1,
                ts("2024-04-01 00:00:00"),
                ts("2024-04-01 00:00:00"),
                1,
            ),
            (
                "a",
                "year",
                "2024",
                11675,
                4,
                ts("2024-01-05 10:00:00"),
                ts("2024-04-01 00:00:00"),
                3,
            ),
            (
                "b",
                "month",
                "2024-03",
                700,
                1,
                ts("2024-03-31 23:59:59"),
                ts("2024-03-31 23:59:59"),
                1,
            ),
            (
                "b",
                "quarter",
                "2024-Q1",
                700,
                1,
                ts("2024-03-31 23:59:59"),
                ts("2024-03-31 23:59:59"),
                1,
            ),
            ("b", "year", "2024", 700, 1, ts("2024-03-31 23:59:59"), ts("2024-03-31 23:59:59"), 1),
        ],
        "customer_id string, period_grain string, period string, revenue_cents long, orders long, "
        "first_transaction_ts timestamp, last_transaction_ts timestamp, active_days int",
    )
    assert_df_equality(
        per_period.select(*expected.columns),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
        ignore_column_order=True,
    )


def test_time_zone_moves_a_transaction_into_the_next_month(spark: SparkSession) -> None:
    tx = spark.createDataFrame([("a", "t1", ts("2024-03-31 23:30:00"), Decimal("1.00"))], TX_SCHEMA)
    utc = month_aggregates(transaction_facts(tx, "UTC")).first()
    berlin = month_aggregates(transaction_facts(tx, "Europe/Berlin")).first()
    assert utc is not None and berlin is not None
    assert utc["month_idx"] == Month.parse("2024-03").index
    assert berlin["month_idx"] == Month.parse("2024-04").index


def test_rollup_keeps_only_requested_periods(spark: SparkSession) -> None:
    rows = [("a", f"t{m}", ts(f"2024-{m:02d}-15 12:00:00"), Decimal("1.00")) for m in range(1, 13)]
    months = month_aggregates(transaction_facts(spark.createDataFrame(rows, TX_SCHEMA), "UTC"))
    march = Month.parse("2024-03").index
    runs = {
        "month": [(march - 2, march - 2), (march, march + 1)],  # January, March and April
        "quarter": [(march - 2, march - 2)],
        "year": [(march - 2, march - 2)],
    }
    grains = make_grains(("month", "quarter", "year"))
    kept = with_period_labels(roll_up(months, grains, runs), grains)
    got = {(r["period"], r["revenue_cents"]) for r in kept.collect()}
    assert got == {
        ("2024-01", 100),
        ("2024-03", 100),
        ("2024-04", 100),
        ("2024-Q1", 300),
        ("2024", 1200),
    }


def test_active_days_count_distinct_days_across_months(spark: SparkSession) -> None:
    days = ["2024-01-01", "2024-01-01", "2024-01-31", "2024-02-01", "2024-02-29", "2024-03-01"]
    rows = [("a", f"t{i}", ts(f"{d} 08:00:00"), Decimal("1.00")) for i, d in enumerate(days)]
    months = month_aggregates(transaction_facts(spark.createDataFrame(rows, TX_SCHEMA), "UTC"))
    result = {
        r["period"]: r["active_days"]
        for r in with_period_labels(
            roll_up(months, make_grains(("month", "quarter"))), make_grains(("month", "quarter"))
        ).collect()
    }
    assert result == {"2024-01": 2, "2024-02": 2, "2024-03": 1, "2024-Q1": 5}


def test_deduplicate_keeps_earliest_copy_and_counts_copies(spark: SparkSession) -> None:
    rows = [
        ("a", "t1", ts("2024-01-05 10:00:00"), Decimal("10.00")),
        ("a", "t1", ts("2024-01-05 10:00:00"), Decimal("10.00")),
        ("a", "t1", ts("2024-01-04 10:00:00"), Decimal("12.00")),
        ("b", "t1", ts("2024-01-05 10:00:00"), Decimal("3.00")),
    ]
    unique = deduplicate(transaction_facts(spark.createDataFrame(rows, TX_SCHEMA), "UTC"), "UTC")
    got = sorted((r["customer_id"], r["amount_cents"], r["copies"]) for r in unique.collect())
    assert got == [("a", 1200, 3), ("b", 300, 1)]


def test_average_order_value_rounds_half_up_and_handles_no_orders(spark: SparkSession) -> None:
    cases = [(5, 2), (-5, 2), (1000, 3), (2000, 3), (500, 0), (-1, 3), (999999999999999999, 7)]
    frame = spark.createDataFrame(cases, "cents long, orders long")
    got = [
        r[0] for r in frame.select(average_order_value(F.col("cents"), F.col("orders"))).collect()
    ]
    expected = [
        (Decimal(c) / 100 / n).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP") if n else None
        for c, n in cases
    ]
    assert got == expected
    assert got[:2] == [Decimal("0.03"), Decimal("-0.03")]


def test_rolling_and_fiscal_rollup(spark: SparkSession) -> None:
    amounts = {1: "1.00", 2: "2.00", 3: "4.00", 4: "8.00", 5: "16.00"}
    rows = [("a", f"t{m}", ts(f"2024-{m:02d}-10 12:00:00"), Decimal(v)) for m, v in amounts.items()]
    months = month_aggregates(transaction_facts(spark.createDataFrame(rows, TX_SCHEMA), "UTC"))
    grains = make_grains(("rolling_3m", "fiscal_quarter", "fiscal_year"), fiscal_year_start_month=4)
    labelled = with_period_labels(roll_up(months, grains), grains)
    got = {r["period"]: r["revenue_cents"] for r in labelled.collect()}
    assert got["L3M-2024-03"] == 700 and got["L3M-2024-05"] == 2800
    assert got["L3M-2024-01"] == 100 and got["L3M-2024-07"] == 1600  # partial: lacks history
    assert got["FY2024-Q4"] == 700 and got["FY2025-Q1"] == 2400
    assert got["FY2024"] == 700 and got["FY2025"] == 2400


def test_refunds_reduce_revenue_whatever_their_sign(spark: SparkSession) -> None:
    schema = TX_SCHEMA + ", transaction_type string"
    rows = [
        ("a", "s1", ts("2024-01-05 10:00:00"), Decimal("100.00"), "sale"),
        ("a", "r1", ts("2024-01-06 10:00:00"), Decimal("30.00"), "refund"),  # positive sign
        ("a", "r2", ts("2024-01-07 10:00:00"), Decimal("-20.00"), "return"),  # negative sign
        ("a", "s2", ts("2024-02-01 10:00:00"), Decimal("10.00"), "sale"),
        ("a", "r3", ts("2024-03-01 10:00:00"), Decimal("50.00"), "chargeback"),  # > March sales
    ]
    tx = spark.createDataFrame(rows, schema)
    refund = F.col("transaction_type").isin("refund", "return", "chargeback")
    facts = deduplicate(transaction_facts(tx, "UTC", refund=refund), "UTC")
    months = month_aggregates(facts)
    got = {
        r["period"]: (
            r["revenue_cents"] + r["refund_cents"],
            r["refund_cents"],
            r["revenue_cents"],
            r["orders"],
        )
        for r in with_period_labels(
            roll_up(months, make_grains(("month", "quarter"))), make_grains(("month", "quarter"))
        ).collect()
    }
    assert got["2024-01"] == (10000, 5000, 5000, 1)
    assert got["2024-02"] == (1000, 0, 1000, 1)
    assert got["2024-03"] == (0, 5000, -5000, 0)  # net negative: a no_revenue customer
    assert got["2024-Q1"] == (11000, 10000, 1000, 2)


def test_kept_copy_decides_refund_or_sale(spark: SparkSession) -> None:
    schema = TX_SCHEMA + ", transaction_type string"
    rows = [
        ("a", "x1", ts("2024-01-05 10:00:00"), Decimal("50.00"), "sale"),
        ("a", "x1", ts("2024-01-05 09:00:00"), Decimal("-50.00"), "refund"),  # earlier: kept
    ]
    refund = F.col("transaction_type") == "refund"
    tx = spark.createDataFrame(rows, schema)
    month = month_aggregates(deduplicate(transaction_facts(tx, "UTC", refund=refund), "UTC"))
    row = month.first()
    assert row is not None
    gross = row["revenue_cents"] + row["refund_cents"]
    assert (gross, row["refund_cents"], row["revenue_cents"], row["orders"]) == (
        0,
        5000,
        -5000,
        0,
    )
