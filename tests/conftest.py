"""One local Spark session with Delta for the whole suite, and small-lake helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Loopback only, before any JVM starts.
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ.setdefault("TZ", "UTC")

from pyspark.sql import DataFrame, SparkSession

from revseg.session import build_local_session

TEST_SPARK_SETTINGS = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_local_session(TEST_SPARK_SETTINGS, app_name="revseg-tests")
    yield session
    session.stop()


def write_lake(frame: DataFrame, path: Path, fmt: str = "parquet") -> str:
    """Write rows as a Hive-partitioned lake (by transaction_date, from the UTC timestamp)."""
    from pyspark.sql import functions as F

    if "transaction_date" not in frame.columns:
        frame = frame.withColumn("transaction_date", F.to_date("transaction_ts"))
    writer = frame.write.mode("overwrite").partitionBy("transaction_date").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(str(path))
    return str(path)
