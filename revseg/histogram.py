"""The value histogram: each period group's values in logarithmic buckets, from one
aggregate over the customer periods (no sort, nothing customer-level collected), and the
figures made from it on the driver: Pareto cut points, value percentiles, concentration.

A value v > 0 falls in bucket 1 + floor(ln v / ln(1 + e)) (v < 0 mirrored below zero,
0 in bucket 0), so the values of one bucket lie within a factor (1 + e) of each other,
whatever their scale: `e` is `tiers.relative_error`. Each bucket keeps its customers, sum,
least and greatest value. The error bounds that follow (docs: internals, value histogram):

- Lorenz curve and top shares: exact at bucket edges, linear within a bucket; the revenue
  share of the top q of customers is at most e times its own value too low.
- Gini: the Gini of the values with each replaced by its bucket's mean: never above the
  exact one, and at most e / 2 below it.
- Pareto classes: whole buckets go to a class, so a customer can differ from the exact
  class only in the one bucket where the exact boundary falls (within a factor 1 + e of
  the boundary value), and then by one class up.
- value_percentile: the share of the group's ranked customers whose value is at most the
  customer's, where values in one bucket count as equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

BUCKET = "value_bucket"
LORENZ_POINTS = 100  # Lorenz points at customer shares 0, 1/100, ..., 1


def value_bucket(value: Column, relative_error: float) -> Column:
    """The value's signed logarithmic bucket (order preserving; see the module)."""
    base = math.log1p(relative_error)

    def magnitude(v: Column) -> Column:
        return (F.floor(F.log(v.cast("double")) / F.lit(base)) + 1).cast("int")

    return (
        F.when(value > 0, magnitude(value))
        .when(value < 0, -magnitude(-value))
        .when(value == 0, F.lit(0))
    )


def histogram(
    frame: DataFrame, keys: Sequence[str], measures: Mapping[str, Column], relative_error: float
) -> DataFrame:
    """Per group (`keys`), measure and bucket: customers, sum, least and greatest value.

    `measures`: name -> value column, null for rows that take no part (one aggregate for
    all of them: the rows are repeated once per measure). Those rows make a bucket of
    their own, null, so that every group that has rows has a row here.
    """
    names = list(measures)
    if len(names) == 1:
        rows = frame.select(*keys, F.lit(names[0]).alias("measure"), measures[names[0]].alias("v"))
    else:
        pairs = F.array(
            *[F.struct(F.lit(n).alias("measure"), measures[n].alias("v")) for n in names]
        )
        rows = frame.select(*keys, F.inline(pairs))
    return rows.groupBy(
        *keys, "measure", value_bucket(F.col("v"), relative_error).alias(BUCKET)
    ).agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum("v").alias("total"),
        F.min("v").alias("low"),
        F.max("v").alias("high"),
    )


class Bucket(NamedTuple):
    """One bucket of one group's histogram."""

    bucket: int
    customers: int
    total: int
    low: int
    high: int


def bucket_percentiles(buckets: Iterable[Bucket]) -> list[tuple[int, float]]:
    """Per bucket of one group: `value_percentile`, 100 times the share of the group's
    customers in this bucket or below (rounded to 4 decimals)."""
    ordered = sorted(buckets, key=lambda b: b.bucket)
    everyone = sum(b.customers for b in ordered)
    found, upto = [], 0
    for bucket in ordered:
        upto += bucket.customers
        found.append((bucket.bucket, round(100 * upto / everyone, 4)))
    return found


def pareto_cuts(buckets: Iterable[Bucket], shares: Sequence[float]) -> list[int | None]:
    """The cut point (least value) of each Pareto class, highest class first.

    Buckets go, highest first, to the first class whose share of the positive total the
    values before them have not yet reached; a class no bucket reached takes the cut point
    of the class above (it is empty). Values of zero or less go to the last class. None
    throughout when no value is above zero.
    """
    positive = sorted((b for b in buckets if b.bucket > 0), key=lambda b: -b.bucket)
    total = sum(b.total for b in positive)
    cuts: list[int | None] = [None] * len(shares)
    before = 0
    for bucket in positive:
        cls = next((i for i, share in enumerate(shares) if before < share * total), len(shares) - 1)
        cuts[cls] = bucket.low
        before += bucket.total
    for i in range(1, len(cuts)):
        if cuts[i] is None:
            cuts[i] = cuts[i - 1]
    return cuts


@dataclass(frozen=True)
class Concentration:
    """How concentrated a group's (positive) values are."""

    customers: int
    total: int
    gini: float | None
    top_1pct_share: float | None
    top_10pct_share: float | None
    top_20pct_share: float | None
    lorenz: tuple[float, ...]


def lorenz_at(ascending: Sequence[Bucket], points: Sequence[float]) -> list[float]:
    """The share of the total held by the lowest fraction p of customers, for each p in
    `points` (ascending): exact at bucket edges, linear within a bucket."""
    customers = sum(b.customers for b in ascending)
    total = sum(b.total for b in ascending)
    out: list[float] = []
    i, below, held = 0, 0, 0
    for p in points:
        position = p * customers
        while i < len(ascending) and below + ascending[i].customers <= position:
            below += ascending[i].customers
            held += ascending[i].total
            i += 1
        partial = 0.0
        if i < len(ascending) and position > below:
            b = ascending[i]
            partial = (position - below) * b.total / b.customers
        out.append(min(1.0, (held + partial) / total))
    return out


def concentration(buckets: Iterable[Bucket]) -> Concentration:
    """Gini, top shares and the Lorenz curve of the positive values in `buckets`."""
    ascending = sorted((b for b in buckets if b.bucket > 0), key=lambda b: b.bucket)
    customers = sum(b.customers for b in ascending)
    total = sum(b.total for b in ascending)
    if customers == 0 or total <= 0:
        return Concentration(0, 0, None, None, None, None, ())
    # Gini = 1 - sum over buckets of (customer share) x (Lorenz at both edges): the Gini of
    # the values with each set to its bucket's mean (mean absolute difference over n^2).
    area, held = 0.0, 0
    for b in ascending:
        start = held / total
        held += b.total
        area += (b.customers / customers) * (start + held / total)
    points = [k / LORENZ_POINTS for k in range(LORENZ_POINTS + 1)]
    lorenz = lorenz_at(ascending, points)
    top = lorenz_at(ascending, [0.8, 0.9, 0.99])
    return Concentration(
        customers=customers,
        total=total,
        gini=max(0.0, 1.0 - area),
        top_1pct_share=1.0 - top[2],
        top_10pct_share=1.0 - top[1],
        top_20pct_share=1.0 - top[0],
        lorenz=tuple(lorenz),
    )
