"""Holdout validation: predictions for (calibration_end, holdout_end] against what happened.

Three views, as the literature checks these models: per-customer errors (MAE, RMSE) and
totals; the mean actual against predicted holdout purchases by calibration frequency
(0, 1, ..., 7+); and cumulative repeat occasions per time unit, actual against predicted
(the tracking plot). Aggregates run in Spark; only rows bounded by the calendar (a row per
first-purchase day, per time unit, per bucket) reach the driver.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from revseg.clv import models
from revseg.clv.summary import is_occasion

METRIC, FREQUENCY, TRACKING = "metric", "frequency", "tracking"
TOP_BUCKET = 7  # frequencies of 7 and more share the last bucket, "7+"


@dataclass(frozen=True)
class ValidationRow:
    """One row of `clv_validation` (its kind says which fields it fills)."""

    kind: str
    name: str
    time_index: int | None = None
    customers: int | None = None
    actual: float | None = None
    predicted: float | None = None
    value: float | None = None


def error_metrics(scored: DataFrame) -> list[ValidationRow]:
    """Per-customer errors of the holdout purchases and revenue, and their totals.

    `scored` holds every calibration customer with `holdout_purchases`, `holdout_cents`
    (0 without holdout occasions), `expected_holdout_purchases` and `expected_avg_spend`."""
    actual_n = F.col("holdout_purchases").cast("double")
    predicted_n = F.col("expected_holdout_purchases")
    actual_v = F.col("holdout_cents") / F.lit(100.0)
    predicted_v = predicted_n * F.col("expected_avg_spend")
    row = scored.agg(
        F.count(F.lit(1)).alias("customers"),
        F.avg(F.abs(actual_n - predicted_n)).alias("mae_purchases"),
        F.sqrt(F.avg(F.pow(actual_n - predicted_n, 2))).alias("rmse_purchases"),
        F.sum(actual_n).alias("actual_purchases"),
        F.sum(predicted_n).alias("predicted_purchases"),
        F.avg(F.abs(actual_v - predicted_v)).alias("mae_revenue"),
        F.sqrt(F.avg(F.pow(actual_v - predicted_v, 2))).alias("rmse_revenue"),
        F.sum(actual_v).alias("actual_revenue"),
        F.sum(predicted_v).alias("predicted_revenue"),
    ).first()
    found: dict[str, Any] = row.asDict() if row is not None else {}
    customers = int(found.get("customers") or 0)
    rows = []
    for what in ("purchases", "revenue"):
        rows.append(
            ValidationRow(
                METRIC,
                f"total_{what}",
                customers=customers,
                actual=found.get(f"actual_{what}"),
                predicted=found.get(f"predicted_{what}"),
            )
        )
        for metric in ("mae", "rmse"):
            value = found.get(f"{metric}_{what}")
            rows.append(ValidationRow(METRIC, f"{metric}_{what}", customers=customers, value=value))
    return rows


def frequency_buckets(scored: DataFrame) -> list[ValidationRow]:
    """Mean actual and predicted holdout purchases of the customers with calibration
    frequency 0, 1, ..., 6 and 7 or more (the conditional-expectation check)."""
    bucket = F.least(F.col("frequency"), F.lit(TOP_BUCKET)).alias("bucket")
    found = (
        scored.groupBy(bucket)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.avg(F.col("holdout_purchases").cast("double")).alias("actual"),
            F.avg("expected_holdout_purchases").alias("predicted"),
        )
        .collect()
    )
    rows = []
    for r in sorted(found, key=lambda r: int(r["bucket"])):
        b = int(r["bucket"])
        name = f"{b}+" if b == TOP_BUCKET else str(b)
        rows.append(
            ValidationRow(
                FREQUENCY, name, b, int(r["customers"]), float(r["actual"]), float(r["predicted"])
            )
        )
    return rows


def repeat_days_per_unit(
    days: DataFrame, end_day: int, last_day: int, origin_day: int, unit_days: float
) -> dict[int, int]:
    """Repeat occasions (every occasion after a customer's first) up to `last_day` of the
    customers whose first occasion is on or before `end_day`, per time unit since
    `origin_day`. The first day comes from a window by customer (the days are partitioned
    by customer already), not from a join (see `calibration_customers`)."""
    day = F.col("day")
    first = F.min(F.when(is_occasion() & (day <= end_day), day)).over(
        Window.partitionBy("customer_id")
    )
    repeats = days.where(is_occasion() & (day <= last_day)).withColumn("first_day", first)
    repeats = repeats.where(F.col("first_day").isNotNull() & (day > F.col("first_day")))
    unit = F.floor((day - F.lit(origin_day)) / F.lit(unit_days)).cast("int")
    found = repeats.groupBy(unit.alias("unit")).agg(F.count(F.lit(1)).alias("n")).collect()
    return {int(r["unit"]): int(r["n"]) for r in found}


def cohort_sizes(customers: DataFrame) -> dict[int, int]:
    """Calibration customers per first-purchase day (an epoch day)."""
    found = customers.groupBy("first_day").agg(F.count(F.lit(1)).alias("n")).collect()
    return {int(r["first_day"]): int(r["n"]) for r in found}


def tracking(
    model: str,
    parameters: Mapping[str, float],
    cohorts: Mapping[int, int],
    repeats: Mapping[int, int],
    origin_day: int,
    end_day: int,
    holdout_day: int,
    unit_days: float,
) -> list[ValidationRow]:
    """Cumulative repeat occasions up to the last day of each time unit since `origin_day`,
    actual against predicted: each first-purchase cohort contributes its size times E[X(t)],
    t = (that last day - its first day) / unit, as T is reckoned (a purchase on the last day
    is inside). Units whose last day is after `end_day` are the holdout's."""
    units = math.ceil((holdout_day + 1 - origin_day) / unit_days)
    first_days = np.array(sorted(cohorts), dtype=np.float64)
    sizes = np.array([cohorts[d] for d in sorted(cohorts)], dtype=np.float64)
    rows, actual = [], 0
    for k in range(units):
        # the days d with floor((d - origin) / unit) <= k, as `repeat_days_per_unit` counts
        last_day = min(math.ceil(origin_day + (k + 1) * unit_days) - 1, holdout_day)
        actual += repeats.get(k, 0)
        t = np.clip((last_day - first_days) / unit_days, 0.0, None)
        expected = models.unconditional_purchases(model, parameters, t)
        predicted = float(np.dot(sizes, np.where(t > 0, expected, 0.0)))
        period = "calibration" if last_day <= end_day else "holdout"
        rows.append(ValidationRow(TRACKING, period, k, int(sizes.sum()), float(actual), predicted))
    return rows


def plain_rows(rows: Sequence[ValidationRow]) -> list[dict[str, Any]]:
    return [row.__dict__ for row in rows]
