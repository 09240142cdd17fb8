"""Delta helpers (`revseg.io.delta_tables`) that a shared platform session stresses: the
write settings, which must never fail a run, whatever the session allows."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from revseg.io.delta_history import _replaced_periods
from revseg.io.delta_tables import period_predicate, session_settings


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
    try:
        with caplog.at_level("INFO", logger="revseg"), session_settings(spark, settings):
            assert spark.conf.get("parquet.enable.dictionary") == "false"
            assert spark.conf.get("spark.sql.files.maxRecordsPerFile") == "9"
            assert spark.conf.get("spark.sql.warehouse.dir") == static
        assert spark.conf.get("parquet.enable.dictionary", None) is None
        assert spark.conf.get("spark.sql.files.maxRecordsPerFile") == "7"
        assert spark.conf.get("spark.sql.warehouse.dir") == static
        assert "could not set spark.sql.warehouse.dir" in caplog.text
    finally:
        spark.conf.unset("spark.sql.files.maxRecordsPerFile")


def test_overlapping_writes_in_one_session_leave_its_settings_as_found(
    spark: SparkSession,
) -> None:
    """Two runs in threads of one session: A's write starts, B's starts, A's ends, B's
    ends. Restoring per block would leave B's value behind (B found A's); shared, the
    setting holds until the last block ends and the session's own value comes back."""
    key, settings = "parquet.enable.dictionary", {"parquet.enable.dictionary": "false"}
    assert spark.conf.get(key, None) is None
    a, b = session_settings(spark, settings), session_settings(spark, settings)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert spark.conf.get(key, None) == "false"  # B's write still runs
    b.__exit__(None, None, None)
    assert spark.conf.get(key, None) is None


def test_replaced_periods_are_read_back_from_revseg_predicates_only() -> None:
    """The periods a commit replaced, from the predicate Delta's history records for
    revseg's replaceWhere; any other predicate may have touched any period (None)."""
    assert _replaced_periods(period_predicate(["2024-02", "2024-Q1"])) == {"2024-02", "2024-Q1"}
    assert _replaced_periods(None) is None  # an append, a MERGE, a DELETE without one
    assert _replaced_periods("`period` IN ('2024-02') OR `period` IN ('2024-01')") is None
    assert _replaced_periods("`period` IN ('2024-02', x)") is None
    assert _replaced_periods("customer_id = 'c1'") is None
