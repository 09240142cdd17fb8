"""What an incremental run must redo: the state of its inputs, the run it compares with,
and the periods that contain the days whose input changed since.

A run of every period logs the state of its inputs (`revseg.io.changes.InputState`); the
next `--incremental` run compares its own state with the baseline's, day by day, and plans
only the periods of the changed days, or every period when a change cannot be placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession

from revseg import __version__
from revseg.config import SourceConfig
from revseg.io.changes import (
    EveryPeriod,
    InputIdentity,
    InputState,
    affected_days,
    changed_days,
    delta_deletion_vector_days,
    first_day,
    retired_days,
    source_day_fingerprints,
)
from revseg.io.paths import redacting_logger
from revseg.io.runs import Baseline, NoBaseline, complete_baseline, unlogged_changes
from revseg.io.table_ref import Outputs
from revseg.periods import Grain, PeriodPlan, plan_changed_days

logger = redacting_logger(__name__)


@dataclass(frozen=True)
class IncrementalChange:
    """What an incremental run recomputes: `plan` (None: every period), the run it compares
    with, and why, in words for the log and the summary."""

    plan: PeriodPlan | None
    baseline: Baseline | None
    note: str
    unchanged: bool = False


def input_state(
    source: SourceConfig, inputs: InputIdentity, as_of: date | None
) -> InputState | None:
    """The state of the inputs that a later incremental run compares with (`inputs`: what
    the run reads); None when the source has no date partitions to compare."""
    days = source_day_fingerprints(source, inputs.source_files)
    if days is None:
        return None
    return InputState(
        days=days,
        fx=dict(inputs.rates),
        as_of=as_of.isoformat() if as_of else None,
        delta_version=inputs.source_version,
    )


def every_period(reason: str) -> IncrementalChange:
    return IncrementalChange(None, None, f"every period, since {reason}")


def decide_incremental(
    spark: SparkSession,
    outputs: Outputs,
    source: SourceConfig,
    grains: tuple[Grain, ...],
    state: InputState | None,
    config_hash: str,
    fx_max_staleness_days: int,
    reach_days: int,
    tables: Sequence[str],
) -> IncrementalChange:
    """Compare the inputs with the last run that covered every period (full or incremental)
    and plan the periods that contain the days that changed since."""
    if state is None:
        return every_period(
            f"source.date_partition ({source.date_partition!r}) is not a date partition column "
            "of the source"
        )
    baseline = complete_baseline(spark, outputs, config_hash, __version__)
    if isinstance(baseline, NoBaseline):
        return every_period(baseline.reason)
    run_id, before = baseline.run_id, baseline.state
    extra: set[str] = set()
    if source.format == "delta" and None in (before.delta_version, state.delta_version):
        return every_period(f"the Delta version read by run {run_id} or now is unknown")
    if before.delta_version is not None and state.delta_version is not None:
        found = delta_deletion_vector_days(spark, source, before.delta_version, state.delta_version)
        if found is None:
            return every_period(
                "the changes of the source's Delta commits after version "
                f"{before.delta_version} (read by run {run_id}) cannot be placed by day (the "
                "log no longer holds them, or a catalog table without Change Data Feed has "
                "deletion vectors)"
            )
        extra = found
    days = affected_days(before, state, fx_max_staleness_days, reach_days, extra)
    if isinstance(days, EveryPeriod):
        return every_period(f"{days.reason} after run {run_id}")
    if not days:
        unlogged = unlogged_changes(spark, outputs, tables)
        if unlogged:
            return every_period(
                f"{', '.join(unlogged)} changed after run {run_id} without a logged run (one "
                "was stopped or failed after it committed)"
            )
        retired = (
            f" (source days before {first_day(state.days)} were removed since: the periods "
            "they fed stay as stored)"
            if retired_days(before.days, state.days)
            else ""
        )
        return IncrementalChange(
            None, baseline, f"no input changed since run {run_id}{retired}", unchanged=True
        )
    changed = sorted(changed_days(before.days, state.days) | extra)
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    what = f"source day(s) {shown} changed" if changed else "FX rates or the as-of date changed"
    return IncrementalChange(
        plan_changed_days(grains, days), baseline, f"{what} since run {run_id}"
    )
