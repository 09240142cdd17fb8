"""Tiers: what a tier ranks (the metric), the cut points of each period, each customer's
segment, and the per-segment counts behind tier_boundaries and segment_summary.

A customer period takes part in the ranking when its revenue is above zero and its metric
is known (`ranked`); the others get `no_revenue` or `no_metric`. A customer's segment is
the highest level whose cut point its metric reaches (metric >= cut point); the last level
catches the rest, unless it has a cut point of its own (`floor`: fixed thresholds with a
minimum), below which a customer is `below_thresholds`.

Quantile levels with top fraction f have their cut point at the (1 - f) quantile of the
ranked metrics (one percentile_approx sketch per period group); Pareto and threshold cut
points are made on the driver (`revseg.histogram`, the config) and joined the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from revseg.config import (
    BELOW_THRESHOLDS_SEGMENT,
    NO_METRIC_SEGMENT,
    NO_REVENUE_SEGMENT,
    RFM_MEASURES,
    RFM_SCORES,
    RfmSegment,
    TierLevel,
)
from revseg.contract import PERIOD_KEYS
from revseg.histogram import value_bucket
from revseg.metrics import average_order_cents, to_money
from revseg.periods import local_epoch_day

METRIC_VALUE = "metric_value"  # the tier metric of a customer period, as a long
# Metrics counted in cents of the reporting currency (orders is a count).
MONEY_METRICS = ("revenue", "avg_order_value", "margin", "predicted_clv")
CLV_CENTS = "clv_cents"  # predicted_clv: the customer's score joined onto its periods


def metric_value(metric: str) -> Column:
    """The tier metric as a long (cents, or orders); null where it is unknown (margin of a
    period with a cost missing)."""
    revenue = F.col("revenue_cents")
    if metric == "revenue":
        return revenue
    if metric == "orders":
        return F.col("orders").cast("long")
    if metric == "avg_order_value":
        return average_order_cents(revenue, F.col("orders"))
    if metric == "margin":
        return F.when(F.col("cost_missing") == 0, revenue - F.col("cost_cents"))
    if metric == "predicted_clv":
        return F.col(CLV_CENTS)
    raise ValueError(f"unknown tier metric {metric!r}")


def ranked(value: Column | str = METRIC_VALUE) -> Column:
    """Whether a customer period takes part in its period's ranking."""
    value = F.col(value) if isinstance(value, str) else value
    return (F.col("revenue_cents") > 0) & value.isNotNull()


def quantile_fractions(levels: Sequence[TierLevel]) -> list[float]:
    """The quantile of each level's cut point: top 1% -> 0.99, everyone -> 0.0."""
    return [round(1.0 - level.fraction, 12) for level in levels]


def cut_points(
    customer_periods: DataFrame,
    levels: Sequence[TierLevel],
    accuracy: int,
    group_cols: Sequence[str] = PERIOD_KEYS,
    value: str = "revenue_cents",
) -> DataFrame:
    """One row per period group with `cut_points`: an array of the `value` column's units,
    highest level first (null when nobody in the group is ranked).

    One percentile_approx call per group computes every level from one sketch; customers
    who are not ranked take no part in it (percentile_approx skips nulls).
    """
    fractions = F.array(*[F.lit(f) for f in quantile_fractions(levels)])
    in_ranking = F.when(ranked(value), F.col(value))
    return customer_periods.groupBy(*group_cols).agg(
        F.percentile_approx(in_ranking, fractions, accuracy).alias("cut_points")
    )


def segment_of(
    value: Column,
    cuts: Column,
    names: Sequence[str],
    floor: bool = False,
    revenue: Column | None = None,
) -> Column:
    """The highest level whose cut point `value` reaches; the last level catches the rest
    (with `floor`, only values that reach its own cut point; below it: below_thresholds).

    `revenue` (default: `value` itself) decides `no_revenue`; a null `value` with revenue
    is `no_metric`.
    """
    revenue = value if revenue is None else revenue
    last = len(names) - 1
    segment = (
        F.when(value >= cuts[last], F.lit(names[last])).otherwise(F.lit(BELOW_THRESHOLDS_SEGMENT))
        if floor
        else F.lit(names[last])
    )
    for i in reversed(range(last)):
        segment = F.when(value >= cuts[i], F.lit(names[i])).otherwise(segment)
    # no cut points: nobody of the period (x group) is ranked, so a customer with revenue
    # there has no metric (a margin with costs missing, a period before every CLV score)
    return (
        F.when(revenue.isNull() | (revenue <= 0), F.lit(NO_REVENUE_SEGMENT))
        .when(value.isNull() | cuts.isNull(), F.lit(NO_METRIC_SEGMENT))
        .otherwise(segment)
    )


