"""Bad input: every kind of row revseg cannot count goes to `quarantined_transactions` with
its reason, and the rest of the run is untouched; file-level problems stop the run with a
message that names the file or column, and leave every table at its version."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.config import Config, load_config
from revseg.errors import RunError, SourceError
from revseg.pipeline import run_segmentation
from tests.conftest import write_lake

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = date(2024, 1, 31)

# transaction_id in bad_rows.csv -> the reason revseg must give it
EXPECTED_REASONS = {
    "k-missing-customer": "missing_customer_id",
    None: "missing_transaction_id",
    "k-invalid-amount": "invalid_amount",
    "k-sub-cent": "invalid_amount",
    "k-missing-amount": "missing_amount",
    "k-missing-ts": "missing_timestamp",
    "k-invalid-ts": "invalid_timestamp",
    "k-before-min": "before_min_date",
    "k-after-as-of": "after_as_of_date",
    "k-too-large": "amount_out_of_range",
    "k-unknown-ccy": "missing_fx_rate",
    "k-missing-ccy": "missing_currency",
    "k-test-order": "excluded_type",
    "k-unknown-type": "unknown_transaction_type",
    "v1": "duplicate",
    "k-too-many-fields": "malformed",
    "k-too-few-fields": "malformed",
}
STRICT = (
    "quality.min_date=2020-01-01",
    "quality.max_abs_amount=1000000",
    "quality.quarantine_excluded=true",
    "quality.max_quarantine_fraction=1",
)


def csv_lake(root: Path) -> str:
    day = root / "transactions" / "transaction_date=2024-01-15"
    day.mkdir(parents=True)
    shutil.copy(FIXTURES / "bad_rows.csv", day / "part-0.csv")
    return str(root / "transactions")


def config(lake: str, out: Path, *overrides: str, fmt: str = "csv") -> Config:
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"source.format={fmt}",
            f"output.path={out}",
            "periods.grains=[month]",
            *overrides,
        ],
    )


def read(path: Path | str) -> list[dict[str, Any]]:
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def segments(out: Path) -> dict[tuple[str, str], Decimal]:
    return {
        (r["customer_id"], r["period"]): r["revenue"]
        for r in read(out / contract.CUSTOMER_SEGMENTS)
    }


@pytest.fixture(scope="module")
def bad_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("bad")
    out = root / "out"
    result = run_segmentation(spark, config(csv_lake(root), out, *STRICT), as_of=AS_OF)
    return result, out


@pytest.mark.parametrize("transaction_id", list(EXPECTED_REASONS), ids=str)
def test_each_bad_row_is_quarantined_with_its_reason(bad_run: Any, transaction_id: str) -> None:
    result, out = bad_run
    rows = [
        r
        for r in read(out / contract.QUARANTINED_TRANSACTIONS)
        if r["transaction_id"] == transaction_id
    ]
    assert [r["reason"] for r in rows] == [EXPECTED_REASONS[transaction_id]]
    (row,) = rows
    assert row["run_id"] == result.run_id and row["run_date"] is not None
    assert row["source_file"].endswith("part-0.csv")
    if row["reason"] != "malformed":  # the row as read, every column, as JSON
        record = json.loads(row["source_record"])
        assert record.get("transaction_id") == transaction_id
        assert record["transaction_date"] == "2024-01-15"
    else:  # the line as it was in the file
        assert row["source_record"].startswith(transaction_id)


def test_bad_rows_leave_the_good_ones_alone(bad_run: Any) -> None:
    result, out = bad_run
    assert segments(out) == {
        ("a", "2024-01"): Decimal("100.00"),
        ("b", "2024-01"): Decimal("50.00"),
        ("c", "2024-01"): Decimal("10.00"),
    }
    counts = result.counts
    quarantined = read(out / contract.QUARANTINED_TRANSACTIONS)
    # input rows = valid + quarantined (duplicates included): every row is somewhere
    assert counts["input_rows"] == 20 == counts["valid_rows"] + len(quarantined)
    assert counts["duplicate"] == 1


def test_guest_bucket_takes_rows_without_a_customer(spark: SparkSession, tmp_path: Path) -> None:
    lake = csv_lake(tmp_path)
    out = tmp_path / "out"
    run_segmentation(
        spark, config(lake, out, *STRICT, "quality.guest_customer_id=guest"), as_of=AS_OF
    )
    assert segments(out)[("guest", "2024-01")] == Decimal("5.00")
    reasons = {r["reason"] for r in read(out / contract.QUARANTINED_TRANSACTIONS)}
    assert "missing_customer_id" not in reasons


def test_too_many_bad_rows_fail_before_anything_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = csv_lake(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(RunError, match=r"more than quality.max_quarantine_fraction \(5.0%\)"):
        run_segmentation(spark, config(lake, out), as_of=AS_OF)
    assert DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).version() == 0  # never written
    assert not (out / contract.QUARANTINED_TRANSACTIONS).exists()  # made by its first write
    (run,) = read(out / contract.RUNS)
    assert run["status"] == "failed" and "max_quarantine_fraction" in run["error"]


# --- file-level problems: a clear error, and every table stays at its version -----------


def good_rows(spark: SparkSession, amount_type: str = "decimal(18,2)") -> Any:
    rows = [
        ("g1", "a", datetime(2024, 1, 5, 10), "100.00"),
        ("g2", "b", datetime(2024, 1, 6, 10), "40.00"),
    ]
    frame = spark.createDataFrame(
        rows, "transaction_id string, customer_id string, transaction_ts timestamp, amount string"
    )
    return frame.withColumn("amount", F.col("amount").cast(amount_type)).withColumn(
        "currency", F.lit("USD")
    )


@pytest.fixture(scope="module")
def baseline_template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("baseline")
    lake = write_lake(good_rows(spark), root / "lake")
    run_segmentation(spark, config(lake, root / "out", fmt="parquet"))
    return root


@pytest.fixture
def baseline(baseline_template: Path, tmp_path: Path) -> Any:
    """A lake of good rows and the tables of a successful run over it (a copy per test:
    Delta tables keep relative file paths, so a copied table is the same table)."""
    shutil.copytree(baseline_template / "lake", tmp_path / "lake")
    shutil.copytree(baseline_template / "out", tmp_path / "out")
    return tmp_path / "lake", tmp_path / "out"


def versions(out: Path) -> dict[str, int]:
    """The data tables' versions (a failed run adds its row to the run log only)."""
    data = (c for c in contract.ALL_TABLES if c != contract.RUNS)
    return {t: DeltaTable(str(out / t)).version() for t in data if (out / t).exists()}


