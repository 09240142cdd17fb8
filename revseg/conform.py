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
    AtomicType,
    BinaryType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    NumericType,
    ShortType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from revseg.contract import CANONICAL_TYPES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from revseg.errors import SourceError

# Canonical columns whose raw text is kept, so that unparseable values can be told apart.
RAW_CHECKED = ("amount", "transaction_ts")
# The column in which Spark's CSV and JSON readers (PERMISSIVE mode) keep unparseable lines.
CORRUPT_RECORD = "_corrupt_record"


def raw_name(canonical: str) -> str:
    return f"_raw_{canonical}"


def quoted(name: str) -> Column:
    """A column by its exact name: dots, backticks and other characters are not
    interpreted (a backtick in the name is doubled, as Spark's quoting requires)."""
    escaped = name.replace("`", "``")
    return F.col(f"`{escaped}`")


def find_column(available: list[str], wanted: str) -> str | None:
    """The column called `wanted`: an exact match first, then one in any case."""
    if wanted in available:
        return wanted
    return {c.lower(): c for c in available}.get(wanted.lower())


def resolve_columns(
    available: list[str], mapping: Mapping[str, str], source_path: str
) -> dict[str, str]:
    """The source column for each canonical column present; fails on a missing required one."""
    resolved: dict[str, str] = {}
    for canonical in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        wanted = mapping.get(canonical, canonical)
        column = find_column(available, wanted)
        if column is not None:
            resolved[canonical] = column
        elif canonical in REQUIRED_COLUMNS:
            how = (
                f"mapped by source.columns.{canonical}"
                if canonical in mapping
                else f"set source.columns.{canonical} to the source's name for it"
            )
            raise SourceError(
                f"required column {canonical!r} not found: the source {source_path} has no "
                f"column {wanted!r} ({how}); its columns are: {', '.join(sorted(available))}"
            )
        elif canonical in mapping:
            raise SourceError(
                f"column {wanted!r} (source.columns.{canonical}) not found in the source "
                f"{source_path}; its columns are: {', '.join(sorted(available))}"
            )
    return resolved


def check_column_types(schema: StructType, columns: Mapping[str, str], source_path: str) -> None:
    """Each mapped source column has a type its canonical column can be read from: nested
    and binary columns cannot be, and would otherwise fail deep inside Spark."""
    types = {f.name: f.dataType for f in schema.fields}
    for canonical, column in columns.items():
        found = types[column]
        target = CANONICAL_TYPES[canonical]
        if isinstance(target, TimestampType):
            ok = isinstance(found, TimestampType | TimestampNTZType | DateType | StringType)
            wanted = "a timestamp, date or text"
        elif isinstance(target, DecimalType | LongType):
            ok = isinstance(found, NumericType | StringType)
            wanted = "a number or text"
        else:
            ok = isinstance(found, AtomicType) and not isinstance(found, BinaryType)
            wanted = "text or a number"
        if not ok:
            raise SourceError(
                f"column {column!r} of the source {source_path} is of type "
                f"{found.simpleString()}; revseg reads it as {canonical} "
                f"({target.simpleString()}), which needs {wanted}: map "
                f"source.columns.{canonical} to another column, or fix the source"
            )


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
        column = columns[canonical]
        raw = (
            F.lit(None).cast("string")
            if cast_is_exact(types[column], canonical)
            else quoted(column).cast("string")
        )
        selected.append(raw.alias(raw_name(canonical)))
    if CORRUPT_RECORD in source.columns:
        selected.append(quoted(CORRUPT_RECORD).alias("_malformed"))
    else:
        selected.append(F.lit(None).cast("string").alias("_malformed"))
    if keep_source:
        as_read = [quoted(c) for c in source.columns if c != CORRUPT_RECORD]
        selected.append(F.struct(*as_read).alias("_source"))
        selected.append(source_file(source).alias("_source_file"))
    return source.select(*selected)


def source_file(source: DataFrame) -> Column:
    """The file a row was read from: the file source's `_metadata.file_path`."""
    try:
        source.select(F.col("_metadata.file_path")).schema  # noqa: B018 -- resolves it
        return F.col("_metadata.file_path")
    except AnalysisException:  # a source without file metadata
        return F.lit(None).cast("string")
