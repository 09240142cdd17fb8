"""Cut and segment: the cut points of each period (one small collect), each customer's
segment, the tier boundary rows, and the `customer_segments` rows as the table holds them.

Cut points are keyed by integers through the Spark plan; the period names and end days are
made on the driver and joined back by broadcast with the cut points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from revseg import contract
from revseg.config import RFM_MEASURES, RFM_SCORES, RfmSegment, TierLevel, TiersConfig
from revseg.histogram import (
    BUCKET,
    Bucket,
    bucket_percentiles,
    concentration,
    histogram,
    pareto_cuts,
    value_bucket,
)
from revseg.metrics import (
    TOP_DIMENSIONS,
    average_order_value,
    days_before,
    period_end_day,
    to_money,
    top_share,
)
from revseg.periods import Grain
from revseg.stability import STATE_COLUMNS, Stability
from revseg.tiers import (
    METRIC_VALUE,
    MONEY_METRICS,
    assign_segments,
    cut_points,
    metric_value,
    ranked,
    rfm_counts,
    rfm_measures,
    rfm_score,
    rfm_segment,
    score_floors,
    segment_counts,
)

CENT = Decimal("0.01")

LABELS = (*contract.PERIOD_KEYS, "period_end_day")


@dataclass(frozen=True)
class Tiering:
    """How a run tiers, as plain values: the metric and method, the segment names (highest
    first), each method's settings in the metric's units, and what the histogram feeds."""

    metric: str
    method: str
    names: tuple[str, ...]
    groups: tuple[str, ...]
    accuracy: int = 10000
    relative_error: float = 0.01
    levels: tuple[TierLevel, ...] = ()
    shares: tuple[float, ...] = ()
    minimums: tuple[int | None, ...] = ()
    concentration: bool = True
    rfm: tuple[RfmSegment, ...] = ()
    timezone: str = "UTC"
    stability: Stability | None = None
    summary: bool = True  # segment_summary is written: its medians are computed

    @classmethod
    def of(
        cls,
        tiers: TiersConfig,
        concentration: bool = True,
        timezone: str = "UTC",
        summary: bool = True,
    ) -> Tiering:
        stable = tiers.stability
        return cls(
            metric=tiers.metric,
            method=tiers.method,
            names=tiers.segment_names(),
            groups=tiers.by,
            accuracy=tiers.accuracy,
            relative_error=tiers.relative_error,
            levels=tiers.levels,
            shares=tuple(c.share for c in tiers.pareto),
            minimums=tuple(metric_units(t.min, tiers.metric) for t in tiers.thresholds),
            concentration=concentration,
            rfm=tiers.rfm.segments,
            timezone=timezone,
            stability=(
                Stability(stable.hysteresis, stable.confirm_periods) if stable is not None else None
            ),
            summary=summary,
        )

    @property
    def floor(self) -> bool:
        """Whether the last level has a cut point of its own (thresholds with a min)."""
        return self.method == "thresholds" and self.minimums[-1] is not None

    def concentration_measure(self) -> str:
        """The histogram measure concentration reads: revenue, which is the metric's own
        when the tiers rank by revenue."""
        return "metric" if self.metric == "revenue" else "revenue"


def metric_units(amount: Decimal | None, metric: str) -> int | None:
    """A threshold in the metric's units: cents for money, whole orders (rounded up: 2.5
    orders is reached by 3)."""
    if amount is None:
        return None
    if metric in MONEY_METRICS:
        return int(amount * 100)
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def tier_keys(groups: Sequence[str]) -> tuple[str, ...]:
    """The columns a tier is cut within: the period (as integer keys) and the groups."""
    return ("grain_idx", "period_key", *groups)


def cuts_schema(groups: Sequence[str]) -> StructType:
    """The cut points collected to the driver: one row per period (x group)."""
    return StructType(
        [
            StructField("grain_idx", IntegerType(), False),
            StructField("period_key", IntegerType(), False),
            *[StructField(group, StringType(), False) for group in groups],
            StructField("period_grain", StringType(), False),
            StructField("period", StringType(), False),
            StructField("period_end_day", IntegerType(), False),
            StructField("cut_points", ArrayType(LongType()), True),
            *[StructField(f"{m}_floors", ArrayType(LongType()), True) for m in RFM_MEASURES],
        ]
    )


GroupKey = tuple[Any, ...]  # (grain_idx, period_key, *groups)


RfmCuts = Mapping[str, Sequence[int | None]]  # measure -> the least value of scores 2-5


def labelled_cuts(
    cuts: Mapping[GroupKey, Sequence[int | None] | None],
    grains: Sequence[Grain],
    rfm: Mapping[GroupKey, RfmCuts] | None = None,
) -> list[tuple[Any, ...]]:
    """Cut point rows keyed by integers, with the period names made on the driver: rows
    are labelled through the broadcast join, not by formatting strings row by row."""
    rfm = rfm or {}
    return [
        (
            *key,
            grains[key[0]].name,
            grains[key[0]].label(key[1]),
            period_end_day(grains[key[0]], key[1]),
            None if points is None else list(points),
            *[_listed(rfm.get(key, {}).get(measure)) for measure in RFM_MEASURES],
        )
        for key, points in cuts.items()
    ]


def _listed(points: Sequence[int | None] | None) -> list[int | None] | None:
    return None if points is None else list(points)


def with_metric(customer_periods: DataFrame, metric: str) -> DataFrame:
    """The customer periods with the tier metric (`metric_value`) beside them."""
    return customer_periods.select("*", metric_value(metric).alias(METRIC_VALUE))


def histogram_measures(tiering: Tiering) -> dict[str, Column]:
    """The measures of the value histogram: the ranked metric (percentiles, Pareto), and
    revenue for concentration when the metric is another."""
    measures = {"metric": F.when(ranked(), F.col(METRIC_VALUE))}
    if tiering.concentration and tiering.concentration_measure() == "revenue":
        measures["revenue"] = F.when(F.col("revenue_cents") > 0, F.col("revenue_cents"))
    return measures


@dataclass(frozen=True)
class PeriodCuts:
    """The cut points of every period (x group), labelled, and the value percentiles per
    histogram bucket: small frames made on the driver, to broadcast (frames derived from
    the customer rows would carry the first pass's observations into their join, which
    Spark Connect refuses); the concentration rows and the RFM score ties."""

    cuts: DataFrame
    percentiles: DataFrame
    concentration: tuple[dict[str, Any], ...]
    rfm_ties: tuple[dict[str, Any], ...] = ()


def period_cuts(
    spark: SparkSession,
    customer_periods: DataFrame,
    grains: Sequence[Grain],
    tiering: Tiering,
) -> PeriodCuts:
    """Cut points, percentiles and concentration of every period (x group).

    The first job here runs the first pass (the scan, the shuffle by customer and the
    aggregates) into the cache; the histogram is one more aggregate over the cache."""
    keys = tier_keys(tiering.groups)
    sketched: dict[GroupKey, list[int] | None] = {}
    if tiering.method == "quantile":
        rows = cut_points(customer_periods, tiering.levels, tiering.accuracy, keys, METRIC_VALUE)
        for row in rows.collect():
            points = row["cut_points"]
            sketched[tuple(row[k] for k in keys)] = None if points is None else list(points)
    rfm, ties = (
        rfm_floors(customer_periods, tiering, grains) if tiering.method == "rfm" else ({}, [])
    )
    measures = histogram_measures(tiering)
    buckets = histogram(customer_periods, keys, measures, tiering.relative_error)
    by_group: dict[tuple[GroupKey, str], list[Bucket]] = {}
    groups: dict[GroupKey, None] = {}
    for row in buckets.collect():
        key = tuple(row[k] for k in keys)
        groups[key] = None
        if row[BUCKET] is not None:
            bucket = Bucket(row[BUCKET], row["customers"], row["total"], row["low"], row["high"])
            by_group.setdefault((key, row["measure"]), []).append(bucket)
    cuts = {
        key: group_cuts(tiering, sketched.get(key), by_group.get((key, "metric"), []))
        for key in sorted(groups)
    }
    frame = spark.createDataFrame(labelled_cuts(cuts, grains, rfm), cuts_schema(tiering.groups))
    concentration = concentration_rows(by_group, tiering, grains) if tiering.concentration else ()
    ranks = [
        (*key, bucket, percentile)
        for (key, measure), found in by_group.items()
        if measure == "metric"
        for bucket, percentile in bucket_percentiles(found)
    ]
    percentiles = spark.createDataFrame(ranks, percentiles_schema(tiering.groups))
    return PeriodCuts(frame, percentiles, concentration, tuple(ties))


def percentiles_schema(groups: Sequence[str]) -> StructType:
    """The value percentile of each histogram bucket of the metric, per period (x group)."""
    return StructType(
        [
            StructField("grain_idx", IntegerType(), False),
            StructField("period_key", IntegerType(), False),
            *[StructField(group, StringType(), False) for group in groups],
            StructField(BUCKET, IntegerType(), False),
            StructField("value_percentile", DoubleType(), False),
        ]
    )


def rfm_floors(
    customer_periods: DataFrame, tiering: Tiering, grains: Sequence[Grain]
) -> tuple[dict[GroupKey, RfmCuts], list[dict[str, Any]]]:
    """The RFM score floors of every period group (one aggregate collected), and the
    measures whose ties leave fewer than five scores in use, with the scores that are:
    the run's summary lists them, never silently."""
    keys = tier_keys(tiering.groups)
    counts: dict[GroupKey, dict[str, list[tuple[int, int, int]]]] = {}
    frame = rfm_counts(customer_periods, tiering.timezone, tiering.relative_error, keys)
    for row in frame.collect():
        key = tuple(row[k] for k in keys)
        by_measure = counts.setdefault(key, {})
        by_measure.setdefault(row["measure"], []).append((row["b"], row["customers"], row["low"]))
    floors: dict[GroupKey, RfmCuts] = {}
    ties: list[dict[str, Any]] = []
    for key, by_measure in sorted(counts.items()):
        grain = grains[key[0]]
        found = {}
        for measure in RFM_MEASURES:
            found[measure], used = score_floors(by_measure[measure])
            if len(used) < len(RFM_SCORES):
                ties.append(
                    {
                        "period_grain": grain.name,
                        "period": grain.label(key[1]),
                        **dict(zip(tiering.groups, key[2:], strict=True)),
                        "measure": measure,
                        "scores": sorted(used),
                    }
                )
        floors[key] = found
    return floors, ties


