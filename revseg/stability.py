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
The rows travel through it whole: joining the fold's states back to the rows by key cost
more than carrying them (and needs a checkpoint on Spark Connect, whose client refuses a
join of two frames that carry the same observation).
Where a run starts after stored periods, the stored tier of the period before its first
is the fold's seed (`segment`, `pending_segment`, `pending_periods` of customer_segments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    raw = F.array_position(tiers, F.col("segment")).cast("int") - 1
    value, points = F.col(METRIC_VALUE).cast("double"), F.col("_cuts")
    # the tier the hysteresis rule gives from each previous tier: made here, row by row
    # and code-generated, so that the fold (interpreted, step by step) only looks it up
    held = F.array(
        *[
            held_tier(F.lit(p), raw, value, points, len(names), stability.hysteresis)
            for p in range(len(names))
        ]
    )
    row_type = StructType(segmented.schema.fields)
    elements = with_cuts.select(
        *keys,
        F.struct(
            F.col("period_key").cast("int").alias("k"),
            F.lit(False).alias("seed"),
            raw.alias("t"),
            held.alias("h"),
            F.lit(None).cast("int").alias("s_stable"),
            F.lit(None).cast("int").alias("s_pending"),
            F.lit(None).cast("int").alias("s_n"),
            F.struct(*[F.col(c) for c in segmented.columns]).alias("row"),
        ).alias("e"),
    )
    if seeds is not None:
        elements = elements.unionByName(_seed_elements(seeds, keys, tiers, row_type))
    steps = F.array(*[F.lit(key_step(grain)) for grain in grains])
    # periods in order (k first); at the same period a seed after the computed row (it
    # stands): false sorts before true
    in_order = F.sort_array(F.collect_list("e"))
    grouped = elements.groupBy(*keys).agg(in_order.alias("es"))
    step = F.element_at(steps, F.col("grain_idx") + 1)
    folded = grouped.select(
        "es",
        F.aggregate(
            "es",
            _initial_state(),
            lambda acc, e: _step(acc, e, step, stability),
        ).alias("fold"),
    )
    # each period beside its output (zipped: a lambda reading the fold could be given
    # the fold itself by the optimizer, to run once per period)
    pairs = F.arrays_zip(F.col("es").alias("e"), F.col("fold.out").alias("o"))
    exploded = folded.select(F.inline(pairs)).where(~F.col("e.seed"))
    rows = exploded.select(
        *[F.col(f"e.row.{c}").alias(c) for c in segmented.columns],
        *[F.col(f"o.{part}").alias(f"_{part}") for part in ("stable", "pending", "n")],
    )
    return _with_state(rows, segmented.columns, tiers)


def _with_state(rows: DataFrame, columns: Sequence[str], tiers: Column) -> DataFrame:
    """The rows with the fold's state (`_stable`, `_pending`, `_n`: tier indexes and a
    count) as the table's columns: the stable `segment` where the row is in a tier."""
    stable, pending = F.col("_stable"), F.col("_pending")
    segment = F.when(stable >= 0, F.element_at(tiers, stable + 1)).otherwise(F.col("segment"))
    return rows.select(
        *[(segment if c == "segment" else F.col(c)).alias(c) for c in columns],
        F.col("segment").alias("cut_segment"),
        F.when(pending >= 0, F.element_at(tiers, pending + 1)).alias("pending_segment"),
        F.when(pending >= 0, F.col("_n")).cast("int").alias("pending_periods"),
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
            F.lit(None).cast("array<int>").alias("h"),
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


def let(value: Column, body: Callable[[Column], Column]) -> Column:
    """`body(value)` with `value` computed once. The fold's lambdas are evaluated without
    code generation or common subexpression elimination: a value used in several places
    of a step would be computed in each."""
    return F.element_at(F.transform(F.array(value), body), 1)


def _step(acc: Column, e: Column, step: Column, stability: Stability) -> Column:
    """One period of the fold: the state after it, its output appended."""
    follows = acc["prev"].isNotNull() & (e["k"] == acc["prev"] + step)
    before = F.struct(
        # a previous tier only where the period before is there and in a tier
        F.when(follows & (acc["stable"] >= 0), acc["stable"]).alias("tier"),
        F.when(follows, acc["pending"]).alias("pending"),
        F.when(follows, acc["n"]).otherwise(F.lit(0)).alias("n"),
    )
    return F.when(e["seed"], _seeded(acc, e)).otherwise(
        let(before, lambda b: _computed(acc, e, b, stability))
    )


def _computed(acc: Column, e: Column, before: Column, stability: Stability) -> Column:
    previous, raw = before["tier"], e["t"]
    # (not a coalesce: Spark takes element_at of a null index for never null, and drops it)
    candidate = F.when((raw < 0) | previous.isNull(), raw).otherwise(
        F.element_at(e["h"], previous + 1)
    )

    def state(c: Column) -> Column:
        counted = F.when(c == before["pending"], before["n"] + 1).otherwise(F.lit(1))
        moves = (
            previous.isNull() | (c < 0) | (c == previous) | (counted >= stability.confirm_periods)
        )
        out = F.struct(
            F.when(moves, c).otherwise(previous).alias("stable"),
            F.when(moves, F.lit(None).cast("int")).otherwise(c).alias("pending"),
            F.when(moves, F.lit(0)).otherwise(counted).alias("n"),
        )
        return let(
            out,
            lambda o: F.struct(
                e["k"].alias("prev"),
                o["stable"].alias("stable"),
                o["pending"].alias("pending"),
                o["n"].alias("n"),
                F.concat(acc["out"], F.array(o)).alias("out"),
            ),
        )

    return let(candidate, state)


def _seeded(acc: Column, e: Column) -> Column:
    """A stored period: its state stands as the one before the next period."""
    out = F.struct(
        e["s_stable"].alias("stable"),
        e["s_pending"].alias("pending"),
        F.coalesce(e["s_n"], F.lit(0)).alias("n"),
    )
    return F.struct(
        e["k"].alias("prev"),
        e["s_stable"].alias("stable"),
        e["s_pending"].alias("pending"),
        F.coalesce(e["s_n"], F.lit(0)).alias("n"),
        F.concat(acc["out"], F.array(out)).alias("out"),
    )


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
