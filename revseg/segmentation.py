"""Segment: each customer's segment and value percentile against its period's cut points
(`revseg.period_cuts`), the tier boundary and segment summary rows, and the
`customer_segments` rows as the table holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from revseg import contract
from revseg.config import RFM_MEASURES
from revseg.histogram import BUCKET, value_bucket
from revseg.metrics import TOP_DIMENSIONS, average_order_value, days_before, to_money, top_share
from revseg.period_cuts import PeriodCuts
from revseg.stability import STATE_COLUMNS
from revseg.tiering import Tiering, tier_keys
from revseg.tiers import (
    METRIC_VALUE,
    MONEY_METRICS,
    assign_segments,
    metric_value,
    ranked,
    rfm_measures,
    rfm_score,
    rfm_segment,
    segment_counts,
)

CENT = Decimal("0.01")


LABELS = (*contract.PERIOD_KEYS, "period_end_day")


def with_metric(customer_periods: DataFrame, metric: str) -> DataFrame:
    """The customer periods with the tier metric (`metric_value`) beside them."""
    return customer_periods.select("*", metric_value(metric).alias(METRIC_VALUE))


def segmented_rows(customer_periods: DataFrame, cuts: PeriodCuts, tiering: Tiering) -> DataFrame:
    """Each customer-period row with its period labels, its `segment` and its
    `value_percentile` (lazy; both small frames are broadcast)."""
    keys = tier_keys(tiering.groups)
    if tiering.method == "rfm":
        segmented = rfm_segmented(customer_periods, cuts.cuts, tiering)
    else:
        segmented = assign_segments(
            customer_periods, cuts.cuts, tiering.names, keys, LABELS, METRIC_VALUE, tiering.floor
        ).select("*", F.lit(None).cast("string").alias("rfm_score"))
    bucket = value_bucket(F.when(ranked(), F.col(METRIC_VALUE)), tiering.relative_error)
    with_bucket = segmented.select("*", bucket.alias(BUCKET))
    return with_bucket.join(F.broadcast(cuts.percentiles), [*keys, BUCKET], "left").drop(BUCKET)


def rfm_segmented(customer_periods: DataFrame, cuts: DataFrame, tiering: Tiering) -> DataFrame:
    """Customer periods with their RFM `segment` and `rfm_score` (three digits, recency
    first: `545`), scored against the (small, broadcast) score floors."""
    joined = customer_periods.join(F.broadcast(cuts), list(tier_keys(tiering.groups)), "left")
    measures = rfm_measures(tiering.timezone)
    # the scores as columns of their own: the score map reads each one in every rule, and
    # Spark computes a subexpression of a CASE's later branches again where it appears
    scored = joined.select(
        *customer_periods.columns,
        *LABELS,
        "cut_points",
        *[rfm_score(measures[m], F.col(f"{m}_floors")).alias(f"_{m}") for m in RFM_MEASURES],
    )
    scores = [F.col(f"_{m}") for m in RFM_MEASURES]
    value, points = F.col(METRIC_VALUE), F.col("cut_points")
    segment = rfm_segment(scores, tiering.rfm, value, points)
    score = F.when(ranked() & points.isNotNull(), F.concat(*[s.cast("string") for s in scores]))
    return scored.select(
        *customer_periods.columns, *LABELS, segment.alias("segment"), score.alias("rfm_score")
    )


def boundary_rows(
    segmented: DataFrame, cuts: PeriodCuts, tiering: Tiering
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tier_boundaries and segment_summary rows of every period (x group), from one
    aggregate collected: a few rows per period."""
    frame = segment_counts(
        segmented,
        cuts.cuts,
        tiering.names,
        tier_keys(tiering.groups),
        contract.PERIOD_KEYS,
        METRIC_VALUE,
        tiering.accuracy,
        median=tiering.summary,
    )
    boundaries, summaries = [], []
    for row in frame.collect():
        boundary, summary = split_counts(row.asDict(), tiering)
        boundaries.append(boundary)
        summaries.append(summary)
    return boundaries, summaries