def last_run(out: Path) -> dict[str, Any]:
    return max(read(out / contract.RUNS), key=lambda r: r["finished_at"])


def test_corrupt_parquet_file_is_named(spark: SparkSession, baseline: Any) -> None:
    lake, out = baseline
    before = versions(out)
    bad = lake / "transaction_date=2024-01-07"
    bad.mkdir()
    (bad / "part-00000-broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceError, match=r"cannot read the file \S+part-00000-broken.parquet"):
        run_segmentation(spark, config(str(lake), out, fmt="parquet"))
    assert versions(out) == before
    run = last_run(out)
    assert run["status"] == "failed" and "part-00000-broken.parquet" in run["error"]


def test_schema_drift_between_partitions_is_named(spark: SparkSession, baseline: Any) -> None:
    lake, out = baseline
    before = versions(out)
    drifted = good_rows(spark, "string").withColumn("transaction_id", F.lit("d1"))
    drifted.write.parquet(str(lake / "transaction_date=2024-01-08"))
    with pytest.raises(SourceError, match=r"stores column 'amount' as BINARY.*drifts"):
        run_segmentation(spark, config(str(lake), out, fmt="parquet"))
    assert versions(out) == before
    assert last_run(out)["status"] == "failed"


def test_wrong_column_type_is_named(spark: SparkSession, tmp_path: Path, baseline: Any) -> None:
    _, out = baseline
    before = versions(out)
    frame = good_rows(spark).withColumn("amount", F.array(F.col("amount")))
    lake = write_lake(frame, tmp_path / "arrays")
    with pytest.raises(SourceError, match=r"column 'amount'.*array"):
        run_segmentation(spark, config(lake, out, fmt="parquet"))
    assert versions(out) == before


def test_empty_source_directory(spark: SparkSession, tmp_path: Path, baseline: Any) -> None:
    _, out = baseline
    before = versions(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"holds no readable parquet files"):
        run_segmentation(spark, config(str(tmp_path / "empty"), out, fmt="parquet"))
    assert versions(out) == before


def test_malformed_json_lines_are_quarantined(spark: SparkSession, tmp_path: Path) -> None:
    day = tmp_path / "lake" / "transaction_date=2024-01-15"
    day.mkdir(parents=True)
    good = (
        '{"transaction_id": "j1", "customer_id": "a", "transaction_ts": '
        '"2024-01-15T10:00:00Z", "amount": 12.5, "currency": "USD"}'
    )
    (day / "part-0.json").write_text(good + "\n" + '{"transaction_id": "j2", "customer_' + "\n")
    out = tmp_path / "out"
    run_segmentation(
        spark, config(str(tmp_path / "lake"), out, "quality.max_quarantine_fraction=1", fmt="json")
    )
    assert segments(out) == {("a", "2024-01"): Decimal("12.50")}
    (row,) = read(out / contract.QUARANTINED_TRANSACTIONS)
    assert row["reason"] == "malformed" and row["source_record"].startswith(
        '{"transaction_id": "j2"'
    )


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
        spark, config(lake, out, "quality.max_quarantine_fraction=0.1", fmt="parquet")
    )
    counts = result.counts
    assert {r: counts[r] for r in expected} == expected
    quarantined = read(out / contract.QUARANTINED_TRANSACTIONS)
    by_reason = {r: sum(q["reason"] == r for q in quarantined) for r in expected}
    assert by_reason == expected and len(quarantined) == sum(expected.values())
    assert counts["input_rows"] == spec.rows + expected["duplicate"]
    assert counts["input_rows"] == counts["valid_rows"] + len(quarantined)
    written = sum(r["revenue"] for r in read(out / contract.CUSTOMER_SEGMENTS))
    assert written == clean_revenue  # to the cent
    run = last_run(out)
    assert dict(run["valid_revenue"])["month"] == dict(run["written_revenue"])["month"] == written
