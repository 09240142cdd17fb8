"""The notebook API (`import revseg`): `segment` returns what a run over the same rows
writes, and writes nothing; `run` is the job; the bundled notebook runs as it is."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import revseg
from revseg import contract
from tests.lakes import config_for, naive, read_delta

REPO = Path(__file__).resolve().parents[1]
RUN_COLUMNS = {"run_id", "run_date"}


def table_rows(path: Path) -> list[tuple[Any, ...]]:
    return sorted(
        (
            tuple((k, naive(v)) for k, v in sorted(row.items()) if k not in RUN_COLUMNS)
            for row in read_delta(path)
        ),
        key=repr,
    )


def frame_rows(frame: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(
        (
            tuple((k, v) for k, v in sorted(row.asDict().items()) if k not in RUN_COLUMNS)
            for row in frame.collect()
        ),
        key=repr,
    )


def fields(frame: DataFrame) -> list[tuple[str, str]]:
    """Names and types (a computed column may be non-null where the table allows null)."""
    return [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]


def test_segment_returns_what_a_run_writes_and_writes_nothing(
    spark: SparkSession, lake: str, full_run: Any, tmp_path: Path
) -> None:
    config, run = full_run
    written = Path(str(config.output.path))
    unwritten = tmp_path / "never"
    notebook_config = config_for(lake, unwritten)
    result = revseg.segment(spark.read.parquet(lake), notebook_config)

    assert not unwritten.exists()
    assert result.counts == run.counts
    assert result.periods == run.periods
    for frame, table in (
        (result.customer_segments, contract.CUSTOMER_SEGMENTS),
        (result.tier_boundaries, contract.TIER_BOUNDARIES),
        (result.quarantined_transactions, contract.QUARANTINED_TRANSACTIONS),
    ):
        stored = spark.read.format("delta").load(str(written / table))
        assert fields(frame) == fields(stored), table
        expected = table_rows(written / table)
        assert expected, table
        assert frame_rows(frame) == expected, table


def test_segment_maps_columns_and_checks_them(spark: SparkSession, lake: str) -> None:
    renamed = (
        spark.read.parquet(lake)
        .where(F.col("currency") == "USD")
        .withColumnRenamed("customer_id", "cust_no")
        .withColumnRenamed("amount", "net_amount")
    )
    mapping = {"source.columns": {"customer_id": "cust_no", "amount": "net_amount"}}
    config = revseg.load_config(
        overrides={**mapping, "periods.grains": ["year"], "quality.max_quarantine_fraction": 1}
    )
    result = revseg.segment(renamed, config)
    usd = spark.read.parquet(lake).where(F.col("currency") == "USD")
    sales = usd.where(F.coalesce(F.col("transaction_type"), F.lit("sale")) == "sale")
    assert result.customer_segments.count() >= sales.select("customer_id").distinct().count()

    with pytest.raises(revseg.RevsegError) as info:
        revseg.segment(renamed, revseg.load_config(overrides={"periods.grains": ["year"]}))
    assert "customer_id" in str(info.value)


def test_configs_from_the_package(tmp_path: Path) -> None:
    config = revseg.load_config(overrides={"periods.grains": ["month"], "output.path": "/o"})
    assert config.periods.grains == ("month",)
    same = revseg.Config.from_dict({"periods": {"grains": ["month"]}, "output": {"path": "/o"}})
    assert same == config
    with pytest.raises(revseg.ConfigError) as info:
        revseg.load_config(overrides={"tiers.levels": [{"name": "all", "fraction": 0.5}]})
    assert "tiers.levels" in str(info.value)


def test_run_is_the_job(spark: SparkSession, lake: str, tmp_path: Path) -> None:
    config = config_for(lake, tmp_path / "out", "periods.grains=[month]")
    result = revseg.run(config, spark=spark, from_month="2024-02", to_month="2024-02")
    assert result.status == "succeeded"
    assert result.periods == {"month": ("2024-02",)}
    (logged,) = read_delta(tmp_path / "out" / contract.RUNS)
    assert logged["run_id"] == result.run_id
    with pytest.raises(revseg.ConfigError) as info:
        revseg.run(config, spark=spark, from_month="2024-13")
    assert "from_month" in str(info.value)


def test_the_bundled_notebook_runs_as_it_is(spark: SparkSession) -> None:
    """Its cells in order, as Databricks runs the file (its `# MAGIC` lines are comments)."""
    found = runpy.run_path(str(REPO / "docs" / "notebooks" / "revseg_quickstart.py"))
    result = found["result"]
    assert isinstance(result, revseg.Segmentation)
    assert result.counts.by_reason["missing_fx_rate"] == 0
    year = result.tier_boundaries.where("period_grain = 'year'")
    assert {r["segment"] for r in year.collect()} >= {"platinum", "gold", "silver", "bronze"}


def test_stages_tag_their_spark_jobs(spark: SparkSession) -> None:
    """A stage's jobs carry its tag (the Spark UI shows it, `interruptTag` cancels them)."""
    from revseg.compute import StageTimer

    timer = StageTimer(spark)
    with timer("aggregate and cut points"):
        assert "revseg-stage-aggregate-and-cut-points" in spark.getTags()
    assert "revseg-stage-aggregate-and-cut-points" not in spark.getTags()
    assert "aggregate and cut points" in timer.seconds


def test_where_caching_is_refused_the_run_recomputes_and_says_so(
    spark: SparkSession,
    lake: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Databricks serverless refuses `persist`: the same results, a line in the log."""
    config = revseg.load_config(overrides={"periods.grains": ["year"], "revenue.fx_rates": None})
    january = (F.col("currency") == "USD") & (F.col("transaction_date") < "2024-02-01")
    transactions = spark.read.parquet(lake).where(january)
    cached = revseg.segment(transactions, config)

    def refused(self: DataFrame, *args: Any) -> DataFrame:
        raise RuntimeError("[NOT_SUPPORTED_WITH_SERVERLESS] PERSIST TABLE is not supported")

    monkeypatch.setattr(type(transactions), "persist", refused)  # classic or Connect class
    caplog.set_level("INFO", logger="revseg")
    uncached = revseg.segment(transactions, config)
    assert "is not cached ([NOT_SUPPORTED_WITH_SERVERLESS]" in caplog.text
    assert frame_rows(uncached.customer_segments) == frame_rows(cached.customer_segments)
    assert uncached.counts == cached.counts
