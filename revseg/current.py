"""The current segment of every customer: one row per customer and grain (x group), the
table a CRM sync reads.

A customer's current period is its latest period with revenue above zero; its segment
and revenue are that period's, and `segment_since` is the first period of the unbroken run
of consecutive periods in that segment that ends there. One window over each customer's
periods (in key order) and one aggregate keyed like it: no second shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from revseg.metrics import to_money

# The columns `current_segments` reads: one row per customer period.
CURRENT_INPUT = (
    "customer_id",
    "period_grain",
    "period",
    "period_key",
    "step",
    "segment",
    "revenue_cents",
    "value_percentile",
)


def current_segments(rows: DataFrame, groups: Sequence[str] = ()) -> DataFrame:
    """Per customer, grain and group: the latest period with revenue, its segment, revenue,
    value_percentile and `segment_since` (customers who never had revenue have no row).

    `rows` hold CURRENT_INPUT and the group columns; `step` is how far the keys of two
    consecutive periods of the grain are apart."""
    keys = ["customer_id", "period_grain", *groups]
    by_customer = Window.partitionBy(*keys).orderBy("period_key")
    so_far = by_customer.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    continues = (F.lag("segment").over(by_customer) == F.col("segment")) & (
        F.lag("period_key").over(by_customer) == F.col("period_key") - F.col("step")
    )
    starts = rows.select("*", F.coalesce(continues, F.lit(False)).alias("continues"))
    run_start = F.last(F.when(~F.col("continues"), F.col("period")), ignorenulls=True)
    with_since = starts.select("*", run_start.over(so_far).alias("segment_since"))
    latest = F.struct(
        "period", "segment", "revenue_cents", "value_percentile", "segment_since"
    ).alias("latest")
    found = with_since.groupBy(*keys).agg(
        F.max_by(latest, F.when(F.col("revenue_cents") > 0, F.col("period_key"))).alias("latest")
    )
    return found.where(F.col("latest").isNotNull()).select(
        "customer_id",
        "period_grain",
        *groups,
        F.col("latest.period").alias("period"),
        F.col("latest.segment").alias("segment"),
        to_money(F.col("latest.revenue_cents")).alias("revenue"),
        F.col("latest.value_percentile").alias("value_percentile"),
        F.col("latest.segment_since").alias("segment_since"),
    )


def with_clv(current: DataFrame, clv: DataFrame | None) -> DataFrame:
    """The current segments with each customer's latest CLV (`clv`: customer_clv rows of
    one calibration date), null columns without one."""
    if clv is None:
        return current.select(
            "*",
            F.lit(None).cast("decimal(18,2)").alias("clv"),
            F.lit(None).cast("double").alias("p_alive"),
            F.lit(None).cast("string").alias("clv_segment"),
            F.lit(None).cast("date").alias("calibration_end"),
        )
    scores = clv.select("customer_id", "clv", "p_alive", "clv_segment", "calibration_end")
    return current.join(scores, ["customer_id"], "left")