def in_metric_units(value: Decimal | float | None, metric: str) -> Decimal | None:
    """A metric value (cents, or orders) in decimal(18,2): money in the reporting currency."""
    if value is None:
        return None
    exact = value if isinstance(value, Decimal | int) else Decimal(str(value))
    exact = Decimal(exact)
    if metric in MONEY_METRICS:
        exact = exact.scaleb(-2)
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def split_counts(row: Mapping[str, Any], tiering: Tiering) -> tuple[dict[str, Any], dict[str, Any]]:
    """One segment's counts -> its tier_boundaries row and its segment_summary row."""
    groups = {group: row[group] for group in tiering.groups}
    revenue = Decimal(row["revenue_cents"]).scaleb(-2)
    minimum = in_metric_units(row["min_value"], tiering.metric)
    common = {"period": row["period"], "period_grain": row["period_grain"], **groups}
    boundary = {
        **common,
        "segment": row["segment"],
        "min_revenue": minimum if tiering.metric == "revenue" else None,
        "customers": row["customers"],
        "revenue": revenue,
        "revenue_share": row["revenue_share"],
        "metric": tiering.metric,
        "min_metric": minimum,
    }
    count, orders = row["value_count"] or 0, row["orders"]
    mean = in_metric_units(Decimal(row["value_sum"]) / count, tiering.metric) if count else None
    summary = {
        **common,
        "segment": row["segment"],
        "metric": tiering.metric,
        "customers": row["customers"],
        "revenue": revenue,
        "customer_share": row["customer_share"],
        "revenue_share": row["revenue_share"],
        "mean_metric": mean,
        "median_metric": in_metric_units(row["value_median"], tiering.metric),
        "orders": orders,
        "avg_order_value": (
            (revenue / orders).quantize(CENT, rounding=ROUND_HALF_UP) if orders else None
        ),
    }
    return boundary, summary


def in_boundary_order(
    rows: Iterable[Mapping[str, Any]], grains: Sequence[str], levels: Sequence[str]
) -> tuple[Mapping[str, Any], ...]:
    """Boundary rows by grain as configured, period, then tier, highest first."""
    grain_rank = {name: i for i, name in enumerate(grains)}
    segment_rank = {name: i for i, name in enumerate(levels)}

    def key(row: Mapping[str, Any]) -> tuple[int, str, int]:
        return (
            grain_rank.get(row["period_grain"], 99),
            row["period"],
            segment_rank.get(row["segment"], len(segment_rank)),
        )

    return tuple(sorted(rows, key=key))


def segments_output(segmented: DataFrame, groups: Sequence[str], timezone: str) -> DataFrame:
    """The `customer_segments` columns, money back in decimal(18,2)."""
    revenue = to_money("revenue_cents")
    refunds = to_money("refund_cents")
    end = F.col("period_end_day")
    columns = set(segmented.columns)
    quantity = F.col("quantity") if "quantity" in columns else F.lit(None).cast("long")
    margin = (
        F.when(F.col("cost_missing") == 0, to_money(F.col("revenue_cents") - F.col("cost_cents")))
        if "cost_cents" in columns
        else F.lit(None).cast(contract.MONEY)
    )
    return segmented.select(
        "customer_id",
        "period",
        "period_grain",
        *groups,
        "segment",
        revenue.alias("revenue"),
        # decimal addition of equal scales stays on longs: cheaper than a third conversion
        (revenue + refunds).cast(contract.MONEY).alias("gross_revenue"),
        refunds.alias("refunds"),
        F.col("orders").cast("long").alias("orders"),
        average_order_value(F.col("revenue_cents"), F.col("orders")).alias("avg_order_value"),
        "first_transaction_ts",
        "last_transaction_ts",
        "active_days",
        "active_months",
        days_before(end, F.col("last_transaction_ts"), timezone).alias("recency_days"),
        days_before(end, F.col("customer_first_ts"), timezone).alias("tenure_days"),
        quantity.alias("quantity"),
        margin.alias("margin"),
        *top_columns(columns),
        F.col("value_percentile").alias("value_percentile"),
        F.col("rfm_score").alias("rfm_score"),
        *[
            (F.col(c) if c in columns else F.lit(None)).cast(STATE_TYPES[c]).alias(c)
            for c in STATE_COLUMNS
        ],
    )


STATE_TYPES = {
    field.name: field.dataType
    for field in contract.CUSTOMER_SEGMENTS_SCHEMA.fields
    if field.name in STATE_COLUMNS
}


def top_columns(columns: set[str]) -> list[Column]:
    """`top_channel`, `top_category` and their shares; nulls where not computed."""
    out = []
    for top in TOP_DIMENSIONS:
        if top in columns:
            value, share = top_share(top)
        else:
            value, share = F.lit(None).cast("string"), F.lit(None).cast("double")
        out += [value.alias(top), share.alias(f"{top}_share")]
    return out
