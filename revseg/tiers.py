"""Tiers: approximate quantile cut points per period, and each customer's segment.

A level with top fraction f has its cut point at the (1 - f) quantile of the period's
positive revenues. A customer's segment is the highest level whose cut point its revenue
reaches (revenue >= cut point); customers with revenue <= 0 get `no_revenue` and take
no part in the quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from revseg.config import NO_REVENUE_SEGMENT, TierLevel
from revseg.contract import PERIOD_KEYS
from revseg.metrics import to_money


def quantile_fractions(levels: Sequence[TierLevel]) -> list[float]:
    """The quantile of each level's cut point: top 1% -> 0.99, everyone -> 0.0."""
    return [round(1.0 - level.fraction, 12) for level in levels]


def cut_points(
    customer_periods: DataFrame,
    levels: Sequence[TierLevel],
    accuracy: int,
    group_cols: Sequence[str] = PERIOD_KEYS,
) -> DataFrame:
    """One row per period group with `cut_points`: an array of cents, highest level first
    (null when nobody in the group has revenue above zero).

    One percentile_approx call per group computes every level from one sketch; revenues
    of zero or less take no part in it (percentile_approx skips nulls).
    """
    fractions = F.array(*[F.lit(f) for f in quantile_fractions(levels)])
    positive = F.when(F.col("revenue_cents") > 0, F.col("revenue_cents"))
    return customer_periods.groupBy(*group_cols).agg(
        F.percentile_approx(positive, fractions, accuracy).alias("cut_points")
    )


def segment_of(revenue_cents: Column, cuts: Column, levels: Sequence[TierLevel]) -> Column:
    """The highest level whose cut point the revenue reaches; the last level catches the rest.

    The last level has fraction 1.0 (every customer with revenue), so it needs no cut point.
    """
    segment = F.lit(levels[-1].name)
    for i in reversed(range(len(levels) - 1)):
        segment = F.when(revenue_cents >= cuts[i], F.lit(levels[i].name)).otherwise(segment)
    return F.when(
        revenue_cents.isNull() | (revenue_cents <= 0) | cuts.isNull(), F.lit(NO_REVENUE_SEGMENT)
    ).otherwise(segment)


def assign_segments(
    customer_periods: DataFrame,
    cuts: DataFrame,
    levels: Sequence[TierLevel],
    group_cols: Sequence[str] = PERIOD_KEYS,
    labels: Sequence[str] = (),
) -> DataFrame:
    """Customer periods with `segment`, from the (small, broadcast) cut points.

    `labels` are columns of `cuts` carried onto every row (the period's names, when the
    rows are keyed by integers).
    """
    return customer_periods.join(F.broadcast(cuts), list(group_cols), "left").select(
        *customer_periods.columns,
        *labels,
        segment_of(F.col("revenue_cents"), F.col("cut_points"), levels).alias("segment"),
    )


def tier_boundaries(
    segmented: DataFrame,
    cuts: DataFrame,
    levels: Sequence[TierLevel],
    group_cols: Sequence[str] = PERIOD_KEYS,
    labels: Sequence[str] = (),
) -> DataFrame:
    """Per period group and segment: cut point, customers, revenue and revenue share.

    Every level gets a row, with zero customers if none reached it, so that a reader can
    tell "nobody in platinum" from "platinum not computed". `labels`: columns of `cuts`
    to carry (see `assign_segments`).
    """
    keys = list(group_cols)
    level_rows = cuts.select(*keys, F.posexplode("cut_points").alias("level", "min_cents"))
    names = F.array(*[F.lit(level.name) for level in levels])
    level_rows = level_rows.select(
        *keys, F.element_at(names, F.col("level") + 1).alias("segment"), "min_cents"
    )
    counts = segmented.groupBy(*keys, "segment").agg(
        F.count(F.lit(1)).alias("customers"), F.sum("revenue_cents").alias("revenue_cents")
    )
    joined = level_rows.join(counts, [*keys, "segment"], "full")
    if labels:
        joined = joined.join(cuts.select(*keys, *labels), keys, "left")
    period_total = F.sum("revenue_cents").over(Window.partitionBy(*keys))
    revenue = F.coalesce(F.col("revenue_cents"), F.lit(0))
    return joined.select(
        *keys,
        *labels,
        "segment",
        to_money("min_cents").alias("min_revenue"),
        F.coalesce(F.col("customers"), F.lit(0)).cast("long").alias("customers"),
        to_money(revenue).alias("revenue"),
        F.when(period_total != 0, revenue / period_total).alias("revenue_share"),
    )
