"""The rows a report draws, read from the summary tables (never the customer-level ones):
each table filtered to one grain, a few hundred rows per table, collected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import RevsegError
from revseg.io.delta_tables import is_delta_table
from revseg.io.table_ref import Outputs
from revseg.report import ReportData, render

REPORT_FILE = "report.html"


def report_data(
    spark: SparkSession,
    outputs: Outputs,
    grain: str,
    segments: Sequence[str],
    groups: Sequence[str],
) -> ReportData:
    """The summary tables' rows of `grain`, and the latest CLV calibration's models."""
    boundaries = outputs.table(contract.TIER_BOUNDARIES)
    if not is_delta_table(spark, boundaries):
        raise RevsegError(
            f"there is no {contract.TIER_BOUNDARIES} table at {boundaries}: run `revseg run` "
            "with this config first"
        )
    notes = []
    if groups:
        notes.append(
            f"Tiers are cut within {', '.join(groups)}: the tier plots add the groups up; "
            "concentration is drawn per group."
        )
    models, validation = _latest_clv(spark, outputs)
    return ReportData(
        grain=grain,
        segments=tuple(segments),
        boundaries=_rows(boundaries.read(spark), grain),
        summaries=_optional(spark, outputs, contract.SEGMENT_SUMMARY, grain),
        migrations=_optional(spark, outputs, contract.TIER_MIGRATIONS, grain),
        concentration=_optional(spark, outputs, contract.CONCENTRATION, grain),
        clv_models=models,
        clv_validation=validation,
        groups=tuple(groups),
        title=f"revseg report: {outputs}, by {grain}",
        notes=tuple(notes),
    )


def write_report(data: ReportData, out: str | Path) -> Path:
    """Render the page into `out` (a directory, created if needed); its path."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / REPORT_FILE
    page.write_text(render(data), encoding="utf-8")
    return page


def _rows(frame: DataFrame, grain: str) -> tuple[dict[str, Any], ...]:
    found = frame.where(F.col("period_grain") == grain).collect()
    return tuple(row.asDict(recursive=True) for row in found)


def _optional(
    spark: SparkSession, outputs: Outputs, name: str, grain: str
) -> tuple[dict[str, Any], ...]:
    table = outputs.table(name)
    return _rows(table.read(spark), grain) if is_delta_table(spark, table) else ()


def _latest_clv(
    spark: SparkSession, outputs: Outputs
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    models = outputs.table(contract.CLV_MODELS)
    if not is_delta_table(spark, models):
        return (), ()
    frame = models.read(spark)
    latest = frame.agg(F.max("calibration_end").alias("latest")).first()
    if latest is None or latest["latest"] is None:
        return (), ()
    day = F.lit(latest["latest"])
    fitted = tuple(
        r.asDict(recursive=True) for r in frame.where(F.col("calibration_end") == day).collect()
    )
    validation = outputs.table(contract.CLV_VALIDATION)
    checked: tuple[dict[str, Any], ...] = ()
    if is_delta_table(spark, validation):
        rows = validation.read(spark).where(
            (F.col("calibration_end") == day) & F.col("kind").isin("tracking", "frequency")
        )
        checked = tuple(r.asDict(recursive=True) for r in rows.collect())
    return fitted, checked
