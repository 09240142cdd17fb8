"""Cut and segment: the cut points of each period (one small collect), each customer's
segment, the tier boundary rows, and the `customer_segments` rows as the table holds them.

Cut points are keyed by integers through the Spark plan; the period names and end days are
made on the driver and joined back by broadcast with the cut points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from revseg import contract
from revseg.config import TierLevel
from revseg.metrics import (
    TOP_DIMENSIONS,
    average_order_value,
    days_before,
    period_end_day,
    to_money,
    top_share,
)
from revseg.periods import Grain
from revseg.tiers import assign_segments, cut_points, tier_boundaries

LABELS = (*contract.PERIOD_KEYS, "period_end_day")


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
        ]
    )


def labelled_cuts(
    rows: Sequence[Any], grains: Sequence[Grain], groups: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Cut point rows keyed by integers, with the period names made on the driver: rows
    are labelled through the broadcast join, not by formatting strings row by row."""
    return [
        (
            row["grain_idx"],
            row["period_key"],
            *[row[group] for group in groups],
            grains[row["grain_idx"]].name,
            grains[row["grain_idx"]].label(row["period_key"]),
            period_end_day(grains[row["grain_idx"]], row["period_key"]),
            row["cut_points"],
        )
        for row in rows
    ]


def period_cuts(
    spark: SparkSession,
    customer_periods: DataFrame,
    grains: Sequence[Grain],
    levels: Sequence[TierLevel],
    accuracy: int,
    groups: Sequence[str],
) -> DataFrame:
    """The cut points of every period (x group), labelled: a small frame to broadcast.

    This runs the first pass (the scan, the shuffle by customer and the aggregates)."""
    rows = cut_points(customer_periods, levels, accuracy, tier_keys(groups)).collect()
    return spark.createDataFrame(labelled_cuts(rows, grains, groups), cuts_schema(groups))


def segmented_rows(
    customer_periods: DataFrame, cuts: DataFrame, levels: Sequence[TierLevel], groups: Sequence[str]
) -> DataFrame:
    """Each customer-period row with its period labels and its `segment` (lazy)."""
    return assign_segments(customer_periods, cuts, levels, tier_keys(groups), LABELS)


def boundary_rows(
    segmented: DataFrame, cuts: DataFrame, levels: Sequence[TierLevel], groups: Sequence[str]
) -> list[dict[str, Any]]:
    """The tier boundary rows of every period (x group), collected: a few per period."""
    frame = tier_boundaries(segmented, cuts, levels, tier_keys(groups), contract.PERIOD_KEYS)
    return [row.asDict() for row in frame.collect()]


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
    )


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
