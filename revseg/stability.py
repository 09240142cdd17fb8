"""Stable tiers (`tiers.stability`): a customer's tier in a period depends on its tier in
the period before, so the tiers of a grain are a fold over each customer's periods, in
order.

The rules, for a customer whose previous period (the one just before, of the same grain)
put it in tier `p`, and whose metric `v` this period's cut points alone put in tier `r`:

- hysteresis `h`: it moves up into a tier `j` above `p` only when `v >= cut_j * (1 + h)`
  (the highest such tier not above `r`), down into a tier `j` below `p` only when
  `v < cut_(j-1) * (1 - h)` (the lowest such tier not below `r`), where `cut_j` is tier
  `j`'s cut point; otherwise the tier it would take is `p`;
- confirm `k`: it takes that tier only when that same tier was the one it would take in
  `k` consecutive periods; until then it stays in `p` and the tier is *pending*.

Without a previous period in a tier (its first period, a gap, or a segment that is not a
tier: no_revenue, no_metric, below_thresholds) the cut points alone decide. Special
segments are never held back.

The fold runs as Spark's `aggregate` over each customer's periods, collected per customer
(the cached rows are partitioned by customer already: no shuffle for a full run): no UDF.
Where a run starts after stored periods, the stored tier of the period before its first
is the fold's seed (`segment`, `pending_segment`, `pending_periods` of customer_segments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructType

from revseg.periods import Grain, key_step
from revseg.tiers import METRIC_VALUE

STATE_COLUMNS = ("cut_segment", "pending_segment", "pending_periods")


@dataclass(frozen=True)
class Stability:
    """The settings of stable tiers as plain values."""

    hysteresis: float
    confirm_periods: int


def stable_segments(
    segmented: DataFrame,
    cuts: DataFrame,
    names: Sequence[str],
    grains: Sequence[Grain],
    groups: Sequence[str],
    stability: Stability,
    seeds: DataFrame | None = None,
) -> DataFrame:
    """`segmented` (customer periods with `segment` by the cut points, keyed by grain_idx
    and period_key) with `segment` made stable, and `cut_segment` (by the cut points
    alone), `pending_segment` and `pending_periods` beside it.

    `seeds`: stored state to start from (customer_id, grain_idx, groups, period_key,
    segment, pending_segment, pending_periods), each standing at its period."""
    keys = ["customer_id", "grain_idx", *groups]
    tiers = F.array(*[F.lit(name) for name in names])
    cut_keys = ["grain_idx", "period_key", *groups]
    with_cuts = segmented.join(
        F.broadcast(cuts.select(*cut_keys, F.col("cut_points").alias("_cuts"))), cut_keys, "left"
    )
    row_type = StructType(segmented.schema.fields)
    elements = with_cuts.select(
        *keys,
        F.struct(
            F.col("period_key").cast("int").alias("k"),
            F.lit(False).alias("seed"),
            (F.array_position(tiers, F.col("segment")).cast("int") - 1).alias("t"),
            F.col(METRIC_VALUE).cast("double").alias("v"),
            F.col("_cuts").alias("c"),
            F.lit(None).cast("int").alias("s_stable"),
            F.lit(None).cast("int").alias("s_pending"),
            F.lit(None).cast("int").alias("s_n"),
            F.struct(*[F.col(c) for c in segmented.columns]).alias("row"),
        ).alias("e"),
    )
    if seeds is not None:
        elements = elements.unionByName(_seed_elements(seeds, keys, tiers, row_type))
    steps = F.array(*[F.lit(key_step(grain)) for grain in grains])
    in_order = F.array_sort(F.collect_list("e"), _before)
    grouped = elements.groupBy(*keys).agg(in_order.alias("es"))
    step = F.element_at(steps, F.col("grain_idx") + 1)
    folded = grouped.select(
        "es",
        F.aggregate(
            "es",
            _initial_state(),
            lambda acc, e: _step(acc, e, step, len(names), stability),
        ).alias("fold"),
    )
    pairs = F.transform(
        "es", lambda e, i: F.struct(e.alias("e"), F.element_at(F.col("fold.out"), i + 1).alias("o"))
    )
    exploded = folded.select(F.inline(pairs)).where(~F.col("e.seed"))
    stable, pending = F.col("o.stable"), F.col("o.pending")
    segment = F.when(stable >= 0, F.element_at(tiers, stable + 1)).otherwise(F.col("e.row.segment"))
    return exploded.select(
        *[(segment if c == "segment" else F.col(f"e.row.{c}")).alias(c) for c in segmented.columns],
        F.col("e.row.segment").alias("cut_segment"),
        F.when(pending >= 0, F.element_at(tiers, pending + 1)).alias("pending_segment"),
        F.when(pending >= 0, F.col("o.n")).cast("int").alias("pending_periods"),
    )


def _before(a: Column, b: Column) -> Column:
    """Periods in order; at the same period a seed after the computed row (it stands)."""
    return (
        F.when(a["k"] < b["k"], -1)
        .when(a["k"] > b["k"], 1)
        .when(a["seed"] == b["seed"], 0)
        .when(a["seed"], 1)
        .otherwise(-1)
    )


def _seed_elements(
    seeds: DataFrame, keys: Sequence[str], tiers: Column, row_type: StructType
) -> DataFrame:
    def index(name: str) -> Column:
        return F.array_position(tiers, F.col(name)).cast("int") - 1

    return seeds.select(
        *keys,
        F.struct(
            F.col("period_key").cast("int").alias("k"),
            F.lit(True).alias("seed"),
            F.lit(None).cast("int").alias("t"),
            F.lit(None).cast("double").alias("v"),
            F.lit(None).cast("array<bigint>").alias("c"),
            index("segment").alias("s_stable"),
            index("pending_segment").alias("s_pending"),
            F.coalesce(F.col("pending_periods"), F.lit(0)).cast("int").alias("s_n"),
            F.lit(None).cast(row_type).alias("row"),
        ).alias("e"),
    )


def _initial_state() -> Column:
    out = F.array().cast("array<struct<stable:int,pending:int,n:int>>")
    none = F.lit(None).cast(IntegerType())
    return F.struct(
        none.alias("prev"),
        none.alias("stable"),
        none.alias("pending"),
        F.lit(0).alias("n"),
        out.alias("out"),
    )


def _step(acc: Column, e: Column, step: Column, tiers: int, stability: Stability) -> Column:
    """One period of the fold: the state after it, its output appended."""
    follows = acc["prev"].isNotNull() & (e["k"] == acc["prev"] + step)
    # a previous tier only where the period before is there and in a tier
    previous = F.when(follows & (acc["stable"] >= 0), acc["stable"])
    pending_before = F.when(follows, acc["pending"])
    count_before = F.when(follows, acc["n"]).otherwise(F.lit(0))
    raw = e["t"]
    candidate = F.when(raw < 0, raw).otherwise(
        F.coalesce(held_tier(previous, raw, e["v"], e["c"], tiers, stability.hysteresis), raw)
    )
    counted = F.when(candidate == pending_before, count_before + 1).otherwise(F.lit(1))
    moves = (
        previous.isNull()
        | (candidate < 0)
        | (candidate == previous)
        | (counted >= stability.confirm_periods)
    )
    stable = F.when(moves, candidate).otherwise(previous)
    pending = F.when(moves, F.lit(None).cast("int")).otherwise(candidate)
    count = F.when(moves, F.lit(0)).otherwise(counted)
    out = F.struct(stable.alias("stable"), pending.alias("pending"), count.alias("n"))
    seeded = F.struct(
        e["k"].alias("prev"),
        e["s_stable"].alias("stable"),
        e["s_pending"].alias("pending"),
        F.coalesce(e["s_n"], F.lit(0)).alias("n"),
        F.concat(acc["out"], F.array(out)).alias("out"),
    )
    computed = F.struct(
        e["k"].alias("prev"),
        stable.alias("stable"),
        pending.alias("pending"),
        count.alias("n"),
        F.concat(acc["out"], F.array(out)).alias("out"),
    )
    return F.when(e["seed"], seeded).otherwise(computed)


def held_tier(
    previous: Column, raw: Column, value: Column, cuts: Column, tiers: int, hysteresis: float
) -> Column:
    """The tier (index, 0 highest) a customer in `previous` takes by the hysteresis rule
    when the cut points alone give `raw`; null without a previous tier."""
    up = previous
    for j in reversed(range(tiers - 1)):  # the highest qualifying tier wins
        passes = value >= cuts[j].cast("double") * (1.0 + hysteresis)
        up = F.when((raw <= j) & (F.lit(j) < previous) & passes, F.lit(j)).otherwise(up)
    down = previous
    for j in range(1, tiers):  # the lowest qualifying tier wins
        passes = value < cuts[j - 1].cast("double") * (1.0 - hysteresis)
        down = F.when((raw >= j) & (F.lit(j) > previous) & passes, F.lit(j)).otherwise(down)
    return F.when(raw < previous, up).when(raw > previous, down).otherwise(previous)


def held_back(
    stable: DataFrame, grains: Sequence[Grain], groups: Sequence[str]
) -> list[dict[str, Any]]:
    """Per period (x group): the customers whose tier the rules kept from the one the cut
    points alone give (one small aggregate, collected), for the run's summary."""
    rows = (
        stable.where(F.col("segment") != F.col("cut_segment"))
        .groupBy("grain_idx", "period_key", *groups)
        .agg(F.count(F.lit(1)).alias("customers"))
        .collect()
    )
    return sorted(
        (
            {
                "period_grain": grains[row["grain_idx"]].name,
                "period": grains[row["grain_idx"]].label(row["period_key"]),
                **{group: row[group] for group in groups},
                "customers": int(row["customers"]),
            }
            for row in rows
        ),
        key=lambda r: (r["period_grain"], r["period"], *[str(r[g]) for g in groups]),
    )
