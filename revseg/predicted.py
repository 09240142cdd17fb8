"""The `predicted_clv` tier metric: each customer period ranked by the customer's
predicted value from `customer_clv`, of the latest calibration date at or before the
period's last day (a period before every calibration has none: `no_metric`).

Which calibration date serves which period is decided on the driver, from the distinct
periods of the run and the few calibration dates, and joined back by broadcast.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType

from revseg.periods import Grain
from revseg.tiers import CLV_CENTS

KEYS = ("grain_idx", "period_key")
SERVED_SCHEMA = StructType(
    [
        StructField("grain_idx", IntegerType(), False),
        StructField("period_key", IntegerType(), False),
        StructField("calibration_end", DateType(), False),
    ]
)


@dataclass(frozen=True)
class ClvScores:
    """The customer_clv rows (customer_id, calibration_end, clv) and its calibration dates."""

    scores: DataFrame
    dates: tuple[date, ...]


def calibration_of_periods(
    keys: Iterable[tuple[int, int]], grains: Sequence[Grain], dates: Sequence[date]
) -> list[tuple[int, int, date]]:
    """(grain_idx, period_key, calibration date) for each period that has one: the latest
    date at or before the period's last day."""
    ordered = sorted(dates)
    served = []
    for idx, key in keys:
        last_day = grains[idx].last_day(key)
        at = bisect_right(ordered, last_day)
        if at:
            served.append((idx, key, ordered[at - 1]))
    return served


def with_predicted_clv(
    spark: SparkSession, periods: DataFrame, grains: Sequence[Grain], clv: ClvScores
) -> DataFrame:
    """The customer periods with `clv_cents` beside them (null where the customer has no
    score of the period's calibration date). One small job finds the run's periods."""
    keys = [(r["grain_idx"], r["period_key"]) for r in periods.select(*KEYS).distinct().collect()]
    served = spark.createDataFrame(calibration_of_periods(keys, grains, clv.dates), SERVED_SCHEMA)
    scores = clv.scores.select(
        "customer_id", "calibration_end", (F.col("clv") * 100).cast("long").alias(CLV_CENTS)
    )
    return (
        periods.join(F.broadcast(served), list(KEYS), "left")
        .join(scores, ["customer_id", "calibration_end"], "left")
        .drop("calibration_end")
    )
