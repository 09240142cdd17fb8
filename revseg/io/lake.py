"""Write a transaction lake (the sample data) in the layouts revseg reads."""

from __future__ import annotations

from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from revseg.errors import RunError
from revseg.io.paths import redacting_logger

logger = redacting_logger(__name__)

LAKE_FORMATS = ("parquet", "delta", "csv", "json")


def write_lake(
    frame: DataFrame,
    path: str,
    fmt: str = "parquet",
    partition_column: str | None = "transaction_date",
    overwrite: bool = False,
) -> None:
    """Write `frame` partitioned Hive-style by `partition_column` (one directory per day;
    None: not partitioned).

    An existing path is left alone unless `overwrite` is given: a generator must never
    replace somebody's data by accident.
    """
    if fmt not in LAKE_FORMATS:
        raise RunError(f"--format must be one of {', '.join(LAKE_FORMATS)}, got {fmt!r}")
    local = Path(path)
    if "://" not in path and local.exists() and any(local.iterdir()) and not overwrite:
        raise RunError(f"{path} exists and is not empty; pass --overwrite to replace it")
    mode = "overwrite" if overwrite else "errorifexists"
    writer = frame.write.mode(mode).format(fmt)
    if partition_column is not None:
        writer = writer.partitionBy(partition_column)
    if fmt == "csv":
        writer = writer.option("header", "true")
    try:
        writer.save(path)
    except AnalysisException as err:
        if err.getCondition() == "PATH_ALREADY_EXISTS":
            raise RunError(f"{path} exists; pass --overwrite to replace it") from None
        raise
    logger.info("wrote a %s lake to %s", fmt, path)
