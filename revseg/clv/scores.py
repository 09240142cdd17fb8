"""Scores per customer, in Spark: the purchase model's closed forms over the distinct summary
rows (a vectorised pandas function, scipy's special functions inside), joined back to the
customers; the Gamma-Gamma mean and the value as column expressions; the predictive segment.

Customers with the same (frequency, recency_days, age_days) have the same p_alive and
expected purchases, so the closed forms run once per distinct row (far fewer than the
customers) and reach every customer by a broadcast join.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from revseg import contract
from revseg.clv import models
from revseg.clv.fit import FitError
from revseg.clv.models import Array
from revseg.clv.summary import mean_repeat_value
from revseg.config import TierLevel
from revseg.metrics import to_money
from revseg.tiers import cut_points, segment_of

SUMMARY_KEYS = ("frequency", "recency_days", "age_days")
SCORED_SCHEMA = (
    "frequency int, recency_days int, age_days int, p_alive double, "
    "expected_purchases double, discounted_purchases double, "
    "expected_holdout_purchases double"
)


@dataclass(frozen=True)
class ScoreOptions:
    """What the closed forms need: the fitted purchase model, the time unit in days, the
    horizon (whole units), the discount rate per unit, and the holdout's length in units."""

    model: str
    parameters: Mapping[str, float]
    unit_days: float
    horizon: int
    unit_discount: float
    holdout_units: float | None = None


def row_scores(
    options: ScoreOptions, frequency: Array, recency_days: Array, age_days: Array
) -> dict[str, Array]:
    """p_alive, expected purchases over the horizon, the same discounted per unit (each
    unit's expected purchases at 1/(1+d)^k), and expected purchases in the holdout."""
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency_days, dtype=np.float64) / options.unit_days
    T = np.asarray(age_days, dtype=np.float64) / options.unit_days
    model, parameters = options.model, options.parameters
    previous, discounted = np.zeros_like(x), np.zeros_like(x)
    for k in range(1, options.horizon + 1):  # a running sum: memory of one step, not all
        current = models.expected_purchases(model, parameters, float(k), x, t_x, T)
        discounted += (current - previous) / (1.0 + options.unit_discount) ** k
        previous = current
    holdout = (
        models.expected_purchases(model, parameters, options.holdout_units, x, t_x, T)
        if options.holdout_units is not None
        else np.full_like(x, np.nan)
    )
    return {
        "p_alive": models.p_alive(model, parameters, x, t_x, T),
        "expected_purchases": previous,
        "discounted_purchases": discounted,
        "expected_holdout_purchases": holdout,
    }


def scored_rows(rows: DataFrame, options: ScoreOptions) -> DataFrame:
    """The distinct summary rows with their scores (`SCORED_SCHEMA`), computed in Spark by
    a vectorised pandas function over Arrow batches."""

    def score(batches: Iterator[object]) -> Iterator[object]:
        import pandas as pd

        for batch in batches:
            assert isinstance(batch, pd.DataFrame)
            keys = batch[list(SUMMARY_KEYS)]
            found = row_scores(
                options,
                keys["frequency"].to_numpy(),
                keys["recency_days"].to_numpy(),
                keys["age_days"].to_numpy(),
            )
            for name, values in found.items():
                if name != "expected_holdout_purchases" and not np.all(np.isfinite(values)):
                    raise FloatingPointError(f"{name} is not finite for some summary rows")
            yield pd.concat([keys.reset_index(drop=True), pd.DataFrame(found)], axis=1)

    return rows.select(*SUMMARY_KEYS).mapInPandas(score, SCORED_SCHEMA)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SpendModel:
    """How each customer's expected value per occasion is made: the fitted Gamma-Gamma
    (`p`, `q`, `gamma`), or without it the customer's own mean repeat value, with
    `population_mean` for customers who have none."""

    population_mean: float
    gamma_gamma: Mapping[str, float] | None = None

    @classmethod
    def fitted(cls, parameters: Mapping[str, float]) -> SpendModel:
        p, q, gamma = parameters["p"], parameters["q"], parameters["gamma"]
        if q <= 1:
            raise FitError(
                f"gamma_gamma: q = {q:.4g} is at most 1, so the mean value per occasion "
                "(p * gamma / (q - 1)) is infinite; leave gamma_gamma out of clv.models"
            )
        return cls(p * gamma / (q - 1), dict(parameters))


