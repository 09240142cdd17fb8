"""The CLV tables: created up front, each replaced per `calibration_end` in one commit, and
read back from the committed version to check it holds what was computed.

A CLV run writes customer_clv, then clv_validation, then clv_models: a row in clv_models
says the calibration date's customers and validation are complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import ConcurrentWriteError, RunError, TableError
from revseg.io.delta_history import committed_version
from revseg.io.delta_tables import (
    KEPT_HISTORY,
    PLAIN_ENCODING,
    ensure_properties,
    ensure_table,
    replace_where,
)
from revseg.io.runs import now_utc
from revseg.io.table_ref import Outputs

if TYPE_CHECKING:  # plain values of the CLV's fits and validation
    from revseg.clv.fit import Fit
    from revseg.clv.validation import ValidationRow
    from revseg.config import ClvConfig

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


def write_calibration(
    spark: SparkSession,
    outputs: Outputs,
    clv: ClvConfig,
    end: date,
    run_id: str,
    frame: DataFrame,
    validation: list[ValidationRow],
    fits: list[Fit],
    summary_rows: dict[str, int],
    expected: tuple[int, int],
) -> dict[str, int]:
    """customer_clv (`frame`, in the table's shape; read back: its customers and
    calibration revenue must be the summary's), clv_validation (with a holdout), then
    clv_models."""
    versions = {}
    # The date is complete when clv_models has its rows: none until this run's are written.
    clear_calibration(spark, outputs, contract.CLV_MODELS, end)
    committed = replace_calibration(spark, outputs, contract.CUSTOMER_CLV, frame, end, run_id)
    versions[contract.CUSTOMER_CLV] = committed.version
    found = customer_totals(spark, outputs, committed.version, end)
    if found != expected:
        raise RunError(
            f"customer_clv version {committed.version} holds {found[0]} customers and "
            f"{found[1]} cents of calibration revenue for {end}, but the summary has "
            f"{expected[0]} and {expected[1]}: another writer may have replaced them; run "
            "the CLV again"
        )
    holdout = clv.holdout_end
    if holdout is None or not validation:
        # No holdout: an earlier run's validation of the date goes (an empty replaceWhere
        # into a date without rows makes no commit at all, so none is written)
        clear_calibration(spark, outputs, contract.CLV_VALIDATION, end)
    else:
        validation_frame = spark.createDataFrame(
            [
                (end, holdout, clv.purchase_model, *_validation_values(row), run_id)
                for row in validation
            ],
            contract.CLV_VALIDATION_SCHEMA,
        )
        versions[contract.CLV_VALIDATION] = replace_calibration(
            spark, outputs, contract.CLV_VALIDATION, validation_frame, end, run_id, len(validation)
        ).version
    fitted_at = now_utc()
    model_frame = spark.createDataFrame(
        [
            (
                run_id,
                f.model,
                end,
                holdout,
                clv.time_unit,
                f.customers,
                f.log_likelihood,
                f.converged,
                dict(f.parameters),
                dict(f.std_errors),
                f.method,
                summary_rows[f.model],
                clv.fingerprint(),
                fitted_at,
            )
            for f in fits
        ],
        contract.CLV_MODELS_SCHEMA,
    )
    versions[contract.CLV_MODELS] = replace_calibration(
        spark, outputs, contract.CLV_MODELS, model_frame, end, run_id, len(fits)
    ).version
    check_alone(spark, outputs, end, run_id)
    return versions


def _validation_values(row: ValidationRow) -> tuple[Any, ...]:
    return (
        row.kind,
        row.name,
        row.time_index,
        row.customers,
        row.actual,
        row.predicted,
        row.value,
    )
