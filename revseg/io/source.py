"""Read the transaction source, pruned to the partitions a run needs."""

from __future__ import annotations

import re
from datetime import date, timedelta

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from revseg.columns import CORRUPT_RECORD, quoted
from revseg.config import InputTable, SourceConfig
from revseg.errors import SourceError
from revseg.io.paths import qualify, redact, redacting_logger
from revseg.io.table_ref import quoted_name
from revseg.names import name_parts
from revseg.periods import PeriodPlan

logger = redacting_logger(__name__)

_DEFAULT_OPTIONS = {
    "csv": {"header": "true", "mode": "PERMISSIVE"},
    "json": {"mode": "PERMISSIVE"},
}


def read_source(
    spark: SparkSession,
    source: InputTable,
    key: str = "source",
    corrupt_records: bool = False,
    version: int | None = None,
) -> DataFrame:
    """The source (or another input table, named by its config `key`) as Spark reads it
    (a Delta table at `version`, if given), with a clear error when the path cannot be read.

    With `corrupt_records`, a CSV or JSON source has the column `_corrupt_record`, holding
    the text of each line Spark could not parse (PERMISSIVE mode); other lines have null.
    """
    options = {**_DEFAULT_OPTIONS.get(source.format, {}), **source.options}
    if source.table is not None:  # a catalog table: its format is the catalog's
        reader = spark.read.options(**source.options)
    else:
        reader = spark.read.format(source.format).options(**options)
    if version is not None and source.format == "delta":
        reader = reader.option("versionAsOf", version)
    try:
        if source.table is not None:
            frame = reader.table(quoted_name(name_parts(source.table, f"{key}.table")))
        else:
            frame = reader.load(qualify(source.path or ""))
        # resolves the files now (Spark Connect analyses lazily), so errors surface here
        frame.schema  # noqa: B018
        if corrupt_records and source.format in _DEFAULT_OPTIONS and source.path is not None:
            frame = _with_corrupt_record_column(reader, frame, qualify(source.path))
    except AnalysisException as err:
        raise SourceError(_explain_read_error(source, err, key)) from None
    return frame


def _with_corrupt_record_column(reader: DataFrameReader, frame: DataFrame, path: str) -> DataFrame:
    """Re-read with the inferred schema plus `_corrupt_record` (Spark adds it to JSON only
    when inference met a bad line, and never to CSV)."""
    if CORRUPT_RECORD in frame.columns:
        return frame
    schema = StructType([*frame.schema.fields, StructField(CORRUPT_RECORD, StringType())])
    return reader.schema(schema).option("columnNameOfCorruptRecord", CORRUPT_RECORD).load(path)


def prune_to_days(
    frame: DataFrame, source: SourceConfig, first: date, last: date, *more: tuple[date, date]
) -> DataFrame:
    """Keep only the date partitions in [first, last] (and in each further (first, last)
    range), and those whose value is no date (`__HIVE_DEFAULT_PARTITION__`, a null): a
    partition filter Spark prunes on. Rows of a partition that names no day may fall on
    any day, so every run reads them, as a full run does.

    Without a date partition column the whole source is read (and a warning says so).
    """
    column = source.date_partition
    if column is None or column not in frame.columns:
        logger.warning(
            "source %s has no date partition column %r (source.date_partition): "
            "the whole source is read and filtered row by row",
            redact(source.location),
            column,
        )
        return frame
    kind = frame.schema[column].dataType.typeName()
    if kind not in ("date", "string", "timestamp", "timestamp_ntz"):
        raise SourceError(
            f"source.date_partition column {column!r} is of type {kind}; revseg prunes on "
            "dates (values such as 2024-03-31): set source.date_partition to a date column, "
            "or null to read the whole source"
        )
    day = quoted(column).try_cast("date")
    wanted = day.isNull() | day.between(F.lit(first), F.lit(last))
    for low, high in more:
        wanted = wanted | day.between(F.lit(low), F.lit(high))
    return frame.where(wanted)


def prune_to_plan(
    frame: DataFrame, source: SourceConfig, plan: PeriodPlan | None, reach_days: int = 0
) -> DataFrame:
    """The source, pruned to the date partitions a run of `plan` needs (None: all; lazy).

    One day either side: the lake is partitioned by date in its own time zone, periods are
    cut in periods.timezone; rows outside the months are dropped later. Refunds attributed
    to their sale also need the sales before the range and the refunds after it, up to
    `reach_days` away.
    """
    if plan is None:
        return frame
    margin = timedelta(days=1 + reach_days)
    days = [(low.first_day() - margin, high.last_day() + margin) for low, high in plan.read_ranges]
    return prune_to_days(frame, source, *days[0], *days[1:])


def _explain_read_error(source: InputTable, err: AnalysisException, key: str) -> str:
    condition = err.getCondition() or ""
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else condition
    where = (
        f"{key}.path {source.path!r}"
        if source.path is not None
        else f"{key}.table {source.table!r}"
    )
    if condition in ("PATH_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND"):
        return f"{where} does not exist"
    if condition == "UNABLE_TO_INFER_SCHEMA":
        return (
            f"{where} holds no readable {source.format} files "
            f"(is it empty, or is {key}.format wrong?)"
        )
    if source.format == "delta" and "DELTA_MISSING_DELTA_TABLE" in condition:
        return f"{where} is not a Delta table ({key}.format is delta)"
    return f"cannot read {where} as {source.format}: {first_line}"


_FAILED_FILE = re.compile(
    r"\[FAILED_READ_FILE\.(?P<kind>[A-Z_]+)\][^\n]*?reading file (?P<file>\S+?)\.?\s"
)
_TYPE_MISMATCH = re.compile(
    r"Parquet column \[(?P<column>[^\]]+)\]\. Expected Spark type (?P<expected>\S+?), "
    r"actual Parquet type (?P<actual>\S+?)\."
)


def explain_read_failure(err: Exception, key: str = "source") -> SourceError | None:
    """A clear error for a job that failed reading a file of the source (a corrupt file, or
    one whose column types differ from the rest); None for any other failure."""
    text = str(err)
    found = _FAILED_FILE.search(text)
    if found is None:
        return None
    path = redact(found.group("file"))
    mismatch = _TYPE_MISMATCH.search(text)
    if mismatch is not None:
        return SourceError(
            f"{key}: the file {path} stores column {mismatch.group('column')!r} as "
            f"{mismatch.group('actual')}, while the source's schema (from its other files) has "
            f"{mismatch.group('expected')}: the schema drifts between partitions. Rewrite that "
            "file with the common type; nothing was written"
        )
    return SourceError(
        f"{key}: cannot read the file {path} ({found.group('kind').lower()}: corrupt, "
        "truncated or not in the source's format). Remove or replace it; nothing was written"
    )