def expected_spend(spend: SpendModel, frequency: Column, repeat_cents: Column) -> Column:
    """E[value of an occasion | x, m] in currency units: Gamma-Gamma's conditional mean, or
    (without it) the customer's own mean; the population mean without a positive own mean."""
    m = mean_repeat_value(frequency, repeat_cents)
    own = (frequency > 0) & (repeat_cents > 0)
    fallback = F.lit(spend.population_mean)
    if spend.gamma_gamma is None:
        return F.when(own, m).otherwise(fallback)
    p, q, gamma = (F.lit(spend.gamma_gamma[k]) for k in ("p", "q", "gamma"))
    conditional = p * (gamma + frequency * m) / (p * frequency + q - 1)
    return F.when(own, conditional).otherwise(fallback)


def with_scores(
    customers: DataFrame, scored: DataFrame, spend: SpendModel, broadcast: bool = True
) -> DataFrame:
    """Customers with p_alive, the expectations, `expected_avg_spend` and `clv_cents` (the
    discounted expected revenue over the horizon, rounded to the cent). The scored rows
    are broadcast unless there are too many (`broadcast`: then a shuffle join)."""
    joined = customers.join(
        F.broadcast(scored) if broadcast else scored, list(SUMMARY_KEYS), "left"
    )
    spend_value = expected_spend(spend, F.col("frequency"), F.col("repeat_cents"))
    return joined.withColumns(
        {
            "expected_avg_spend": spend_value,
            "clv_cents": F.round(spend_value * F.col("discounted_purchases") * 100).cast("long"),
        }
    )


def clv_cut_points(scored: DataFrame, levels: Sequence[TierLevel], accuracy: int) -> list[int]:
    """The cut points (cents) of the predictive segments over every customer's value, one
    sketch; empty when no customer has a positive value."""
    cuts = cut_points(scored.withColumnRenamed("clv_cents", "revenue_cents"), levels, accuracy, ())
    row = cuts.first()
    return [] if row is None or row["cut_points"] is None else [int(c) for c in row["cut_points"]]


def clv_segment(clv_cents: Column, cuts: Sequence[int], levels: Sequence[TierLevel]) -> Column:
    """The predictive segment: the tier levels applied to the value (`revseg.tiers`)."""
    array = (
        F.array(*[F.lit(c).cast("long") for c in cuts])
        if cuts
        else F.lit(None).cast("array<bigint>")
    )
    return segment_of(clv_cents, array, [level.name for level in levels])


def customer_rows(segmented: DataFrame, end: date, run_id: str, holdout: bool) -> DataFrame:
    """The scored customers in the shape of `customer_clv`."""
    frequency = F.col("frequency")
    mean_cents = F.when(frequency > 0, F.round(F.col("repeat_cents") / frequency).cast("long"))
    null_int, null_money = F.lit(None).cast("int"), F.lit(None).cast(contract.MONEY)
    return segmented.select(
        "customer_id",
        F.lit(end).alias("calibration_end"),
        F.date_from_unix_date("first_day").alias("first_purchase_date"),
        "frequency",
        "recency",
        "T",
        to_money(mean_cents).alias("monetary_value"),
        to_money("calibration_cents").alias("calibration_revenue"),
        "p_alive",
        "expected_purchases",
        to_money(F.round(F.col("expected_avg_spend") * 100).cast("long")).alias(
            "expected_avg_spend"
        ),
        to_money("clv_cents").alias("clv"),
        "clv_segment",
        (F.col("holdout_purchases").cast("int") if holdout else null_int).alias(
            "holdout_purchases"
        ),
        (to_money("holdout_cents") if holdout else null_money).alias("holdout_revenue"),
        (F.col("expected_holdout_purchases") if holdout else F.lit(None).cast("double")).alias(
            "expected_holdout_purchases"
        ),
        F.lit(run_id).alias("run_id"),
    )
