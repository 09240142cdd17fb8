"""The CLV run, in the order of DESIGN's clv line: read (source and rates, once) -> counted
transactions (the segmentation's own first steps) -> purchase occasions -> calibration
summary -> distinct rows to the driver -> fits -> scores in Spark -> holdout validation ->
write customer_clv, clv_validation, then clv_models.

Like `pipeline.py`, this module sees the whole `Config` and hands the stages plain values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.caching import persisted, unpersisted
from revseg.clv import summary as cs
from revseg.clv import validation as cv
from revseg.clv.fit import Fit, fit_model
from revseg.clv.models import GAMMA_GAMMA
from revseg.clv.scores import (
    ScoreOptions,
    SpendModel,
    clv_cut_points,
    clv_segment,
    customer_rows,
    scored_rows,
    with_scores,
)
from revseg.compute import StageTimer
from revseg.config import ClvConfig, Config
from revseg.config.rules import validate_clv
from revseg.customer_periods import counted_transactions, kept_counts, observed_metrics
from revseg.errors import ConfigError, RunError
from revseg.io.changes import delta_version
from revseg.io.clv_tables import ensure_clv_tables, write_calibration
from revseg.io.current_table import refresh_current_segments
from revseg.io.inputs import Inputs, read_inputs
from revseg.io.paths import redacting_logger
from revseg.io.source import explain_read_failure
from revseg.io.table_ref import Outputs
from revseg.periods import make_grains
from revseg.pipeline import check_counts, pass_options
from revseg.result import RunCounts

logger = redacting_logger(__name__)
_EPOCH = date(1970, 1, 1)
_TOTAL_CENTS = "clv_counted_cents"
# Scored summary rows up to this many reach the customers by a broadcast join (about
# 60 bytes each on the driver and every executor); more, by a shuffle join.
BROADCAST_ROWS = 2_000_000


@dataclass(frozen=True)
class SegmentValue:
    """Customers and predicted value (cents) of one predictive segment."""

    segment: str
    customers: int
    clv_cents: int


@dataclass(frozen=True)
class ClvResult:
    """What a CLV run fitted, scored and wrote."""

    run_id: str
    calibration_end: date
    holdout_end: date | None
    time_unit: str
    horizon: int
    currency: str
    customers: int
    repeat_customers: int
    spend_customers: int
    summary_rows: int
    fits: tuple[Fit, ...]
    segments: tuple[SegmentValue, ...]
    validation: tuple[cv.ValidationRow, ...]
    counts: RunCounts
    refund_only_days: int
    refund_only_cents: int
    table_versions: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def fit(self, model: str) -> Fit | None:
        return next((f for f in self.fits if f.model == model), None)


def clv_settings(
    config: Config, calibration_end: date | None = None, holdout_end: date | None = None
) -> ClvConfig:
    """The `clv` section with the command's dates applied, checked again."""
    clv = config.clv
    clv = replace(
        clv,
        calibration_end=calibration_end or clv.calibration_end,
        holdout_end=holdout_end or clv.holdout_end,
    )
    validate_clv(clv)
    if clv.holdout_end is not None and clv.calibration_end is None:
        raise ConfigError(
            "config key 'clv.holdout_end': needs clv.calibration_end (or --calibration-end) "
            "before it: the holdout is the time after the calibration"
        )
    return clv


def run_clv(
    spark: SparkSession,
    config: Config,
    calibration_end: date | None = None,
    holdout_end: date | None = None,
    as_of: date | None = None,
    run_id: str | None = None,
) -> ClvResult:
    """Fit the configured models on the calibration window, score every customer, validate
    on the holdout (with one), and replace the calibration date in the three CLV tables.

    The calibration ends on `calibration_end` (else `clv.calibration_end`, else the last
    day with a purchase on or before `as_of`): never the wall clock."""
    clv = clv_settings(config, calibration_end, holdout_end)
    timer = StageTimer(spark)
    version = delta_version(spark, config.source)
    inputs = read_inputs(spark, config.source, config.revenue.fx_rates, version)
    outputs = Outputs.of(config.output)
    ensure_clv_tables(spark, outputs, {"periods.timezone": config.periods.timezone})
    try:
        return _fit_score_write(spark, config, clv, inputs, outputs, as_of, run_id, timer)
    except Exception as err:
        clear = explain_read_failure(err)
        if clear is not None:
            raise clear from None
        raise


