"""The inputs of a run, read and checked once: the transaction source and the FX rates.

A run reads its source's schema, resolves and type-checks its columns, and reads, conforms
and checks the FX rates here, before any table is touched; everything after works on the
frames and values this returns (the rates' checks are the only Spark jobs here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DecimalType, StringType

from revseg.columns import check_column_types, find_column, quoted, resolve_columns
from revseg.config import FX_COLUMNS, FxRatesConfig, SourceConfig
from revseg.errors import SourceError
from revseg.io.changes import InputIdentity, fx_date_fingerprints, source_listing
from revseg.io.source import read_source
from revseg.quality import normalised_currency

RATE = DecimalType(19, 12)  # 7 integer digits, 12 decimals: amount x rate stays exact
FX_TYPES = {"currency": StringType(), "rate_date": DateType(), "rate": RATE}


def conform_rates(rates: DataFrame, columns: Mapping[str, str], path: str) -> DataFrame:
    """currency, rate_date, rate from the FX table, typed; fails naming a missing column."""
    selected = []
    for canonical in FX_COLUMNS:
        wanted = columns.get(canonical, canonical)
        column = find_column(rates.columns, wanted)
        if column is None:
            raise SourceError(
                f"revenue.fx_rates: the table {path} has no column {wanted!r} for the "
                f"{canonical} (set revenue.fx_rates.columns.{canonical}); its columns are: "
                f"{', '.join(sorted(rates.columns))}"
            )
        selected.append(quoted(column).try_cast(FX_TYPES[canonical]).alias(canonical))
    typed = rates.select(*selected)
    return typed.select(normalised_currency().alias("currency"), "rate_date", "rate")


@dataclass(frozen=True)
class FxRates:
    """The checked FX rates (currency, rate_date, rate), each currency's first rate date,
    the files they were read from, and a fingerprint of each date's rates (their content)."""

    rates: DataFrame
    first_dates: Mapping[str, date]
    files: tuple[str, ...]
    fingerprints: Mapping[str, str]


@dataclass(frozen=True)
class Inputs:
    """The source as read (not yet pruned) with its resolved columns and, for a Delta
    source, the version read; and the rates."""

    source: DataFrame
    columns: Mapping[str, str]  # canonical name -> the source's column
    rates: FxRates | None
    source_version: int | None = None

    def with_source(self, source: DataFrame) -> Inputs:
        """The same inputs with the source narrowed (pruned to the partitions a run needs)."""
        return Inputs(source, self.columns, self.rates, self.source_version)

    def files(self) -> list[str]:
        """The files a run reads (the source's and the rates')."""
        return [*self.source.inputFiles(), *(self.rates.files if self.rates else ())]

    def identity(self, spark: SparkSession, source: SourceConfig) -> InputIdentity:
        """What the run reads, by content (a listing of the source's files: one small job
        for a file source)."""
        return InputIdentity(
            source_listing(spark, source, self.source.inputFiles()),
            self.source_version,
            self.rates.fingerprints if self.rates else {},
        )


def read_inputs(
    spark: SparkSession,
    source: SourceConfig,
    fx_rates: FxRatesConfig | None,
    version: int | None = None,
) -> Inputs:
    """Read the source (its columns resolved and type-checked; a Delta source at `version`,
    so that the run reads exactly the version it records) and the FX rates (checked)."""
    frame = read_source(spark, source, corrupt_records=True, version=version)
    columns = resolve_columns(frame.columns, source.columns, source.location)
    check_column_types(frame.schema, columns, source.location)
    rates = read_rates(spark, fx_rates) if fx_rates is not None else None
    return Inputs(frame, columns, rates, version)


def read_rates(spark: SparkSession, table: FxRatesConfig) -> FxRates:
    """The FX rates as (currency, rate_date, rate), checked, with each currency's first date."""
    raw = read_source(spark, table, key="revenue.fx_rates")
    rates = conform_rates(raw, table.columns, table.location)
    check_rates(rates, table.location)
    return FxRates(
        rates, first_rate_dates(rates), tuple(raw.inputFiles()), fx_date_fingerprints(rates)
    )


def check_rates(rates: DataFrame, path: str) -> None:
    """Fail on rows no conversion may use: no currency or date, a rate not above zero or
    out of range, or two different rates for one currency and date."""
    bad = rates.where(
        F.col("currency").isNull()
        | (F.col("currency") == "")
        | F.col("rate_date").isNull()
        | F.col("rate").isNull()
        | (F.col("rate") <= 0)
    )
    first_bad = bad.limit(1).collect()
    if first_bad:
        row = first_bad[0]
        raise SourceError(
            f"revenue.fx_rates: the table {path} has rows without a usable rate, e.g. "
            f"currency={row['currency']!r} rate_date={row['rate_date']} rate={row['rate']} "
            "(every row needs a currency, a date and a rate above 0 with at most 7 integer "
            "digits)"
        )
    clashes = (
        rates.groupBy("currency", "rate_date")
        .agg(F.countDistinct("rate").alias("rates"))
        .where(F.col("rates") > 1)
        .limit(1)
        .collect()
    )
    if clashes:
        row = clashes[0]
        raise SourceError(
            f"revenue.fx_rates: the table {path} has {row['rates']} different rates for "
            f"{row['currency']} on {row['rate_date']}; keep one rate per currency and date"
        )


def first_rate_dates(rates: DataFrame) -> dict[str, date]:
    """The earliest rate date of each currency: before it a rate is missing, after it
    (and beyond the staleness limit) it is stale."""
    rows = rates.groupBy("currency").agg(F.min("rate_date").alias("first")).collect()
    return {row["currency"]: row["first"] for row in rows}
