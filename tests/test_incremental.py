"""`revseg run --incremental`: which days changed since the last run of every period, and
the periods recomputed for them; checked against a full run of the same final input. The
days a change affects, in plain Python: `tests/io/test_changes.py`."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.config import Config, load_config
from revseg.periods import make_grains, plan_changed_days
from revseg.pipeline import run_segmentation
from revseg.sample import SampleSpec, sample_transactions

GRAINS = "[week, month, quarter, year, rolling_3m]"
LATE_DAY = date(2024, 2, 14)
REWRITTEN_DAY = date(2024, 5, 20)


def config(lake: str, out: Path, fmt: str = "parquet", *overrides: str) -> Config:
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"source.format={fmt}",
            f"output.path={out}",
            f"periods.grains={GRAINS}",
            "quality.max_quarantine_fraction=1",
            *overrides,
        ],
    )


def sample(spark: SparkSession) -> DataFrame:
    spec = SampleSpec(
        rows=2_000, customers=200, start=date(2024, 1, 1), end=date(2024, 7, 31), plain=True
    )
    return sample_transactions(spark, spec).withColumn(
        "transaction_date", F.to_date("transaction_ts")
    )


def write_days(frame: DataFrame, lake: Path, mode: str, fmt: str = "parquet") -> None:
    writer = frame.write.format(fmt).mode(mode).partitionBy("transaction_date")
    if mode == "overwrite" and fmt == "parquet":
        writer = writer.option("partitionOverwriteMode", "dynamic")
    writer.save(str(lake))


def segments(out: Path) -> list[tuple[Any, ...]]:
    """customer_segments, without tenure_days: tenure counts from the first transaction in
    the months a run reads, so a partial run may differ there by design."""
    rows = DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).to_pyarrow_table().to_pylist()
    return sorted(tuple(v for k, v in sorted(row.items()) if k != "tenure_days") for row in rows)


def test_late_and_rewritten_partitions_recompute_exactly_their_periods(
    spark: SparkSession, tmp_path: Path
) -> None:
    transactions = sample(spark).persist()
    late = F.col("transaction_date") == F.lit(LATE_DAY)
    lake, out = tmp_path / "lake", tmp_path / "out"
    write_days(transactions.where(~late), lake, "overwrite")
    first = run_segmentation(spark, config(str(lake), out))
    assert first.status == "succeeded"

    # A day arrives late, another day's partition is rewritten with changed amounts.
    write_days(transactions.where(late), lake, "append")
    rewritten = F.col("transaction_date") == F.lit(REWRITTEN_DAY)
    changed = transactions.where(rewritten).withColumn(
        "amount", (F.col("amount") * 2).cast("decimal(18,2)")
    )
    write_days(changed, lake, "overwrite")

    second = run_segmentation(spark, config(str(lake), out), incremental=True)
    assert second.status == "succeeded"
    assert second.note is not None and "2024-02-14, 2024-05-20" in second.note
    grains = make_grains(("week",))
    weeks = {grains[0].label((d - date(1970, 1, 1)).days - (d.weekday())) for d in _near_days()}
    assert {g: set(p) for g, p in second.periods.items()} == {
        "week": weeks,
        "month": {"2024-02", "2024-05"},
        "quarter": {"2024-Q1", "2024-Q2"},
        "year": {"2024"},
        # windows containing February or May, up to the last month of data (July)
        "rolling_3m": {f"L3M-2024-{m:02d}" for m in (3, 4, 5, 6, 7)},
    }

    # The result equals a full run over the same final lake.
    reference = tmp_path / "reference"
    run_segmentation(spark, config(str(lake), reference))
    assert segments(out) == segments(reference)
    assert _boundaries(out) == _boundaries(reference)

    log = DeltaTable(str(out / contract.RUNS)).to_pyarrow_table().to_pylist()
    scopes = {r["run_id"]: json.loads(r["source_read"])["scope"] for r in log}
    assert scopes == {first.run_id: "all", second.run_id: "incremental"}
    transactions.unpersist()


def _near_days() -> list[date]:
    """The changed partition days and their neighbours (rows of a lake day may fall on the
    day before or after in periods.timezone)."""
    return [
        date.fromordinal(d.toordinal() + shift)
        for d in (LATE_DAY, REWRITTEN_DAY)
        for shift in (-1, 0, 1)
    ]


def _boundaries(out: Path) -> list[tuple[Any, ...]]:
    rows = DeltaTable(str(out / contract.TIER_BOUNDARIES)).to_pyarrow_table().to_pylist()
    return sorted((r["period"], r["segment"], r["customers"], r["revenue"]) for r in rows)


def test_delta_source_changes_including_deletion_vectors(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        ("t1", "a", datetime(2024, 1, 5, 10), Decimal("100.00")),
        ("t2", "b", datetime(2024, 2, 9, 10), Decimal("40.00")),
        ("t3", "a", datetime(2024, 3, 3, 10), Decimal("70.00")),
        ("t4", "c", datetime(2024, 4, 4, 10), Decimal("5.00")),
        ("t5", "c", datetime(2024, 4, 10, 10), Decimal("6.00")),
        ("t6", "d", datetime(2024, 4, 10, 12), Decimal("8.00")),
    ]
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)",
    ).withColumns({"currency": F.lit("USD"), "transaction_date": F.to_date("transaction_ts")})
    lake, out = tmp_path / "lake", tmp_path / "out"
    frame.write.format("delta").partitionBy("transaction_date").save(str(lake))
    spark.sql(
        f"ALTER TABLE delta.`{lake}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    cfg = config(str(lake), out, "delta", "periods.grains=[month, quarter]")
    run_segmentation(spark, cfg)

    # A deletion vector keeps the file: only the Delta log shows which day changed.
    files = set(spark.read.format("delta").load(str(lake)).inputFiles())
    spark.sql(f"DELETE FROM delta.`{lake}` WHERE transaction_id = 't5'")
    assert set(spark.read.format("delta").load(str(lake)).inputFiles()) == files
    second = run_segmentation(spark, cfg, incremental=True)
    assert second.note is not None and "2024-04-10" in second.note
    assert second.periods == {"month": ("2024-04",), "quarter": ("2024-Q2",)}
    revenue = {
        (r["period"], r["customer_id"]): r["revenue"]
        for r in DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).to_pyarrow_table().to_pylist()
    }
    assert revenue[("2024-04", "c")] == Decimal("5.00")
    assert revenue[("2024-04", "d")] == Decimal("8.00")
    assert revenue[("2024-01", "a")] == Decimal("100.00")

    # A config change since the last run: every period, said so.
    other = config(str(lake), out, "delta", "periods.grains=[month]")
    third = run_segmentation(spark, other, incremental=True)
    assert third.note is not None and third.note.startswith("every period, since run ")
    assert "another config" in third.note
    assert third.periods == {"month": ("2024-01", "2024-02", "2024-03", "2024-04")}

    # A new day whose rows all fail validation: its periods have no valid rows and are not
    # in the tables, so there is nothing to write, and the run says so.
    bad = spark.createDataFrame(
        [("t9", None, datetime(2025, 6, 1, 10), Decimal("9.00"))],
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)",
    ).withColumns({"currency": F.lit("USD"), "transaction_date": F.to_date("transaction_ts")})
    bad.write.format("delta").mode("append").save(str(lake))
    fourth = run_segmentation(spark, other, incremental=True)
    assert fourth.status == "succeeded" and fourth.periods == {}
    assert fourth.note is not None and "nothing to write" in fourth.note
    fifth = run_segmentation(spark, other, incremental=True)
    assert fifth.status == "skipped" and fifth.same_as == fourth.run_id


def test_plan_for_changed_days_writes_only_their_periods() -> None:
    grains = make_grains(("week", "month", "quarter", "fiscal_year", "rolling_12m"), 7)
    plan = plan_changed_days(grains, [date(2024, 1, 31), date(2024, 6, 3)])
    assert plan.periods["week"] == ("2024-W05", "2024-W23")
    assert plan.periods["month"] == ("2024-01", "2024-06")
    assert plan.periods["quarter"] == ("2024-Q1", "2024-Q2")
    assert plan.periods["fiscal_year"] == ("FY2024",)  # July 2023 to June 2024
    windows = plan.periods["rolling_12m"]
    assert windows[0] == "L12M-2024-01" and windows[-1] == "L12M-2025-05" and len(windows) == 17
    # read: the fiscal year and every window's months, as one merged range
    assert [(str(a), str(b)) for a, b in plan.read_ranges] == [("2023-02", "2025-05")]
    months_only = plan_changed_days(make_grains(("month",)), [date(2024, 1, 31), date(2024, 6, 3)])
    assert [(str(a), str(b)) for a, b in months_only.read_ranges] == [
        ("2024-01", "2024-01"),
        ("2024-06", "2024-06"),
    ]