def _fit_score_write(
    spark: SparkSession,
    config: Config,
    clv: ClvConfig,
    inputs: Inputs,
    outputs: Outputs,
    as_of: date | None,
    run_id: str | None,
    timer: StageTimer,
) -> ClvResult:
    options = pass_options(config, inputs.rates, as_of)
    counted = counted_transactions(inputs.source, inputs.columns, options)
    kept = Observation("clv")
    unique = counted.unique.observe(
        kept,
        *kept_counts(options.refunds_to_sale),
        F.coalesce(F.sum("amount_cents"), F.lit(0)).alias(_TOTAL_CENTS),
    )
    cached: list[DataFrame] = []  # released whatever happens

    def cache(frame: DataFrame, what: str) -> DataFrame:
        cached.append(persisted(frame, what))
        return cached[-1]

    days = cache(cs.occasions(unique, options.timezone), "the purchase days")
    try:
        with timer("summary"):
            span = days.where(cs.is_occasion()).agg(F.max("day").alias("last")).first()
            observed = {**observed_metrics(counted.observation), **observed_metrics(kept)}
            counts = RunCounts.from_observed(observed)
            check_counts(config, counts)
            end = _calibration_end(clv, span["last"] if span else None, as_of)
            end_day = (end - _EPOCH).days
            holdout_day = (clv.holdout_end - _EPOCH).days if clv.holdout_end else None
            totals = days.agg(cs.day_totals(days, end_day).alias("t")).first()
            placed = totals["t"] if totals is not None else None
            customers = cache(
                cs.calibration_customers(days, end_day, clv.unit_days, holdout_day),
                "the calibration summary",
            )
            rows = cs.purchase_rows(customers)
            purchase = _columns(rows, ("frequency", "recency_days", "age_days"))
        _reconcile(int(observed.get(_TOTAL_CENTS) or 0), placed)
        n_customers = int(purchase["customers"].sum())
        if n_customers == 0:
            raise RunError(
                f"no customer has a purchase on or before calibration_end {end}: nothing to "
                "fit; choose a later clv.calibration_end (or --calibration-end)"
            )
        with timer("fit"):
            fits = _fits(clv, purchase)
            spend_fit, spend_rows_n, spend_customers = None, 0, 0
            if GAMMA_GAMMA in clv.models:
                spend = _columns(cs.spend_rows(customers), ("frequency", "m"))
                spend_rows_n, spend_customers = len(spend["m"]), int(spend["customers"].sum())
                spend_fit = fit_model(
                    GAMMA_GAMMA,
                    {"x": spend["frequency"], "m": spend["m"]},
                    spend["customers"],
                    start={"p": 1.0, "q": 2.0, "gamma": max(float(np.median(spend["m"])), 1.0)},
                )
                fits.append(spend_fit)
        purchase_fit = next(f for f in fits if f.model == clv.purchase_model)
        with timer("score"):
            spend_model = (
                SpendModel.fitted(spend_fit.parameters)
                if spend_fit is not None
                else SpendModel(_mean_repeat_value(customers))
            )
            score_options = ScoreOptions(
                model=purchase_fit.model,
                parameters=purchase_fit.parameters,
                unit_days=clv.unit_days,
                horizon=clv.horizon,
                unit_discount=cs.per_unit_discount(clv.discount_rate, clv.unit_days),
                holdout_units=((holdout_day - end_day) / clv.unit_days) if holdout_day else None,
            )
            # The distinct rows as the driver holds them: a frame of their own (a join of two
            # frames that both descend from the observed transactions fails on Connect).
            distinct = _rows_frame(spark, purchase, ("frequency", "recency_days", "age_days"))
            scored = with_scores(
                customers,
                scored_rows(distinct, score_options),
                spend_model,
                broadcast=len(purchase["customers"]) <= BROADCAST_ROWS,
            )
            scored = cache(scored, "the scored customers")
            levels = config.tiers.levels
            cuts = clv_cut_points(scored, levels, config.tiers.accuracy)
            segmented = scored.withColumn(
                "clv_segment", clv_segment(F.col("clv_cents"), cuts, levels)
            )
            by_segment = _segment_values(segmented)
        validation: list[cv.ValidationRow] = []
        if holdout_day is not None:
            with timer("validate"):
                validation = _validation(
                    clv, purchase_fit, days, customers, scored, end_day, holdout_day
                )
        run_id = run_id or f"clv-{end:%Y%m%d}-{uuid.uuid4().hex[:12]}"
        with timer("write"):
            versions = write_calibration(
                spark,
                outputs,
                clv,
                end,
                run_id,
                customer_rows(segmented, end, run_id, holdout_day is not None),
                validation,
                fits,
                {**{f.model: len(purchase["customers"]) for f in fits}, GAMMA_GAMMA: spend_rows_n},
                (n_customers, int(placed["calibration"]) if placed else 0),
            )
            # the CRM table carries the latest scores: rebuilt where a segment run made it
            grains = make_grains(config.periods.grains, config.periods.fiscal_year_start_month)
            current = refresh_current_segments(spark, outputs, grains, config.tiers.by, run_id)
            if current is not None:
                versions = {**versions, contract.CUSTOMER_CURRENT_SEGMENT: current}
    finally:
        for frame in cached:
            unpersisted(frame)
    return ClvResult(
        run_id=run_id,
        calibration_end=end,
        holdout_end=clv.holdout_end,
        time_unit=clv.time_unit,
        horizon=clv.horizon,
        currency=config.revenue.reporting_currency,
        customers=n_customers,
        repeat_customers=int(purchase["customers"][purchase["frequency"] > 0].sum()),
        spend_customers=spend_customers,
        summary_rows=len(purchase["customers"]),
        fits=tuple(fits),
        segments=tuple(by_segment),
        validation=tuple(validation),
        counts=counts,
        refund_only_days=int(placed["refund_only_days"]) if placed else 0,
        refund_only_cents=int(placed["refund_only"]) if placed else 0,
        table_versions=versions,
        stage_seconds=timer.seconds,
    )


