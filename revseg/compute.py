"""The computation of a run, apart from its writes: transactions in -> customer segments,
tier boundaries, quarantined rows and counts out, as DataFrames and values.

Spark's work happens in two jobs here: the first scans the transactions once (shuffled once,
by customer) and caches the customer x period rows while computing the cut points; the
second counts the tier boundaries from that cache. The segments are then written from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg.caching import persisted, unpersisted
from revseg.customer_periods import PassOptions, PeriodRows, customer_period_rows, quarantine_rows
from revseg.io.paths import redacting_logger
from revseg.period_cuts import period_cuts
from revseg.periods import Grain, PeriodPlan
from revseg.predicted import ClvScores, with_predicted_clv
from revseg.quarantine import quarantine_records
from revseg.result import RunCounts
from revseg.segmentation import boundary_rows, segmented_rows, segments_output, with_metric
from revseg.stability import held_back, stable_segments
from revseg.tiering import Tiering

logger = redacting_logger(__name__)


class StageTimer:
    """Logs each stage with its duration and keeps the durations for the summary. With a
    session, the stage's Spark jobs carry the tag `revseg-stage-<stage>` (in the Spark UI
    and the query history; `spark.interruptTag` cancels them), classic and Connect alike."""

    def __init__(self, spark: SparkSession | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.spark = spark

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        logger.info("stage %s ...", stage)
        tag = "revseg-stage-" + stage.replace(" ", "-")
        if self.spark is not None:
            self.spark.addTag(tag)
        try:
            yield
        finally:
            if self.spark is not None:
                self.spark.removeTag(tag)
        elapsed = time.perf_counter() - started
        self.seconds[stage] = round(elapsed, 2)
        logger.info("stage %s done in %.1f s", stage, elapsed)


@dataclass(frozen=True)
class Computation:
    """A run's results before anything is written: `segments` in the shape of the
    `customer_segments` table (lazy, over the cached customer x period rows), the rows of
    tier_boundaries, segment_summary and concentration (collected), and what the counts
    and the quarantine need."""

    segments: DataFrame
    boundaries: tuple[dict[str, Any], ...]
    summaries: tuple[dict[str, Any], ...]
    concentration: tuple[dict[str, Any], ...]
    period_rows: PeriodRows
    source: DataFrame
    columns: Mapping[str, str]
    options: PassOptions
    rfm_ties: tuple[dict[str, Any], ...] = ()
    held_back: tuple[dict[str, Any], ...] = ()

    def migration_input(self, periods: Sequence[str]) -> DataFrame:
        """The rows tier migrations read, of these periods: customer, period, groups,
        segment and revenue in cents (lazy, over the cache)."""
        return self.segments.where(F.col("period").isin(list(periods))).select(
            "customer_id",
            "period_grain",
            "period",
            *self.options.groups,
            "segment",
            (F.col("revenue") * 100).cast("long").alias("revenue_cents"),
        )

    def counts(self) -> tuple[RunCounts, tuple[int, ...]]:
        """The counts of the first pass and the hashes of the duplicated transactions (an
        empty read has no observations: call only when some period has rows)."""
        return self.period_rows.counts()

    def quarantined(
        self, duplicated: tuple[int, ...], quarantine_excluded: bool, run_id: str, run_date: date
    ) -> DataFrame:
        """The `quarantined_transactions` rows of this run (lazy: a second pass)."""
        rows = quarantine_rows(
            self.source, self.columns, self.options, duplicated, quarantine_excluded
        )
        return quarantine_records(rows, run_id, run_date)


@contextmanager
def computation(
    source: DataFrame,
    columns: Mapping[str, str],
    options: PassOptions,
    grains: tuple[Grain, ...],
    plan: PeriodPlan | None,
    tiering: Tiering,
    timer: StageTimer | None = None,
    seeds: DataFrame | None = None,
    clv: ClvScores | None = None,
) -> Iterator[Computation]:
    """Compute the segments of `source` (already pruned to the months the plan reads); the
    customer x period rows stay cached until the block ends. `seeds`: with stable tiers,
    the stored state of the periods just before the planned ones (`stable_segments`);
    `clv`: the scores the predicted_clv metric ranks by."""
    timer = timer or StageTimer()
    with timer("read"):
        period_rows = customer_period_rows(source, columns, options, grains, plan)
    rows, scored = period_rows.rows, None
    if tiering.metric == "predicted_clv":
        if clv is None:
            raise ValueError("the predicted_clv metric needs the customer_clv scores")
        scored = persisted(rows, "the customer x period rows before their CLV")
        with timer("aggregate and CLV scores"):
            rows = with_predicted_clv(source.sparkSession, scored, grains, clv)
    customer_periods = persisted(with_metric(rows, tiering.metric), "the customer x period rows")
    stable: DataFrame | None = None
    try:
        with timer("aggregate and cut points"):
            cuts = period_cuts(source.sparkSession, customer_periods, grains, tiering)
        for frame in (*period_rows.cached, *([scored] if scored is not None else [])):
            unpersisted(frame)  # customer_periods is cached now
        segmented = segmented_rows(customer_periods, cuts, tiering)
        held: list[dict[str, Any]] = []
        if tiering.stability is not None:
            with timer("stable tiers"):
                segmented = persisted(
                    stable_segments(
                        segmented,
                        cuts.cuts,
                        tiering.names,
                        grains,
                        tiering.groups,
                        tiering.stability,
                        seeds,
                    ),
                    "the stable tiers",
                )
                stable = segmented
                held = held_back(segmented, grains, tiering.groups)
        with timer("tier boundaries"):
            boundaries, summaries = boundary_rows(segmented, cuts, tiering)
        yield Computation(
            segments_output(segmented, tiering.groups, options.timezone),
            tuple(boundaries),
            tuple(summaries),
            cuts.concentration,
            period_rows,
            source,
            columns,
            options,
            cuts.rfm_ties,
            tuple(held),
        )
    finally:
        for held_frame in (stable, scored):
            if held_frame is not None:
                unpersisted(held_frame)
        unpersisted(customer_periods)
        for frame in period_rows.cached:
            unpersisted(frame)
