"""The cut points of every period (x group) by the tiering's method, the value percentile of
each histogram bucket, the concentration figures and the RFM score floors: aggregates of
the cached customer periods collected to the driver (a few rows per period), made into
small labelled frames there to broadcast back.

Cut points are keyed by integers through the Spark plan; the period names and end days are
made on the driver and joined back by broadcast with the cut points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
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

from revseg.config import RFM_MEASURES, RFM_SCORES
from revseg.histogram import (
    BUCKET,
    Bucket,
    bucket_percentiles,
    concentration,
    histogram,
    pareto_cuts,
)
from revseg.metrics import period_end_day
from revseg.periods import Grain
from revseg.tiering import Tiering, tier_keys
from revseg.tiers import METRIC_VALUE, cut_points, ranked, rfm_counts, score_floors


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
