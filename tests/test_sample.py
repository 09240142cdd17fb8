"""The sample lake: deterministic by seed, in the canonical contract, heavy tailed."""

from __future__ import annotations

from collections import Counter
from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg.contract import REQUIRED_COLUMNS
from revseg.sample import (
    MARKET_CURRENCIES,
    SampleSpec,
    fx_rates,
    sample_transactions,
    season_table,
    season_weight,
)


def test_same_seed_same_rows_other_seed_other_rows(spark: SparkSession) -> None:
    spec = SampleSpec(rows=3000, customers=200, start=date(2024, 1, 1), end=date(2024, 12, 31))
    a = Counter(sample_transactions(spark, spec).collect())
    b = Counter(sample_transactions(spark, spec).collect())
    c = Counter(sample_transactions(spark, SampleSpec(**{**spec.__dict__, "seed": 8})).collect())
    assert a == b and sum(a.values()) >= spec.rows  # (a few thousand rows: compared here)
    assert a != c and a - c


def test_contract_and_shape(spark: SparkSession) -> None:
    spec = SampleSpec(
        rows=20000, customers=2000, start=date(2024, 1, 1), end=date(2024, 12, 31), plain=True
    )
    frame = sample_transactions(spark, spec)
    types = dict(frame.dtypes)
    # The contract's types, but money in cents, as most lakes hold it (the contract takes up
    # to 4 decimals, for every currency's minor unit).
    expected = {c: t.simpleString() for c, t in REQUIRED_COLUMNS.items()}
    assert {c: types[c] for c in expected} == {**expected, "amount": "decimal(18,2)"}
    stats = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("transaction_id").alias("ids"),
        F.min("transaction_date").alias("first"),
        F.max("transaction_date").alias("last"),
        F.countDistinct("channel").alias("channels"),
        F.countDistinct("market").alias("markets"),
        F.sum((F.to_date("transaction_ts") != F.col("transaction_date")).cast("int")).alias("bad"),
    ).first()
    assert stats is not None
    assert stats["rows"] == stats["ids"] == 20000
    assert stats["first"] >= date(2024, 1, 1) and stats["last"] <= date(2024, 12, 31)
    assert stats["channels"] == 4 and stats["markets"] == 5 and stats["bad"] == 0

    per_customer = frame.groupBy("customer_id").agg(
        F.sum("amount").alias("spend"), F.count(F.lit(1)).alias("orders")
    )
    spend = sorted(float(r["spend"]) for r in per_customer.collect())
    top_share = sum(spend[-len(spend) // 100 :]) / sum(spend)
    assert top_share > 0.05  # the top 1% of customers bring far more than 1% of revenue
    orders = sorted(r["orders"] for r in per_customer.collect())
    assert orders[len(orders) // 2] < orders[-1] / 10  # most buy rarely, a few often


def test_season_table_follows_the_weights_and_peaks_at_year_end() -> None:
    start, end = date(2024, 1, 1), date(2024, 12, 31)
    table = season_table(start, end)
    days = [date.fromordinal(start.toordinal() + d) for d in range((end - start).days + 1)]
    total = sum(season_weight(d) for d in days)
    for month in range(1, 13):
        weight_share = sum(season_weight(d) for d in days if d.month == month) / total
        slot_share = sum(1 for offset in table if days[offset].month == month) / len(table)
        assert abs(slot_share - weight_share) < 0.002, month
    december = sum(1 for offset in table if days[offset].month == 12)
    june = sum(1 for offset in table if days[offset].month == 6)
    assert december > 1.25 * june


def test_realistic_sample_has_refunds_currencies_and_test_orders(spark: SparkSession) -> None:
    spec = SampleSpec(rows=20000, customers=2000, start=date(2024, 1, 1), end=date(2024, 6, 30))
    frame = sample_transactions(spark, spec)
    kinds = {
        r["transaction_type"]: r["n"]
        for r in frame.groupBy("transaction_type").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    assert kinds["sale"] + kinds["test"] == 20000
    assert 0.02 < (kinds["refund"] + kinds["chargeback"]) / 20000 < 0.04
    assert 0.001 < kinds["test"] / 20000 < 0.004
    currencies = {
        (r["market"], r["currency"])
        for r in frame.select("market", "currency").distinct().collect()
    }
    assert currencies == {(m, c) for m, (c, _) in MARKET_CURRENCIES.items()}
    assert frame.where((F.col("currency") == "JPY") & (F.col("amount") % 1 != 0)).count() == 0

    refunds = frame.where(F.col("original_transaction_id").isNotNull()).alias("r")
    sales = frame.alias("s")
    pairs = refunds.join(sales, F.col("r.original_transaction_id") == F.col("s.transaction_id"))
    checks = pairs.agg(
        F.count(F.lit(1)).alias("pairs"),
        F.sum((F.col("r.customer_id") != F.col("s.customer_id")).cast("int")).alias("other"),
        F.sum((F.col("r.transaction_ts") <= F.col("s.transaction_ts")).cast("int")).alias("early"),
        F.sum((-F.col("r.amount") > F.col("s.amount")).cast("int")).alias("larger"),
        F.sum((-F.col("r.amount") < F.col("s.amount")).cast("int")).alias("partial"),
        F.max("r.transaction_date").alias("last"),
    ).first()
    assert checks is not None
    assert checks["pairs"] == kinds["refund"] + kinds["chargeback"]
    assert checks["other"] == checks["early"] == checks["larger"] == 0
    assert checks["partial"] > 0 and checks["last"] <= date(2024, 6, 30)

    rates = fx_rates(spark, spec)
    assert {r["currency"] for r in rates.select("currency").distinct().collect()} == {
        "BRL",
        "EUR",
        "GBP",
        "JPY",
    }
    assert rates.where(F.dayofweek("rate_date").isin(1, 7)).count() == 0
