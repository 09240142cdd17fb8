"""Reading the source (`revseg.io.source`): date partitions pruned to the months a run
needs, and file-level problems (a missing path, a corrupt file, schema drift, a wrong column
type, an empty directory) stopping the run with a message that names the file or column,
every table left at its version."""

from __future__ import annotations

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
from revseg.errors import SourceError
from revseg.io.source import prune_to_days, read_source
from revseg.periods import Month
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, last_run, month_config, write_lake


def test_month_run_reads_only_needed_partitions(spark: SparkSession, lake: str) -> None:
    config = config_for(lake, Path("/unused"))
    source = read_source(spark, config.source)
    pruned = prune_to_days(source, config.source, date(2024, 2, 29), date(2024, 4, 1))
    plan = pruned._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [" in plan and "transaction_date" in plan
    read = pruned.select(F.input_file_name().alias("f")).distinct().collect()
    days = {r["f"].split("transaction_date=")[1].split("/")[0] for r in read}
    assert min(days) == "2024-02-29" and max(days) == "2024-04-01"
    assert len(days) == 33


def test_missing_source_path(spark: SparkSession, tmp_path: Path) -> None:
    config = config_for(str(tmp_path / "nowhere"), tmp_path / "out")
    with pytest.raises(SourceError, match=r"source.path .* does not exist"):
        run_segmentation(spark, config)


def test_integer_date_partition_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    frame = spark.createDataFrame(
        [("t1", "a", datetime(2024, 1, 5), Decimal("1.00"), "USD", 20240105)],
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), currency string, transaction_date int",
    )
    lake = write_lake(frame, tmp_path / "lake")
    config = config_for(lake, tmp_path / "out")
    with pytest.raises(SourceError, match=r"source.date_partition column 'transaction_date' is"):
        run_segmentation(spark, config, Month.parse("2024-01"), Month.parse("2024-01"))


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
    run_segmentation(spark, month_config(lake, root / "out", fmt="parquet"))
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


def test_corrupt_parquet_file_is_named(spark: SparkSession, baseline: Any) -> None:
    lake, out = baseline
    before = versions(out)
    bad = lake / "transaction_date=2024-01-07"
    bad.mkdir()
    (bad / "part-00000-broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceError, match=r"cannot read the file \S+part-00000-broken.parquet"):
        run_segmentation(spark, month_config(str(lake), out, fmt="parquet"))
    assert versions(out) == before
    run = last_run(out)
    assert run["status"] == "failed" and "part-00000-broken.parquet" in run["error"]


def test_schema_drift_between_partitions_is_named(spark: SparkSession, baseline: Any) -> None:
    lake, out = baseline
    before = versions(out)
    drifted = good_rows(spark, "string").withColumn("transaction_id", F.lit("d1"))
    drifted.write.parquet(str(lake / "transaction_date=2024-01-08"))
    with pytest.raises(SourceError, match=r"stores column 'amount' as BINARY.*drifts"):
        run_segmentation(spark, month_config(str(lake), out, fmt="parquet"))
    assert versions(out) == before
    assert last_run(out)["status"] == "failed"


def test_wrong_column_type_is_named(spark: SparkSession, tmp_path: Path, baseline: Any) -> None:
    _, out = baseline
    before = versions(out)
    frame = good_rows(spark).withColumn("amount", F.array(F.col("amount")))
    lake = write_lake(frame, tmp_path / "arrays")
    with pytest.raises(SourceError, match=r"column 'amount'.*array"):
        run_segmentation(spark, month_config(lake, out, fmt="parquet"))
    assert versions(out) == before


def test_empty_source_directory(spark: SparkSession, tmp_path: Path, baseline: Any) -> None:
    _, out = baseline
    before = versions(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"holds no readable parquet files"):
        run_segmentation(spark, month_config(str(tmp_path / "empty"), out, fmt="parquet"))
    assert versions(out) == before
