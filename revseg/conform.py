"""Conform: map a source's columns to the canonical transaction contract and cast them.

Casting uses `try_cast`, so a value that does not parse becomes null instead of failing
the whole job; the validation stage then tells "missing" from "did not parse" by looking
at the raw value kept beside the typed one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    IntegralType,
    ShortType,
    TimestampType,
)

from revseg.columns import CORRUPT_RECORD, quoted
from revseg.contract import CANONICAL_TYPES

# Canonical columns whose raw text is kept, so that unparseable values can be told apart.
RAW_CHECKED = ("amount", "cost", "transaction_ts")


def raw_name(canonical: str) -> str:
    return f"_raw_{canonical}"


def cast_is_exact(source_type: DataType, canonical: str) -> bool:
    """The source type always casts to the canonical one without failing or rounding."""
    target = CANONICAL_TYPES[canonical]
    if isinstance(target, DecimalType):
        if isinstance(source_type, DecimalType):
            return source_type.scale <= target.scale and (
                source_type.precision - source_type.scale <= target.precision - target.scale
            )
        return isinstance(source_type, ByteType | ShortType | IntegerType)
    if isinstance(target, TimestampType):
        return isinstance(source_type, TimestampType | DateType)
    return source_type == target


def cast_never_rounds(source_type: DataType, canonical: str) -> bool:
    """The cast to the canonical type can fail (overflow) but never round: whole numbers
    and decimals with no more decimals than the canonical type (decimal(18,2) money)."""
    target = CANONICAL_TYPES[canonical]
    if isinstance(target, DecimalType) and isinstance(source_type, DecimalType):
        return source_type.scale <= target.scale
    return isinstance(target, DecimalType) and isinstance(source_type, IntegralType)


def conform_transactions(
    source: DataFrame, columns: Mapping[str, str], keep_source: bool = False
) -> DataFrame:
    """Canonical, typed columns (plus raw text of the checked ones) from resolved columns.

    `columns` maps canonical names to the source's columns (see `resolve_columns`).
    Optional canonical columns absent from the source come out as typed nulls. The raw text
    is kept only where the cast can fail or round (text, doubles, wider decimals): typed
    Parquet pays nothing for the checks. `_malformed` is the reader's corrupt-record text.
    `keep_source` adds the row as read (`_source`, a struct) and its file (`_source_file`),
    for quarantine.
    """
    selected: list[Column] = []
    for canonical, dtype in CANONICAL_TYPES.items():
        if canonical in columns:
            selected.append(quoted(columns[canonical]).try_cast(dtype).alias(canonical))
        else:
            selected.append(F.lit(None).cast(dtype).alias(canonical))
    types = {field.name: field.dataType for field in source.schema.fields}
    for canonical in RAW_CHECKED:
        selected.append(
            _raw_text(columns, types, canonical, keep_source).alias(raw_name(canonical))
        )
    if CORRUPT_RECORD in source.columns:
        selected.append(quoted(CORRUPT_RECORD).alias("_malformed"))
    else:
        selected.append(F.lit(None).cast("string").alias("_malformed"))
    if keep_source:
        as_read = [quoted(c) for c in source.columns if c != CORRUPT_RECORD]
        selected.append(F.struct(*as_read).alias("_source"))
        selected.append(source_file(source).alias("_source_file"))
    return source.select(*selected)


def _raw_text(
    columns: Mapping[str, str], types: Mapping[str, DataType], canonical: str, always: bool
) -> Column:
    """The source's text of a checked column: for every row where the cast can round; only
    where it failed where it cannot round; none where it is exact (typed Parquet pays
    nothing). `always` (quarantine) keeps the text for every row, as the source wrote it."""
    if canonical not in columns:
        return F.lit(None).cast("string")
    column, source_type = quoted(columns[canonical]), types[columns[canonical]]
    if always or not (
        cast_is_exact(source_type, canonical) or cast_never_rounds(source_type, canonical)
    ):
        return column.cast("string")
    if cast_is_exact(source_type, canonical):
        return F.lit(None).cast("string")
    return F.when(column.try_cast(CANONICAL_TYPES[canonical]).isNull(), column.cast("string"))


def source_file(source: DataFrame) -> Column:
    """The file a row was read from: the file source's `_metadata.file_path`."""
    try:
        source.select(F.col("_metadata.file_path")).schema  # noqa: B018 -- resolves it
        return F.col("_metadata.file_path")
    except AnalysisException:  # a source without file metadata
        return F.lit(None).cast("string")