def assign_segments(
    customer_periods: DataFrame,
    cuts: DataFrame,
    names: Sequence[str],
    group_cols: Sequence[str] = PERIOD_KEYS,
    labels: Sequence[str] = (),
    value: str = "revenue_cents",
    floor: bool = False,
) -> DataFrame:
    """Customer periods with `segment`, from the (small, broadcast) cut points.

    `labels` are columns of `cuts` carried onto every row (the period's names, when the
    rows are keyed by integers).
    """
    segment = segment_of(F.col(value), F.col("cut_points"), names, floor, F.col("revenue_cents"))
    return customer_periods.join(F.broadcast(cuts), list(group_cols), "left").select(
        *customer_periods.columns, *labels, segment.alias("segment")
    )


def rfm_measures(timezone: str) -> dict[str, Column]:
    """The RFM measures as longs, higher is better: recency as the local day of the last
    purchase (the period's end day minus it is `recency_days`), frequency as orders,
    monetary as revenue in cents."""
    return {
        "recency": local_epoch_day("last_transaction_ts", timezone),
        "frequency": F.col("orders").cast("long"),
        "monetary": F.col("revenue_cents"),
    }


def rfm_counts(
    customer_periods: DataFrame,
    timezone: str,
    relative_error: float,
    group_cols: Sequence[str] = PERIOD_KEYS,
    value: str = METRIC_VALUE,
) -> DataFrame:
    """Per period group, RFM measure and value: the ranked customers (`customers`) and the
    least value (`low`). Days and orders are counted per value, exactly; revenue per
    bucket of the value histogram (`revseg.histogram`): one aggregate, a few thousand
    rows per period."""
    measures = rfm_measures(timezone)
    buckets = {
        "recency": measures["recency"],
        "frequency": measures["frequency"],
        "monetary": value_bucket(measures["monetary"], relative_error).cast("long"),
    }
    pairs = F.array(
        *[
            F.struct(F.lit(m).alias("measure"), buckets[m].alias("b"), measures[m].alias("v"))
            for m in RFM_MEASURES
        ]
    )
    rows = customer_periods.where(ranked(value)).select(*group_cols, F.inline(pairs))
    return rows.groupBy(*group_cols, "measure", "b").agg(
        F.count(F.lit(1)).alias("customers"), F.min("v").alias("low")
    )


