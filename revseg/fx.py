"""Currency conversion: each transaction at the rate of its own local date.

Rates come from a small table (currency, date, rate to the reporting currency). A rate
holds on its date and for up to `fx_max_staleness_days` days after, until a newer rate
replaces it. That turns the lookup into an equality join on (currency, day) against a
short, dense table that Spark broadcasts: never a range join over the transactions.

Amounts stay exact through the multiplication (decimal(18,2) x decimal(19,12) fits
decimal(38,14) without loss) and are rounded once per transaction, half-even, to the
reporting currency's minor unit. Every total is then a sum of those rounded amounts, so
customer rows, tier boundaries and the run's counts add up to each other to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from revseg.contract import MONEY
from revseg.money import minor_unit
from revseg.quality import domestic_only, normalised_currency
from revseg.reasons import MISSING_FX_RATE, STALE_FX_RATE


def effective_rates(rates: DataFrame, max_staleness_days: int) -> DataFrame:
    """(currency, day) -> rate for every day a rate may be used.

    A rate applies on its own date and the `max_staleness_days` days after it, but never
    past the day before the currency's next rate.
    """
    following = F.lead("rate_date").over(Window.partitionBy("currency").orderBy("rate_date"))
    stale_after = F.date_add("rate_date", max_staleness_days)
    until = F.when(following.isNull(), stale_after).otherwise(
        F.least(stale_after, F.date_sub(following, 1))
    )
    spans = rates.distinct().withColumn("until", until)
    return spans.select(
        F.col("currency").alias("fx_currency"),
        F.explode(F.sequence("rate_date", "until")).alias("rate_day"),
        F.col("rate").alias("fx_rate"),
    )


def convert(
    transactions: DataFrame,
    reporting_currency: str,
    day: Column,
    usable: DataFrame | None = None,
    first_dates: Mapping[str, date] | None = None,
) -> DataFrame:
    """Adds `reporting_amount`, `reporting_cost` and `fx_problem` (missing_fx_rate,
    stale_fx_rate or null).

    Rows in the reporting currency keep their amount (rate 1 by definition, never looked
    up). Others convert at the usable rate of their day (`effective_rates`), rounded
    half-even once to the reporting currency's minor unit; without one the amount is null
    and `fx_problem` says why. `usable` None: there is no rates table, so every other
    currency lacks a rate.
    """
    if usable is None:
        return transactions.withColumns(domestic_only(reporting_currency))
    keyed = transactions.select(
        "*", normalised_currency().alias("_fx_currency"), day.alias("_fx_day")
    )
    joined = keyed.join(
        F.broadcast(usable),
        (F.col("_fx_currency") == F.col("fx_currency")) & (F.col("_fx_day") == F.col("rate_day")),
        "left",
    )
    is_domestic = F.col("_fx_currency") == F.lit(reporting_currency)
    scale = minor_unit(reporting_currency)

    def converted(money: str) -> Column:
        value = F.bround(F.col(money) * F.col("fx_rate"), scale).try_cast(MONEY)
        return F.when(is_domestic, F.col(money).try_cast(MONEY)).otherwise(value)

    known = sorted((first_dates or {}).items())
    first_known = (
        F.create_map(*[F.lit(x) for pair in known for x in pair])[F.col("_fx_currency")]
        if known
        else F.lit(None).cast("date")
    )
    problem = (
        F.when(is_domestic | F.col("fx_rate").isNotNull(), F.lit(None).cast("string"))
        .when(first_known.isNotNull() & (F.col("_fx_day") >= first_known), STALE_FX_RATE)
        .otherwise(MISSING_FX_RATE)
    )
    return joined.select(
        *transactions.columns,
        converted("amount").alias("reporting_amount"),
        converted("cost").alias("reporting_cost"),
        problem.alias("fx_problem"),
    )
