"""Delta helpers (`revseg.io.delta_tables`) that a shared platform session stresses: the
write settings, which must never fail a run, whatever the session allows."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from revseg.io.delta_tables import session_settings


def test_session_settings_are_restored_and_a_refused_one_is_not_an_error(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    """`spark.sql.warehouse.dir` is static: Spark refuses to set it in a running session,
    as a shared platform session refuses settings it keeps for itself."""
    spark.conf.set("spark.sql.files.maxRecordsPerFile", "7")
    static = spark.conf.get("spark.sql.warehouse.dir")
    settings = {
        "parquet.enable.dictionary": "false",  # unset before: unset again after
        "spark.sql.files.maxRecordsPerFile": "9",  # set before: restored after
        "spark.sql.warehouse.dir": "/elsewhere",  # refused: kept
    }
    with caplog.at_level("INFO", logger="revseg"), session_settings(spark, settings):
        assert spark.conf.get("parquet.enable.dictionary") == "false"
        assert spark.conf.get("spark.sql.files.maxRecordsPerFile") == "9"
        assert spark.conf.get("spark.sql.warehouse.dir") == static
    assert spark.conf.get("parquet.enable.dictionary", None) is None
    assert spark.conf.get("spark.sql.files.maxRecordsPerFile") == "7"
    assert spark.conf.get("spark.sql.warehouse.dir") == static
    assert "could not set spark.sql.warehouse.dir" in caplog.text
    spark.conf.unset("spark.sql.files.maxRecordsPerFile")