def score_floors(
    counts: Iterable[tuple[int, int, int]],
) -> tuple[list[int | None], tuple[int, ...]]:
    """The least value of each score 2-5 (None above the highest score anyone has; an
    unused score between two has the floor of the next) and the scores in use,
    from (bucket, customers, least value) of one period group and measure.

    A customer's score is that of its middle rank: with `below` customers under its value
    and `equal` at it, 1 + floor(5 * (below + equal / 2) / n), at most 5. Equal values
    share a score, one customer or a group of equal values scores 3, and a measure whose
    values tie across a fifth of the population leaves a score unused."""
    ordered = sorted(counts)
    everyone = sum(customers for _, customers, _ in ordered)
    floors: list[int | None] = [None] * (len(RFM_SCORES) - 1)
    used: list[int] = []
    below = 0
    for _, customers, low in ordered:
        score = min(RFM_SCORES[-1], 1 + 5 * (2 * below + customers) // (2 * everyone))
        if score not in used:
            used.append(score)
        for higher in range(2, score + 1):
            if floors[higher - 2] is None:
                floors[higher - 2] = low
        below += customers
    return floors, tuple(used)


def rfm_score(value: Column, floors: Column) -> Column:
    """A measure's score 1-5: one more than the number of score floors the value reaches
    (a null floor, a score nobody has, is never reached)."""
    score = F.lit(1)
    for i in range(len(RFM_SCORES) - 1):
        score = score + F.when(value >= floors[i], 1).otherwise(0)
    return score


def rfm_segment(
    scores: Sequence[Column], segments: Sequence[RfmSegment], value: Column, cuts: Column
) -> Column:
    """The first segment of the score map that the (recency, frequency, monetary) scores
    match, with `no_revenue` and `no_metric` as in `segment_of` (`cuts`: null when nobody
    in the group is ranked)."""
    segment = F.lit(None).cast("string")
    for rule in reversed(segments):
        matched = F.lit(True)
        for measure, score in zip(RFM_MEASURES, scores, strict=True):
            allowed = getattr(rule, measure)
            if allowed:
                matched = matched & score.isin(*allowed)
        segment = F.when(matched, F.lit(rule.name)).otherwise(segment)
    revenue = F.col("revenue_cents")
    # no cut points: nobody of the period (x group) is ranked, so a customer with revenue
    # there has no metric (a margin with costs missing, a period before every CLV score)
    return (
        F.when(revenue.isNull() | (revenue <= 0), F.lit(NO_REVENUE_SEGMENT))
        .when(value.isNull() | cuts.isNull(), F.lit(NO_METRIC_SEGMENT))
        .otherwise(segment)
    )


def segment_counts(
    segmented: DataFrame,
    cuts: DataFrame,
    names: Sequence[str],
    group_cols: Sequence[str] = PERIOD_KEYS,
    labels: Sequence[str] = (),
    value: str = "revenue_cents",
    accuracy: int = 10000,
    median: bool = True,
) -> DataFrame:
    """Per period group and segment: the cut point (`min_value`, in the value's units),
    customers, revenue (cents), its share of the group's revenue, orders, and the sum and
    approximate median of the value (with `median`: it is the aggregate's dearest part,
    and only segment_summary shows it): one aggregate, the rows of tier_boundaries and
    segment_summary.

    Every level gets a row, with zero customers if none reached it, so that a reader can
    tell "nobody in platinum" from "platinum not computed". `labels`: columns of `cuts`
    to carry (see `assign_segments`).
    """
    keys = list(group_cols)
    level_rows = cuts.select(*keys, F.posexplode("cut_points").alias("level", "min_value"))
    level_names = F.array(*[F.lit(name) for name in names])
    level_rows = level_rows.select(
        *keys, F.element_at(level_names, F.col("level") + 1).alias("segment"), "min_value"
    ).where(F.col("segment").isNotNull())
    counts = segmented.groupBy(*keys, "segment").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum("revenue_cents").alias("revenue_cents"),
        F.sum("orders").alias("orders"),
        F.sum(value).alias("value_sum"),
        F.count(value).alias("value_count"),
        (F.percentile_approx(value, 0.5, accuracy) if median else F.lit(None).cast("long")).alias(
            "value_median"
        ),
    )
    joined = level_rows.join(counts, [*keys, "segment"], "full")
    if labels:
        joined = joined.join(cuts.select(*keys, *labels), keys, "left")
    revenue = F.coalesce(F.col("revenue_cents"), F.lit(0))
    customers = F.coalesce(F.col("customers"), F.lit(0)).cast("long")
    period_total = F.sum(revenue).over(Window.partitionBy(*keys))
    period_customers = F.sum(customers).over(Window.partitionBy(*keys))
    return joined.select(
        *keys,
        *labels,
        "segment",
        "min_value",
        customers.alias("customers"),
        revenue.alias("revenue_cents"),
        F.when(period_total != 0, revenue / period_total).alias("revenue_share"),
        F.when(period_customers != 0, customers / period_customers).alias("customer_share"),
        F.coalesce(F.col("orders"), F.lit(0)).cast("long").alias("orders"),
        "value_sum",
        "value_count",
        "value_median",
    )


def tier_boundaries(
    segmented: DataFrame,
    cuts: DataFrame,
    names: Sequence[str],
    group_cols: Sequence[str] = PERIOD_KEYS,
    labels: Sequence[str] = (),
) -> DataFrame:
    """Per period group and segment of revenue tiers: cut point, customers, revenue and
    revenue share, money in decimal (the shape of tier_boundaries for metric revenue)."""
    counts = segment_counts(segmented, cuts, names, group_cols, labels)
    return counts.select(
        *group_cols,
        *labels,
        "segment",
        to_money("min_value").alias("min_revenue"),
        "customers",
        to_money("revenue_cents").alias("revenue"),
        "revenue_share",
    )
