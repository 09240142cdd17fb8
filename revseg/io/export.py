"""`revseg export`: a table as plain files, for tools that cannot read Delta."""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import ConfigError, TableError
from revseg.io.delta_history import latest_version
from revseg.io.delta_tables import is_delta_table
from revseg.io.table_ref import Outputs

EXPORT_FORMATS = ("csv", "parquet")


def export_current(
    spark: SparkSession,
    outputs: Outputs,
    out: str,
    fmt: str,
    grain: str | None = None,
    overwrite: bool = False,
) -> tuple[int, int]:
    """Write customer_current_segment (its latest version; one grain with `grain`) to `out`
    as one file of `fmt` (csv with a header) in a directory; (rows, table version)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format: {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    table = outputs.table(contract.CUSTOMER_CURRENT_SEGMENT)
    if not is_delta_table(spark, table):
        raise TableError(
            f"no {contract.CUSTOMER_CURRENT_SEGMENT} table at {table}: a revseg run with "
            "insights.customer_current_segment: true (opt-in) writes it"
        )
    version = latest_version(spark, table)
    frame = table.read(spark, version)
    if grain is not None:
        frame = frame.where(F.col("period_grain") == grain)
    frame = frame.orderBy("period_grain", "customer_id").coalesce(1)
    rows = frame.count()
    if grain is not None and rows == 0:
        raise ConfigError(f"--grain {grain}: {table} has no rows of that grain")
    writer = frame.write.mode("overwrite" if overwrite else "errorifexists")
    try:
        if fmt == "csv":
            writer.option("header", True).csv(out)
        else:
            writer.parquet(out)
    except AnalysisException as err:
        if "already exists" in str(err).lower() or "PATH_ALREADY_EXISTS" in str(err):
            raise ConfigError(
                f"--out {out} exists: choose another path or pass --overwrite"
            ) from None
        raise
    return rows, version
