"""One local Spark session with Delta for the whole suite, and the lakes and runs several
test modules share (built once per session; the plain helpers are in `tests/lakes.py`)."""

from __future__ import annotations

import fcntl
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
from tests.lakes import (
    AS_OF,
    SMALL_RUN_SETTINGS,
    SPEC,
    STRICT,
    config_for,
    csv_lake,
    month_config,
    write_lake,
)

TEST_SPARK_SETTINGS = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    **SMALL_RUN_SETTINGS,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start processes of their own (the standalone cluster, the killed
    runs, the Spark Connect server) go first: with two workers (`scripts/test.sh`), the
    short tests then fill in beside them instead of one of them running alone at the end."""
    slow = ("test_cluster.py", "test_crash_and_concurrency.py", "test_connect.py")
    items.sort(key=lambda item: 0 if item.path.name in slow else 1)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    # One session start at a time on the machine: the first resolves Delta's jars into
    # the Ivy cache (which has no lock of its own), the others find them there.
    lock = tmp_path_factory.getbasetemp().parent / "spark-session.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        session = build_local_session(TEST_SPARK_SETTINGS, app_name="revseg-tests")
        fcntl.flock(held, fcntl.LOCK_UN)
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


# the opt-in summary tables too: the run the table tests read
EVERY_TABLE = (
    "insights.segment_summary=true",
    "insights.tier_migrations=true",
    "insights.customer_current_segment=true",
)


@pytest.fixture(scope="session")
def full_run(spark: SparkSession, lake: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run over the whole sample lake: (config, result)."""
    out = tmp_path_factory.mktemp("out")
    config = config_for(lake, out, *EVERY_TABLE)
    return config, run_segmentation(spark, config)


@pytest.fixture(scope="session")
def bad_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run over the bad-input corpus (`tests/fixtures/bad_rows.csv`): (result, out)."""
    root = tmp_path_factory.mktemp("bad")
    out = root / "out"
    result = run_segmentation(spark, month_config(csv_lake(root), out, *STRICT), as_of=AS_OF)
    return result, out
