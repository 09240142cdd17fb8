"""The CLV tables: created up front, each replaced per `calibration_end` in one commit, and
read back from the committed version to check it holds what was computed.

A CLV run writes customer_clv, then clv_validation, then clv_models: a row in clv_models
says the calibration date's customers and validation are complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import ConcurrentWriteError, TableError
from revseg.io.delta_history import committed_version
from revseg.io.delta_tables import (
    KEPT_HISTORY,
    PLAIN_ENCODING,
    ensure_properties,
    ensure_table,
    replace_where,
)
from revseg.io.table_ref import Outputs

_SCHEMAS = {
    contract.CUSTOMER_CLV: contract.CUSTOMER_CLV_SCHEMA,
    contract.CLV_VALIDATION: contract.CLV_VALIDATION_SCHEMA,
    contract.CLV_MODELS: contract.CLV_MODELS_SCHEMA,
}


def ensure_clv_tables(spark: SparkSession, outputs: Outputs, meaning: Mapping[str, str]) -> None:
    """Create the three CLV tables if absent (a foreign table there stops the run before any
    work), recording the settings that decide what a purchase day is (`meaning`)."""
    for name in contract.CLV_TABLES:
        table = outputs.table(name)
        found = ensure_table(spark, table, _SCHEMAS[name], contract.CLV_PARTITIONS)
        ensure_properties(spark, table, found, meaning, KEPT_HISTORY)


class Committed(NamedTuple):
    """A table's commit for one calibration date: its version and the rows it holds."""

    version: int
    rows: int


def replace_calibration(
    spark: SparkSession,
    outputs: Outputs,
    name: str,
    frame: DataFrame,
    calibration_end: date,
    run_id: str,
    expected_rows: int | None = None,
) -> Committed:
    """Replace the table's rows of `calibration_end` with `frame` in one commit; read the
    committed version back and fail if it does not hold `expected_rows` rows there (rows
    -1: not counted)."""
    table = outputs.table(name)
    predicate = _predicate(calibration_end)
    shaped = frame.select(*_SCHEMAS[name].fieldNames())
    replace_where(
        shaped,
        table,
        predicate,
        f"calibration_end {calibration_end}",
        contract.CLV_PARTITIONS,
        run_id,
        parquet_settings=PLAIN_ENCODING if name == contract.CUSTOMER_CLV else None,
    )
    version = committed_version(spark, table, run_id)
    if expected_rows is None:
        return Committed(version, -1)
    rows = (
        table.read(spark, version).where(F.col("calibration_end") == F.lit(calibration_end)).count()
    )
    if rows != expected_rows:
        raise TableError(
            f"{table} version {version} holds {rows} rows for calibration_end "
            f"{calibration_end}, but run {run_id} computed {expected_rows}: another writer "
            "may have replaced them; run the CLV again"
        )
    return Committed(version, rows)


def customer_totals(
    spark: SparkSession, outputs: Outputs, version: int, calibration_end: date
) -> tuple[int, int]:
    """customer_clv at `version`: the customers of `calibration_end` and their calibration
    revenue in cents (the reconciliation reads these back)."""
    row = (
        outputs.table(contract.CUSTOMER_CLV)
        .read(spark, version)
        .where(F.col("calibration_end") == F.lit(calibration_end))
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.coalesce(F.sum((F.col("calibration_revenue") * 100).cast("long")), F.lit(0)).alias(
                "cents"
            ),
        )
        .first()
    )
    return (0, 0) if row is None else (int(row["customers"]), int(row["cents"]))


def _predicate(calibration_end: date) -> str:
    return f"calibration_end = DATE'{calibration_end.isoformat()}'"


def clear_calibration(
    spark: SparkSession, outputs: Outputs, name: str, calibration_end: date
) -> None:
    """Delete the table's rows of `calibration_end` (Delta's DELETE; nothing when none)."""
    table = outputs.table(name)
    if table.read(spark).where(F.col("calibration_end") == F.lit(calibration_end)).isEmpty():
        return
    spark.sql(f"DELETE FROM {table.sql} WHERE {_predicate(calibration_end)}")


def check_alone(spark: SparkSession, outputs: Outputs, calibration_end: date, run_id: str) -> None:
    """After the last commit: the date's rows of all three tables are this run's, as the
    tables are now; another CLV run of the same date committing in between fails this one
    (its rows and this run's would be mixed)."""
    found: set[str] = set()
    for name in contract.CLV_TABLES:
        rows = (
            outputs.table(name)
            .read(spark)
            .where(F.col("calibration_end") == F.lit(calibration_end))
            .select("run_id")
            .distinct()
            .collect()
        )
        found |= {row["run_id"] for row in rows}
    others = sorted(found - {run_id})
    if others:
        raise ConcurrentWriteError(
            f"CLV run(s) {', '.join(others)} wrote calibration_end {calibration_end} while run "
            f"{run_id} did: the tables hold rows of both. Run the CLV of that date again."
        )