def _calibration_end(clv: ClvConfig, last_day: int | None, as_of: date | None) -> date:
    if clv.calibration_end is not None:
        return clv.calibration_end
    if last_day is None:
        raise RunError(
            "the source has no counted sale: no customer to fit the CLV models on (check "
            "the source and the quarantine counts)"
        )
    last = _EPOCH + timedelta(days=int(last_day))
    return min(last, as_of) if as_of is not None else last


def _reconcile(counted_cents: int, placed: Any) -> None:
    """Every counted cent is in a calibration occasion, a refund-only day, or after the
    calibration (the holdout and beyond)."""
    found = (
        0
        if placed is None
        else int(placed["calibration"] + placed["refund_only"] + placed["after"])
    )
    if found != counted_cents:
        raise RunError(
            f"the purchase days hold {found} cents but {counted_cents} were counted: "
            "a bug in revseg; please report it with the config"
        )


def _columns(rows: DataFrame, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The distinct summary rows on the driver, as columns (through Arrow: compact), in the
    order of their keys: Spark returns them in any order, and a fit's sums in another
    order can end elsewhere on a flat likelihood; sorted, the same data fits the same."""
    table = rows.select(*keys, "customers").toArrow()
    found = {n: table.column(n).to_numpy().astype(np.float64) for n in (*keys, "customers")}
    order = np.lexsort([found[k] for k in reversed(keys)])
    return {n: values[order] for n, values in found.items()}


def _rows_frame(
    spark: SparkSession, columns: dict[str, np.ndarray], keys: tuple[str, ...]
) -> DataFrame:
    """Summary rows held on the driver as a Spark frame (through Arrow), integer keys."""
    import pyarrow as pa

    table = pa.table({k: pa.array(columns[k].astype(np.int32)) for k in keys})
    return spark.createDataFrame(table)


def _fits(clv: ClvConfig, purchase: dict[str, np.ndarray]) -> list[Fit]:
    data = {
        "x": purchase["frequency"],
        "t_x": purchase["recency_days"] / clv.unit_days,
        "T": purchase["age_days"] / clv.unit_days,
    }
    return [fit_model(m, data, purchase["customers"]) for m in clv.models if m != GAMMA_GAMMA]


def _mean_repeat_value(customers: DataFrame) -> float:
    """Without Gamma-Gamma: the mean value of all repeat occasions (currency units)."""
    row = customers.agg(F.sum("repeat_cents").alias("cents"), F.sum("frequency").alias("n")).first()
    if row is None or not row["n"]:
        return 0.0
    return float(row["cents"]) / float(row["n"]) / 100.0


def _segment_values(segmented: DataFrame) -> list[SegmentValue]:
    found = (
        segmented.groupBy("clv_segment")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("clv_cents").alias("cents"))
        .collect()
    )
    return [SegmentValue(r["clv_segment"], int(r["n"]), int(r["cents"] or 0)) for r in found]


def _validation(
    clv: ClvConfig,
    fit: Fit,
    days: DataFrame,
    customers: DataFrame,
    scored: DataFrame,
    end_day: int,
    holdout_day: int,
) -> list[cv.ValidationRow]:
    cohorts = cv.cohort_sizes(customers)
    origin = min(cohorts)
    repeats = cv.repeat_days_per_unit(days, end_day, holdout_day, origin, clv.unit_days)
    return [
        *cv.error_metrics(scored),
        *cv.frequency_buckets(scored),
        *cv.tracking(
            fit.model,
            fit.parameters,
            cohorts,
            repeats,
            origin,
            end_day,
            holdout_day,
            clv.unit_days,
        ),
    ]
