"""The calibration summary on Spark: counted transactions -> purchase occasions -> one row
per customer (frequency, recency, T, monetary value) -> the few distinct rows the fits need.

An occasion is a local day (in `periods.timezone`) with at least one counted sale; its value
is the day's net revenue (the day's refunds netted in). A day with refunds only is no
occasion: its cents are counted apart (`refund_only_cents`), so every cent is accounted for.
Days are whole epoch days here; the time unit divides them only at the end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from revseg.periods import local_epoch_day

# The Gamma-Gamma rows group the repeat customers by frequency and by their mean value on a
# log grid of this width: means within 0.1% of each other share a row (their geometric mean
# stands for them), so the rows are bounded by the frequencies times the grid's span, never
# by the number of customers. The log-likelihood moves by far less than the fit's tolerance.
SPEND_GRID = 1e-3


def occasions(counted: DataFrame, timezone: str) -> DataFrame:
    """Counted transactions (one row per customer and transaction, partitioned by customer)
    -> one row per customer and local day: `day` (epoch day), `cents` (net), `sales`.

    Grouped by keys that start with `customer_id`, so Spark plans no further shuffle."""
    return counted.groupBy(
        "customer_id", local_epoch_day("transaction_ts", timezone).alias("day")
    ).agg(
        F.sum("amount_cents").alias("cents"),
        F.count(F.when(~F.col("is_refund"), 1)).alias("sales"),
    )


def is_occasion() -> Column:
    return F.col("sales") > 0


def calibration_customers(
    days: DataFrame, end_day: int, unit_days: float, holdout_day: int | None = None
) -> DataFrame:
    """One row per customer with an occasion on or before `end_day` (an epoch day, inside):
    `first_day`, `frequency` (occasions after the first), `recency_days`, `age_days`,
    `calibration_cents` (all its occasions), `repeat_cents` (those after the first), and in
    the time unit `recency` and `T`; with `holdout_day`, also `holdout_purchases` and
    `holdout_cents` of the occasions in (end_day, holdout_day].

    One aggregation over the days, with no join: the days descend from an observed frame,
    and Spark Connect's client cannot join two frames that carry the same observation."""
    last = end_day if holdout_day is None else holdout_day
    day, cents = F.col("day"), F.col("cents")
    inside = day <= end_day
    in_window = F.when(inside, day)
    per_customer = (
        days.where(is_occasion() & (day <= last))
        .groupBy("customer_id")
        .agg(
            F.min(in_window).alias("first_day"),
            F.max(in_window).alias("last_day"),
            (F.count(in_window) - 1).cast("int").alias("frequency"),
            F.sum(F.when(inside, cents)).alias("calibration_cents"),
            (F.sum(F.when(inside, cents)) - F.min_by(cents, in_window)).alias("repeat_cents"),
            F.count(F.when(~inside, 1)).cast("int").alias("holdout_purchases"),
            F.coalesce(F.sum(F.when(~inside, cents)), F.lit(0)).alias("holdout_cents"),
        )
        .where(F.col("first_day").isNotNull())
    )
    recency_days = (F.col("last_day") - F.col("first_day")).cast("int")
    age_days = (F.lit(end_day) - F.col("first_day")).cast("int")
    holdout = ["holdout_purchases", "holdout_cents"] if holdout_day is not None else []
    return per_customer.select(
        "customer_id",
        "first_day",
        "frequency",
        recency_days.alias("recency_days"),
        age_days.alias("age_days"),
        "calibration_cents",
        "repeat_cents",
        (recency_days / F.lit(unit_days)).alias("recency"),
        (age_days / F.lit(unit_days)).alias("T"),
        *holdout,
    )


def mean_repeat_value(frequency: Column, repeat_cents: Column) -> Column:
    """The mean value of the repeat occasions, in currency units (a double, for the models);
    null without a repeat occasion."""
    return F.when(frequency > 0, repeat_cents / frequency / F.lit(100.0))


class DayTotals(NamedTuple):
    """Where the counted cents of the occasions' days went: into calibration occasions,
    refund-only days (on or before the end), or days after it."""

    calibration_cents: int
    refund_only_cents: int
    refund_only_days: int
    after_cents: int


def day_totals(days: DataFrame, end_day: int) -> Column:
    """One aggregate row over the days (see `DayTotals`), for the reconciliation."""
    inside = F.col("day") <= end_day
    cents = F.col("cents")
    return F.struct(
        F.coalesce(F.sum(F.when(inside & is_occasion(), cents)), F.lit(0)).alias("calibration"),
        F.coalesce(F.sum(F.when(inside & ~is_occasion(), cents)), F.lit(0)).alias("refund_only"),
        F.count(F.when(inside & ~is_occasion(), 1)).alias("refund_only_days"),
        F.coalesce(F.sum(F.when(~inside, cents)), F.lit(0)).alias("after"),
    )


def purchase_rows(customers: DataFrame) -> DataFrame:
    """The distinct (frequency, recency_days, age_days) with the customers of each: all a
    purchase model's likelihood and scores need (bounded by the calendar, not the base)."""
    return customers.groupBy("frequency", "recency_days", "age_days").agg(
        F.count(F.lit(1)).alias("customers")
    )


def spend_rows(customers: DataFrame) -> DataFrame:
    """The Gamma-Gamma rows: repeat customers with a positive mean, by frequency and log
    grid cell (`SPEND_GRID`), with the geometric mean value `m` and the customers of each."""
    m = mean_repeat_value(F.col("frequency"), F.col("repeat_cents"))
    usable = customers.where((F.col("frequency") > 0) & (F.col("repeat_cents") > 0))
    cell = F.round(F.log(m) / F.lit(SPEND_GRID)).cast("long")
    return (
        usable.groupBy("frequency", cell.alias("cell"))
        .agg(F.exp(F.avg(F.log(m))).alias("m"), F.count(F.lit(1)).alias("customers"))
        .drop("cell")
    )


def per_unit_discount(annual_rate: float, unit_days: float) -> float:
    """The discount rate of one time unit equivalent to an annual rate (compounded)."""
    return math.pow(1.0 + annual_rate, unit_days / 365.25) - 1.0
