"""Currency conversion end to end: rates by date, staleness, rounding, zero-decimal units."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from revseg import contract
from revseg.config import load_config
from revseg.errors import RunError, SourceError
from revseg.pipeline import run_segmentation
from tests.lakes import write_lake

TX_SCHEMA = (
    "transaction_id string, customer_id string, transaction_ts timestamp, "
    "amount decimal(18,2), currency string"
)
RATE_SCHEMA = "ccy string, day date, to_usd decimal(12,6)"
RATES = [
    ("EUR", date(2024, 1, 5), Decimal("1.10")),
    ("EUR", date(2024, 1, 8), Decimal("1.20")),
    ("jpy", date(2024, 1, 1), Decimal("0.0067")),
]


def write_rates(spark: SparkSession, path: Path, rows: list[tuple]) -> str:
    spark.createDataFrame(rows, RATE_SCHEMA).write.mode("overwrite").parquet(str(path))
    return str(path)


def run(
    spark: SparkSession,
    tmp_path: Path,
    rows: list[tuple],
    *overrides: str,
    schema: str = TX_SCHEMA,
    rates_rows: list[tuple] = RATES,
):
    lake = write_lake(spark.createDataFrame(rows, schema), tmp_path / "lake")
    rates = write_rates(spark, tmp_path / "rates", rates_rows)
    config = load_config(
        None,
        [
            f"source.path={lake}",
            f"output.path={tmp_path / 'out'}",
            "periods.grains=[month]",
            f"revenue.fx_rates.path={rates}",
            "revenue.fx_rates.columns={currency: ccy, rate_date: day, rate: to_usd}",
            "revenue.fx_max_staleness_days=2",
            "quality.max_quarantine_fraction=1",
            *overrides,
        ],
    )
    return run_segmentation(spark, config)


def revenue_by_customer(result) -> dict[str, Decimal]:
    table = DeltaTable(result.table_path(contract.CUSTOMER_SEGMENTS)).to_pyarrow_table()
    return {row["customer_id"]: row["revenue"] for row in table.to_pylist()}


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 1, day, hour)


def test_rates_by_date_staleness_and_half_even_rounding(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        ("t1", "same_day", at(5), Decimal("100.00"), "EUR"),
        ("t2", "two_days_old", at(7), Decimal("10.01"), "EUR"),  # 11.011 -> 11.01
        ("t3", "newer_rate", at(9), Decimal("10.00"), "EUR"),  # 1.20 from Jan 8
        ("t4", "half_even", at(5), Decimal("0.15"), "eur"),  # 0.165 -> 0.16 (half-up: 0.17)
        ("t5", "yen", at(2), Decimal("1500.00"), "JPY"),  # 1500 x 0.0067 = 10.05
        ("t6", "usd", at(3), Decimal("7.00"), "USD"),  # reporting currency: never looked up
        ("t7", "stale", at(20), Decimal("10.00"), "EUR"),  # Jan 8 rate is 12 days old
        ("t8", "no_rate_yet", at(3), Decimal("1.00"), "EUR"),  # before the first EUR rate
        ("t9", "unknown_currency", at(5), Decimal("5.00"), "GBP"),
        ("t10", "fractional_yen", at(5), Decimal("100.50"), "JPY"),
    ]
    result = run(spark, tmp_path, rows)
    assert revenue_by_customer(result) == {
        "same_day": Decimal("110.00"),
        "two_days_old": Decimal("11.01"),
        "newer_rate": Decimal("12.00"),
        "half_even": Decimal("0.16"),
        "yen": Decimal("10.05"),
        "usd": Decimal("7.00"),
    }
    assert result.counts.rejected("stale_fx_rate") == 1
    assert result.counts.rejected("missing_fx_rate") == 2
    assert result.counts.rejected("invalid_amount") == 1
    assert result.counts.valid_rows == 6


def test_every_minor_unit_converts_and_no_source_money_is_rounded(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Three- and four-decimal currencies convert; money (amount and cost) with more
    decimals than its currency has is refused, never rounded."""
    schema = TX_SCHEMA.replace("decimal(18,2)", "decimal(18,4)") + ", cost decimal(18,4)"
    rates = [
        ("KWD", date(2024, 1, 4), Decimal("3.25")),
        ("CLF", date(2024, 1, 4), Decimal("40.5")),
    ]
    rows = [
        ("k1", "kwd", at(5), Decimal("12.345"), "KWD", Decimal("1.001")),  # 40.12125 -> 40.12
        ("k2", "kwd_beyond", at(5), Decimal("12.3456"), "KWD", None),
        ("c1", "clf", at(5), Decimal("1.2345"), "CLF", None),  # 49.99725 -> 50.00
        ("u1", "usd_beyond", at(5), Decimal("12.345"), "USD", None),
        ("u2", "bad_cost", at(5), Decimal("10.00"), "USD", Decimal("1.234")),
        ("u3", "usd", at(5), Decimal("10.00"), "USD", Decimal("4.00")),
        ("j1", "yen_cost", at(5), Decimal("100"), "JPY", Decimal("0.5")),
    ]
    result = run(spark, tmp_path, rows, "metrics.include=[margin]", schema=schema, rates_rows=rates)
    assert revenue_by_customer(result) == {
        "kwd": Decimal("40.12"),
        "clf": Decimal("50.00"),
        "usd": Decimal("10.00"),
    }
    assert result.counts.rejected("invalid_amount") == 2
    assert result.counts.rejected("invalid_cost") == 2
    assert result.counts.rejected("missing_fx_rate") == 0
    quarantined = DeltaTable(result.table_path(contract.QUARANTINED_TRANSACTIONS))
    reasons = {r["transaction_id"]: r["reason"] for r in quarantined.to_pyarrow_table().to_pylist()}
    assert reasons == {
        "k2": "invalid_amount",
        "u1": "invalid_amount",
        "u2": "invalid_cost",
        "j1": "invalid_cost",
    }


