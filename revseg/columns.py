"""Columns by name, as a source spells them: exact quoting and case-insensitive lookup.

A source's columns are resolved to the canonical contract and type-checked where it is read
(`revseg.io.inputs`), once per run; the transforms then work on the resolved names.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    AtomicType,
    BinaryType,
    DateType,
    DecimalType,
    LongType,
    NumericType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from revseg.contract import CANONICAL_TYPES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from revseg.errors import SourceError

# The column in which Spark's CSV and JSON readers (PERMISSIVE mode) keep unparseable lines.
CORRUPT_RECORD = "_corrupt_record"


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