def group_cuts(
    tiering: Tiering, sketched: list[int] | None, buckets: Sequence[Bucket]
) -> list[int | None] | None:
    """One group's cut points by the tiering's method; None when nobody is ranked."""
    if not buckets:
        return None
    if tiering.method == "quantile":
        return list(sketched) if sketched is not None else None
    if tiering.method == "pareto":
        return pareto_cuts(buckets, tiering.shares)
    if tiering.method == "rfm":  # no cut points of the metric: one null per segment
        return [None] * len(tiering.names)
    return list(tiering.minimums)


def concentration_rows(
    by_group: Mapping[tuple[GroupKey, str], Sequence[Bucket]],
    tiering: Tiering,
    grains: Sequence[Grain],
) -> tuple[dict[str, Any], ...]:
    """The concentration table's rows: one per period (x group) with revenue above zero."""
    measure = tiering.concentration_measure()
    rows = []
    for (key, name), buckets in sorted(by_group.items()):
        if name != measure:
            continue
        figures = concentration(buckets)
        if figures.customers == 0:
            continue
        grain = grains[key[0]]
        points = len(figures.lorenz) - 1
        rows.append(
            {
                "period": grain.label(key[1]),
                "period_grain": grain.name,
                **dict(zip(tiering.groups, key[2:], strict=True)),
                "customers": figures.customers,
                "revenue": Decimal(figures.total).scaleb(-2),
                "gini": figures.gini,
                "top_1pct_share": figures.top_1pct_share,
                "top_10pct_share": figures.top_10pct_share,
                "top_20pct_share": figures.top_20pct_share,
                "lorenz": [
                    {"customer_share": k / points, "revenue_share": share}
                    for k, share in enumerate(figures.lorenz)
                ],
                "relative_error": tiering.relative_error,
            }
        )
    return tuple(rows)


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
    scores = [rfm_score(measures[m], F.col(f"{m}_floors")) for m in RFM_MEASURES]
    value, points = F.col(METRIC_VALUE), F.col("cut_points")
    segment = rfm_segment(scores, tiering.rfm, value, points)
    score = F.when(ranked() & points.isNotNull(), F.concat(*[s.cast("string") for s in scores]))
    return joined.select(
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
