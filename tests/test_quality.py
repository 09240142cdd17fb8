"""Bad input: the rest of a run is untouched by the rows it cannot count, every row is
counted or quarantined, and too many bad rows stop the run before anything is written.

Each kind of bad row and its reason: `tests/test_quarantine.py`; file-level problems (a
corrupt file, schema drift, a wrong column type, an empty source): `tests/io/test_source.py`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import RunError
from revseg.pipeline import run_segmentation
from tests.lakes import (
    AS_OF,
    STRICT,
    csv_lake,
    last_run,
    month_config,
    read_delta,
    segments,
    write_lake,
)


def test_bad_rows_leave_the_good_ones_alone(bad_run: Any) -> None:
    result, out = bad_run
    assert segments(out) == {
        ("a", "2024-01"): Decimal("100.00"),
        ("b", "2024-01"): Decimal("50.00"),
        ("c", "2024-01"): Decimal("10.00"),
    }
    counts = result.counts.logged()
    quarantined = read_delta(out / contract.QUARANTINED_TRANSACTIONS)
    # input rows = valid + quarantined (duplicates included): every row is somewhere
    assert counts["input_rows"] == 20 == counts["valid_rows"] + len(quarantined)
    assert counts["duplicate"] == 1


def test_guest_bucket_takes_rows_without_a_customer(spark: SparkSession, tmp_path: Path) -> None:
    lake = csv_lake(tmp_path)
    out = tmp_path / "out"
    run_segmentation(
        spark, month_config(lake, out, *STRICT, "quality.guest_customer_id=guest"), as_of=AS_OF
    )
    assert segments(out)[("guest", "2024-01")] == Decimal("5.00")
    reasons = {r["reason"] for r in read_delta(out / contract.QUARANTINED_TRANSACTIONS)}
    assert "missing_customer_id" not in reasons


def test_too_many_bad_rows_fail_before_anything_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = csv_lake(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(RunError, match=r"more than quality.max_quarantine_fraction \(5.0%\)"):
        run_segmentation(spark, month_config(lake, out), as_of=AS_OF)
    assert DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).version() == 0  # never written
    assert not (out / contract.QUARANTINED_TRANSACTIONS).exists()  # made by its first write
    (run,) = read_delta(out / contract.RUNS)
    assert run["status"] == "failed" and "max_quarantine_fraction" in run["error"]


def test_every_row_and_cent_reconciles_with_five_percent_faults(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A generated lake with about 1% each of five faults: every row is counted or
    quarantined with the fault's reason, and the revenue written is the clean rows' sum."""
    from revseg.sample import SampleSpec, sample_transactions

    spec = SampleSpec(
        rows=5000, customers=300, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=4, plain=True
    )
    clean = sample_transactions(spark, spec).withColumn(
        "fault", F.pmod(F.xxhash64("transaction_id"), F.lit(100))
    )
    fault = F.col("fault")
    faulty = clean.withColumns(
        {
            "customer_id": F.when(fault == 0, F.lit(None)).otherwise(F.col("customer_id")),
            "amount": F.when(fault == 1, F.lit(None)).otherwise(F.col("amount")),
            "transaction_ts": F.when(fault == 2, F.lit(None)).otherwise(F.col("transaction_ts")),
            "currency": F.when(fault == 3, F.lit("XYZ")).otherwise(F.col("currency")),
        }
    )
    copies = faulty.where(fault == 4)  # delivered twice
    lake = write_lake(faulty.unionByName(copies).drop("fault"), tmp_path / "lake")
    reasons = ["missing_customer_id", "missing_amount", "missing_timestamp", "missing_fx_rate"]
    tally = clean.agg(
        *[F.count(F.when(fault == k, 1)).alias(r) for k, r in enumerate(reasons)],
        F.count(F.when(fault == 4, 1)).alias("duplicate"),
        F.sum(F.when(fault >= 4, F.col("amount"))).alias("clean_revenue"),
    ).first()
    assert tally is not None
    expected = {r: tally[r] for r in (*reasons, "duplicate")}
    clean_revenue = tally["clean_revenue"]
    assert 0.04 < sum(expected.values()) / spec.rows < 0.07

    out = tmp_path / "out"
    result = run_segmentation(
        spark, month_config(lake, out, "quality.max_quarantine_fraction=0.1", fmt="parquet")
    )
    counts = result.counts.logged()
    assert {r: counts[r] for r in expected} == expected
    quarantined = read_delta(out / contract.QUARANTINED_TRANSACTIONS)
    by_reason = {r: sum(q["reason"] == r for q in quarantined) for r in expected}
    assert by_reason == expected and len(quarantined) == sum(expected.values())
    assert counts["input_rows"] == spec.rows + expected["duplicate"]
    assert counts["input_rows"] == counts["valid_rows"] + len(quarantined)
    written = sum(r["revenue"] for r in read_delta(out / contract.CUSTOMER_SEGMENTS))
    assert written == clean_revenue  # to the cent
    run = last_run(out)
    assert dict(run["valid_revenue"])["month"] == dict(run["written_revenue"])["month"] == written
