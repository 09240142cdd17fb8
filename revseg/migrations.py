"""Tier migrations: per pair of consecutive periods of a grain (x group), how many customers
went from each segment to each, and the revenue they brought in either period.

A customer with a row in both periods moves from its segment in the first to its segment
in the second. Without a row in the first it comes from `new` (no revenue in any period
before) or `reactivated` (revenue in some earlier period); without a row in the second it
goes to `lapsed`. So each pair counts the union of both periods' customers, its
`from_revenue` adds up to the first period's revenue and its `to_revenue` to the second's.

One window over each customer's periods (the cached rows are partitioned by customer
already: no shuffle) and one small aggregate, collected: a few dozen rows per pair.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from revseg.config import LAPSED_SEGMENT, NEW_SEGMENT, REACTIVATED_SEGMENT
from revseg.period_keys import period_key_map
from revseg.periods import Grain, key_step, keys_of_labels


def migration_counts(
    rows: DataFrame, grains: Sequence[Grain], groups: Sequence[str] = ()
) -> DataFrame:
    """Per grain, target period key (`to_key`), group and (from_segment, to_segment):
    customers, from_cents and to_cents, over every pair a customer's rows take part in:
    the pair into each of its periods and, when the next period has no row of it, the pair
    out of it (to `lapsed`). Pairs at the edges of the data are cut by `pairs_to_write`."""
    by_customer = Window.partitionBy("customer_id", *groups, "grain_idx").orderBy("period_key")
    before = by_customer.rowsBetween(Window.unboundedPreceding, -1)
    steps = F.array(*[F.lit(key_step(grain)) for grain in grains])
    step = F.element_at(steps, F.col("grain_idx") + 1)
    key, revenue, segment = F.col("period_key"), F.col("revenue_cents"), F.col("segment")
    follows = F.coalesce(F.lag("period_key").over(by_customer) == key - step, F.lit(False))
    earned_before = F.max(F.when(revenue > 0, 1).otherwise(0)).over(before)
    came_from = (
        F.when(follows, F.lag("segment").over(by_customer))
        .when(earned_before == 1, F.lit(REACTIVATED_SEGMENT))
        .otherwise(F.lit(NEW_SEGMENT))
    )
    stays = F.coalesce(F.lead("period_key").over(by_customer) == key + step, F.lit(False))
    # (a generator cannot take window functions: the neighbours first, then the pairs)
    neighbours = rows.select(
        "grain_idx",
        *groups,
        key.alias("key"),
        step.alias("step"),
        segment.alias("segment"),
        revenue.alias("cents"),
        came_from.alias("came_from"),
        F.when(follows, F.lag("revenue_cents").over(by_customer)).alias("came_with"),
        stays.alias("stays"),
    )
    key, segment, cents = F.col("key"), F.col("segment"), F.col("cents")
    arrival = _pair(key, F.col("came_from"), segment, F.col("came_with"), cents)
    departure = _pair(key + F.col("step"), segment, F.lit(LAPSED_SEGMENT), cents, F.lit(0))
    pairs = F.when(F.col("stays"), F.array(arrival)).otherwise(F.array(arrival, departure))
    exploded = neighbours.select("grain_idx", *groups, F.inline(pairs))
    return exploded.groupBy("grain_idx", "to_key", *groups, "from_segment", "to_segment").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum(F.coalesce("from_cents", F.lit(0))).alias("from_cents"),
        F.sum("to_cents").alias("to_cents"),
    )


def _pair(to_key: Column, source: Column, target: Column, from_c: Column, to_c: Column) -> Column:
    return F.struct(
        to_key.cast("int").alias("to_key"),
        source.alias("from_segment"),
        target.alias("to_segment"),
        from_c.cast("long").alias("from_cents"),
        to_c.cast("long").alias("to_cents"),
    )


def migration_rows(
    counts: Iterable[Mapping[str, Any]],
    grains: Sequence[Grain],
    keys: Mapping[str, Sequence[int]],
    groups: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The tier_migrations rows of the pairs whose target period's key is in `keys`
    (grain name -> keys) and whose source period is a key of the grain too (`known`): the
    first period of the data has no pair into it, the last none out of it."""
    rows = []
    for count in counts:
        grain = grains[count["grain_idx"]]
        to_key = count["to_key"]
        if to_key not in keys.get(grain.name, ()):
            continue
        rows.append(
            {
                "period": grain.label(to_key),
                "period_grain": grain.name,
                **{group: count[group] for group in groups},
                "from_period": grain.label(to_key - key_step(grain)),
                "to_period": grain.label(to_key),
                "from_segment": count["from_segment"],
                "to_segment": count["to_segment"],
                "customers": int(count["customers"]),
                "from_revenue": Decimal(int(count["from_cents"])).scaleb(-2),
                "to_revenue": Decimal(int(count["to_cents"])).scaleb(-2),
            }
        )
    return rows


def pair_keys(grain: Grain, known: Iterable[int], targets: Iterable[int]) -> list[int]:
    """The target keys whose pair can be written: the period before each is known too."""
    found, step = set(known), key_step(grain)
    return sorted(key for key in set(targets) if key in found and key - step in found)


def migration_targets(
    grain: Grain, written: Iterable[int], stored: Iterable[int]
) -> tuple[list[int], list[int]]:
    """The target keys whose pairs a run writes, and the keys of tier_migrations it replaces.

    Written periods change the pairs into and out of them, and whether a later absent
    customer comes back `reactivated` or `new`: the pairs into every period from the first
    written one on are rewritten, from the written rows and the stored ones. A written
    period without a pair into it (the first of the data) is replaced all the same, so
    that no pair into it outlives the period before it."""
    written, stored = set(written), set(stored)
    if not written:
        return [], []
    first = min(written)
    targets = written | {key for key in stored if key > first}
    pairs = pair_keys(grain, written | stored, targets)
    return pairs, sorted(targets)


def migration_counts_of(
    spark: SparkSession,
    rows: DataFrame,
    grains: Sequence[Grain],
    written: Mapping[str, Collection[str]],
    stored: Mapping[str, Collection[str]],
    groups: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """The tier_migrations rows of a run and the periods it replaces, from `rows` (customer,
    period_grain, period, groups, segment, revenue_cents) of the `written` periods (grain
    name -> labels) and of the `stored` ones of the same grains."""
    targets: dict[str, list[int]] = {}
    replaced: list[str] = []
    labels: dict[str, set[str]] = {}
    for grain in grains:
        if grain.name not in written:
            continue
        mine, theirs = set(written[grain.name]), set(stored.get(grain.name, ()))
        labels[grain.name] = mine | theirs
        keys = keys_of_labels(grain, mine | theirs)
        pairs, replaced_keys = migration_targets(
            grain,
            [keys[label] for label in mine if label in keys],
            [keys[label] for label in theirs if label in keys],
        )
        targets[grain.name] = pairs
        replaced += [grain.label(key) for key in replaced_keys]
    key_map = period_key_map(spark, grains, labels)
    joined = rows.join(F.broadcast(key_map), ["period_grain", "period"]).select(
        "customer_id", "grain_idx", "period_key", *groups, "segment", "revenue_cents"
    )
    counts = [row.asDict() for row in migration_counts(joined, grains, groups).collect()]
    return migration_rows(counts, grains, targets, groups), replaced
