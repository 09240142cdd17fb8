"""The whole job through Spark Connect, as Databricks serverless and standard access mode
run it: `revseg run` with `spark.remote` set starts a local Spark Connect server with
Delta (pyspark's own), and its tables must be those of a classic run on the same lake.

The run is a process of its own: a local Connect server is a JVM of its own, and this
process already has the suite's classic session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from revseg import contract
from tests.lakes import ANY_SHARE_QUARANTINED, SMALL_RUN_SETTINGS, fx_beside, naive, read_delta

REPO = Path(__file__).resolve().parents[1]
# Columns that name the run rather than what it computed.
RUN_COLUMNS = {"run_id", "run_date"}


def rows(path: Path, grain: str | None = None) -> list[tuple[Any, ...]]:
    """A table's rows (delta-rs), without the run's own columns, in a stable order; those
    of one period grain if given (and the table has grains)."""
    found = [
        tuple((k, naive(v)) for k, v in sorted(row.items()) if k not in RUN_COLUMNS)
        for row in read_delta(path)
        if grain is None or row.get("period_grain", grain) == grain
    ]
    return sorted(found, key=repr)


def connect_run(lake: str, out: Path) -> subprocess.CompletedProcess[str]:
    settings = {
        "source.path": lake,
        "output.path": str(out),
        ANY_SHARE_QUARANTINED.split("=")[0]: ANY_SHARE_QUARANTINED.split("=")[1],
        **dict(item.split("=", 1) for item in fx_beside(lake)),
        "periods.grains": "[month]",  # the classic run's month rows are compared
        "spark.spark.remote": "local[2]",
        "spark.spark.sql.shuffle.partitions": "2",
        "spark.spark.driver.memory": "1g",
        "spark.spark.ui.enabled": "false",
        **{f"spark.{key}": value for key, value in SMALL_RUN_SETTINGS.items()},
    }
    sets = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return subprocess.run(
        [sys.executable, "-m", "revseg", "run", *sets],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_run_through_spark_connect_writes_what_a_classic_run_writes(
    full_run: Any, lake: str, tmp_path: Path
) -> None:
    config, classic = full_run
    assert classic.status == "succeeded"
    out = tmp_path / "out"
    done = connect_run(lake, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Spark Connect" in done.stderr
    assert "revseg run r000001-" in done.stdout and " succeeded" in done.stdout
    classic_out = Path(str(config.output.path))
    for table in (
        contract.CUSTOMER_SEGMENTS,
        contract.TIER_BOUNDARIES,
        contract.QUARANTINED_TRANSACTIONS,
    ):
        expected = rows(classic_out / table, "month")
        assert expected, table
        assert rows(out / table) == expected, table
    (run,) = read_delta(out / contract.RUNS)
    assert run["status"] == "succeeded"
    logged = dict(run["row_counts"])
    assert logged == {k: v for k, v in classic.counts.logged().items() if k in logged}
    assert logged["input_rows"] == classic.counts.input_rows


def test_the_clv_through_spark_connect(spark: SparkSession, tmp_path: Path) -> None:
    """`revseg clv` through a local Spark Connect server on the CDNOW lake: the pandas
    functions, Arrow and the observations work there, and the published estimates come
    out. (Connect's client cannot join two frames that carry the same observation: the
    CLV's plan has no such join.)"""
    from tests.test_clv_pipeline import SCHEMA, cdnow_rows

    lake = tmp_path / "lake"
    spark.createDataFrame(cdnow_rows(), SCHEMA).coalesce(1).write.parquet(str(lake))
    settings = {
        "source.path": str(lake),
        "source.date_partition": "null",
        "output.path": str(tmp_path / "out"),
        "spark.spark.remote": "local[2]",
        "spark.spark.sql.shuffle.partitions": "2",
        "spark.spark.driver.memory": "1g",
        "spark.spark.ui.enabled": "false",
        **{f"spark.{key}": value for key, value in SMALL_RUN_SETTINGS.items()},
    }
    sets = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    done = subprocess.run(
        [sys.executable, "-m", "revseg", "clv", *sets, "--calibration-end", "1997-09-30"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Spark Connect" in done.stderr
    assert "bgnbd        r 0.2426 (se 0.0126), alpha 4.4136" in done.stdout
    assert len(read_delta(tmp_path / "out" / contract.CUSTOMER_CLV)) == 2357
