"""One local Spark session with Delta for the whole suite, and the lakes and runs several
test modules share (built once per session; the plain helpers are in `tests/lakes.py`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# Loopback only, before any JVM starts.
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ.setdefault("TZ", "UTC")

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg.pipeline import run_segmentation
from revseg.sample import fx_rates, sample_transactions
from revseg.session import build_local_session
from tests.lakes import AS_OF, SPEC, STRICT, config_for, csv_lake, month_config, write_lake

# The suite's lakes are a few thousand rows: compiling generated code costs more than
# running it, so the tests' own session evaluates expressions interpreted (Spark's
# `NO_CODEGEN` test mode; a small run takes about 10 s instead of 17). The runs the tests
# start as processes (`revseg run`, spark-submit on the test cluster) use Spark's defaults,
# generated code included.
TEST_SPARK_SETTINGS = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    # The throughput collector: on two cores G1's concurrent work costs a small run ~10%.
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_local_session(TEST_SPARK_SETTINGS, app_name="revseg-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The realistic sample (currencies, refunds, test orders) with its FX table beside it,
    plus rows revseg must not count twice or at all: a duplicate and a currency without
    rates."""
    root = tmp_path_factory.mktemp("lake")
    frame = sample_transactions(spark, SPEC)
    first = frame.where(F.col("currency") == "USD").limit(1)
    extra = first.unionByName(
        first.withColumn("transaction_id", F.lit("CHF-1")).withColumn("currency", F.lit("CHF"))
    )
    fx_rates(spark, SPEC).write.parquet(str(root / "fx_rates"))
    return write_lake(frame.unionByName(extra), root / "transactions")


@pytest.fixture(scope="session")
def full_run(spark: SparkSession, lake: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run over the whole sample lake: (config, result)."""
    out = tmp_path_factory.mktemp("out")
    config = config_for(lake, out)
    return config, run_segmentation(spark, config)


@pytest.fixture(scope="session")
def bad_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run over the bad-input corpus (`tests/fixtures/bad_rows.csv`): (result, out)."""
    root = tmp_path_factory.mktemp("bad")
    out = root / "out"
    result = run_segmentation(spark, month_config(csv_lake(root), out, *STRICT), as_of=AS_OF)
    return result, out