def test_zero_decimal_reporting_currency_rounds_to_whole_units(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        ("t1", "a", at(5), Decimal("1.01"), "USD"),  # 1.01 x 150.5 = 152.005 -> 152
        ("t2", "b", at(5), Decimal("2.50"), "USD"),  # 376.25 -> 376
        ("t3", "c", at(5), Decimal("300.00"), "JPY"),
    ]
    lake = write_lake(spark.createDataFrame(rows, TX_SCHEMA), tmp_path / "lake")
    rates = write_rates(spark, tmp_path / "rates", [("USD", date(2024, 1, 5), Decimal("150.5"))])
    config = load_config(
        None,
        [
            f"source.path={lake}",
            f"output.path={tmp_path / 'out'}",
            "periods.grains=[month]",
            "revenue.reporting_currency=JPY",
            "quality.max_quarantine_fraction=1",
            f"revenue.fx_rates.path={rates}",
            "revenue.fx_rates.columns={currency: ccy, rate_date: day, rate: to_usd}",
        ],
    )
    result = run_segmentation(spark, config)
    assert revenue_by_customer(result) == {
        "a": Decimal("152.00"),
        "b": Decimal("376.00"),
        "c": Decimal("300.00"),
    }


def test_fail_on_missing_fx_writes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    rows = [
        ("t1", "a", at(5), Decimal("10.00"), "USD"),
        ("t2", "b", at(5), Decimal("10.00"), "GBP"),
    ]
    with pytest.raises(RunError, match=r"1 transaction\(s\) have no usable FX rate"):
        run(spark, tmp_path, rows, "revenue.fail_on_missing_fx=true")
    segments = DeltaTable(str(tmp_path / "out" / contract.CUSTOMER_SEGMENTS))
    assert segments.version() == 0 and segments.to_pyarrow_table().num_rows == 0  # created only


def test_rates_table_problems_are_named(spark: SparkSession, tmp_path: Path) -> None:
    rows = [("t1", "a", at(5), Decimal("10.00"), "EUR")]
    lake = write_lake(spark.createDataFrame(rows, TX_SCHEMA), tmp_path / "lake")
    rates = write_rates(
        spark,
        tmp_path / "rates",
        [("EUR", date(2024, 1, 5), Decimal("1.1")), ("EUR", date(2024, 1, 5), Decimal("1.2"))],
    )
    base = [f"source.path={lake}", f"output.path={tmp_path / 'out'}"]
    mapped = "revenue.fx_rates.columns={currency: ccy, rate_date: day, rate: to_usd}"
    with pytest.raises(SourceError, match="2 different rates for EUR on 2024-01-05"):
        run_segmentation(
            spark, load_config(None, [*base, f"revenue.fx_rates.path={rates}", mapped])
        )
    with pytest.raises(
        SourceError, match=r"no column 'currency'.*revenue.fx_rates.columns.currency"
    ):
        run_segmentation(spark, load_config(None, [*base, f"revenue.fx_rates.path={rates}"]))
