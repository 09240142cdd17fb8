"""The run: read -> conform -> validate -> periods -> metrics -> tiers -> write.

This is the only module that knows the whole order. Spark's work happens in three jobs:
the first scans the transactions once (shuffled once, by customer) and caches the customer
x period rows while computing the cut points; the second counts the tier boundaries from
that cache; the third writes the customer segments from it. Counts for reconciliation are
taken with `observe` in the scan itself, not by extra scans.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from revseg import __version__, contract
from revseg.config import METRIC_SOURCE_COLUMNS, Config
from revseg.conform import check_column_types, conform_transactions, resolve_columns
from revseg.errors import ConcurrentWriteError, RunError
from revseg.fx import check_rates, conform_rates, convert, effective_rates, first_rate_dates
from revseg.io import paths
from revseg.io.changes import (
    InputState,
    affected_days,
    changed_keys,
    delta_deletion_vector_days,
    delta_version,
    fx_date_fingerprints,
    source_day_fingerprints,
)
from revseg.io.delta_tables import (
    PLAIN_ENCODING,
    Txn,
    append_rows,
    ensure_table,
    latest_version,
    replace_periods,
)
from revseg.io.runs import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    append_run,
    complete_baseline,
    ensure_runs_table,
    now_utc,
    unchanged_since,
    work_key,
    write_ids,
)
from revseg.io.source import explain_read_failure, prune_to_days, read_source
from revseg.metrics import (
    MEASURE_COLUMNS,
    TOP_DIMENSIONS,
    attribute_refunds,
    average_order_value,
    days_before,
    deduplicate,
    month_aggregates,
    period_end_day,
    roll_up,
    to_money,
    top_share,
    top_values,
    transaction_facts,
    with_customer_first,
)
from revseg.periods import (
    Grain,
    Month,
    PeriodPlan,
    RollingGrain,
    local_date,
    make_grains,
    month_index,
    plan_changed_days,
    plan_periods,
)
from revseg.quality import (
    EXCLUDED_TYPE,
    MISSING_FX_RATE,
    ROW_REASONS,
    STALE_FX_RATE,
    RowRules,
    domestic_only,
    is_blank,
    is_refund,
    normalised_currency,
    reason_counts,
    with_rejection_reason,
)
from revseg.quarantine import (
    extra_copies,
    is_quarantined,
    quarantine_records,
    transaction_key,
)
from revseg.tiers import assign_segments, cut_points, tier_boundaries

logger = logging.getLogger(__name__)

# The first pass's observation that names the duplicated transactions (hashes).
DUPLICATE_KEYS = "duplicate_keys"


def cuts_schema(groups: tuple[str, ...]) -> StructType:
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
    rows: list[Any], grains: tuple[Grain, ...], groups: tuple[str, ...]
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


@dataclass
class RunResult:
    """What a run did: for the summary, the tests and (later) the run log."""

    run_id: str
    output_path: str
    periods: dict[str, tuple[str, ...]]
    boundaries: list[dict[str, Any]]
    counts: dict[str, int]
    table_versions: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    skipped_windows: tuple[str, ...] = ()
    status: str = "succeeded"
    same_as: str | None = None  # a skipped run: the earlier run whose results stand
    note: str | None = None  # an incremental run: what it found changed, and since when

    def table_path(self, name: str) -> str:
        return paths.join(self.output_path, name)


class RunLog:
    """What goes into this run's row of the `runs` table, gathered as the run goes."""

    def __init__(
        self,
        config: Config,
        run_id: str,
        key: str,
        requested: str,
        started: datetime,
        scope: str = "all",
        state: InputState | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.key = key
        self.requested = requested
        self.started = started
        self.scope = scope  # all, range or incremental
        self.state = state  # logged by runs that cover every period: incremental's baseline
        self.counts: dict[str, int] = {}
        self.input_files = 0

    def row(self, status: str) -> dict[str, Any]:
        counts = self.counts
        valid = {
            name.removeprefix("revenue_cents_"): Decimal(cents) / 100
            for name, cents in counts.items()
            if name.startswith("revenue_cents_")
        }
        return {
            "run_id": self.run_id,
            "status": status,
            "started_at": self.started,
            "finished_at": now_utc(),
            "revseg_version": __version__,
            "config_hash": self.config.fingerprint(),
            "work_key": self.key,
            "requested": self.requested,
            "source_read": json.dumps(
                {
                    "path": paths.redact(self.config.source.path),
                    "format": self.config.source.format,
                    "files": self.input_files,
                    "scope": self.scope,
                    **({"state": self.state.to_json()} if self.state is not None else {}),
                }
            ),
            "input_rows": counts.get("input_rows"),
            "valid_rows": counts.get("valid_rows"),
            "quarantined_rows": quarantined_count(self.config, counts) if counts else None,
            "duplicate_rows": counts.get("duplicate"),
            "valid_revenue": valid or None,
            "row_counts": {k: v for k, v in counts.items() if k in _LOGGED_COUNTS} or None,
        }

    def write(
        self,
        spark: SparkSession,
        status: str,
        result: RunResult | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        row = self.row(status)
        tables = dict(versions or {})
        if result is not None:
            tables.update(result.table_versions)
            row["periods_written"] = [p for labels in result.periods.values() for p in labels]
            row["written_revenue"] = written_revenue(result) or None
        for table in (*OUTPUT_TABLES, contract.QUARANTINED_TRANSACTIONS):
            # the version a reader of this run's results should read
            path = table_path(self.config, table)
            if table not in tables and DeltaTable.isDeltaTable(spark, path):
                tables[table] = latest_version(spark, path)
        row["table_versions"] = tables
        append_run(spark, self.config.output.path, row)

    def write_failure(self, spark: SparkSession, err: BaseException) -> None:
        """Log a failed run (best effort: the original error is what the user must see)."""
        row = self.row(FAILED)
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        row["error"] = paths.redact(f"{type(err).__name__}: {first_line}")[:2000]
        try:
            append_run(spark, self.config.output.path, row)
        except Exception:
            logger.warning("could not log the failure of run %s", self.run_id, exc_info=True)


_LOGGED_COUNTS = (
    "input_rows",
    "valid_rows",
    "duplicate",
    "outside_range",
    "refund_rows",
    "converted_rows",
    "unattributed_refunds",
    *ROW_REASONS,
)


def written_revenue(result: RunResult) -> dict[str, Decimal]:
    """Revenue written per calendar grain (from the tier boundaries of the written periods)."""
    written = {p for labels in result.periods.values() for p in labels}
    totals: dict[str, Decimal] = {}
    for row in result.boundaries:
        if row["period"] in written:
            grain = row["period_grain"]
            totals[grain] = totals.get(grain, Decimal(0)) + row["revenue"]
    return totals


class StageTimer:
    """Logs each stage with its duration and keeps the durations for the summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        logger.info("stage %s ...", stage)
        yield
        elapsed = time.perf_counter() - started
        self.seconds[stage] = round(elapsed, 2)
        logger.info("stage %s done in %.1f s", stage, elapsed)


def table_path(config: Config, name: str) -> str:
    return paths.join(config.output.path, name)


def run_segmentation(
    spark: SparkSession,
    config: Config,
    first: Month | None = None,
    last: Month | None = None,
    as_of: date | None = None,
    incremental: bool = False,
) -> RunResult:
    """Compute and write the segments of the requested months (all months when None; with
    `incremental`, the periods that contain days whose input changed since the last run
    that covered every period).

    Rows after `as_of` (in `periods.timezone`) are quarantined as `after_as_of_date`.
    The run is logged in the `runs` table last; a run of the same work whose results are
    still current is skipped.
    """
    started = now_utc()
    timer = StageTimer()
    if (first is None) != (last is None):
        first = first or last
        last = last or first
    if incremental and first is not None:
        raise RunError("--incremental finds the periods to recompute itself: leave out --from/--to")
    grains = make_grains(config.periods.grains, config.periods.fiscal_year_start_month)
    plan = plan_periods(grains, first, last) if first and last else None

    # The source and its columns first: a run that cannot read them touches no table.
    # (A Delta source's version is taken before its snapshot is: never later than it.)
    version = delta_version(spark, config.source) if plan is None else None
    source = read_source(spark, config.source, corrupt_records=True)
    columns = resolve_columns(source.columns, config.source.columns, config.source.path)
    check_column_types(source.schema, columns, config.source.path)
    # The input state of a run of every period comes from the very files it reads.
    state = None
    if plan is None:
        state = _recorded_state(spark, config, source, as_of, version, required=incremental)
    change = decide_incremental(spark, config, grains, state) if incremental else None
    if change is not None:
        plan = change.plan
    scope = "incremental" if incremental else ("range" if plan is not None else "all")
    requested = (
        (f"incremental ({change.note}): " if change is not None else "")
        + ("nothing" if change is not None and change.unchanged else _describe_request(plan))
        + (f", as of {as_of}" if as_of else "")
    )
    if change is not None and change.unchanged:
        return _skip_unchanged(spark, config, change, requested, started, state)
    source = _pruned(source, config, plan)

    # Every table up front: a foreign table at output.path stops the run before any work.
    log_version = ensure_runs_table(spark, config.output.path)
    _ensure_outputs(spark, config)
    files = _input_files(spark, config, source)
    key = work_key(config.fingerprint(), requested, files, __version__)
    run_id, txn = write_ids(key, log_version)
    logger.info("run %s: %s", run_id, requested)
    log = RunLog(config, run_id, key, requested, started, scope, state)

    previous = unchanged_since(spark, config.output.path, key, OUTPUT_TABLES)
    if previous is not None:
        logger.info("run %s: same work as run %s, whose tables are unchanged", run_id, previous)
        log.write(spark, SKIPPED, versions=previous["table_versions"])
        return _skipped(log, dict(previous["table_versions"]), previous["run_id"])
    try:
        result = _compute_and_write(
            spark, config, grains, plan, source, row_rules(config, as_of), log, txn, timer
        )
        if change is not None:
            result.note = "; ".join(n for n in (change.note, result.note) if n)
    except Exception as err:
        clear = explain_read_failure(err)
        log.write_failure(spark, clear or err)
        if clear is not None:
            raise clear from None
        raise
    log.write(spark, SUCCEEDED, result=result)
    logger.info("run %s succeeded: %s", run_id, result.counts)
    return result


def _skip_unchanged(
    spark: SparkSession,
    config: Config,
    change: IncrementalChange,
    requested: str,
    started: datetime,
    state: InputState | None,
) -> RunResult:
    """An incremental run that found no input changed: logged as skipped, nothing read."""
    assert change.baseline is not None
    log_version = ensure_runs_table(spark, config.output.path)
    key = work_key(config.fingerprint(), requested, [], __version__)
    run_id, _ = write_ids(key, log_version)
    logger.info("run %s: %s", run_id, change.note)
    versions = dict(change.baseline["table_versions"] or {})
    log = RunLog(config, run_id, key, requested, started, "incremental", state)
    log.write(spark, SKIPPED, versions=versions)
    return _skipped(log, versions, change.baseline["run_id"], change.note)


def _skipped(
    log: RunLog, versions: dict[str, int], same_as: str, note: str | None = None
) -> RunResult:
    """The result of a run that wrote nothing, because the results of `same_as` stand."""
    return RunResult(
        run_id=log.run_id,
        output_path=log.config.output.path,
        periods={},
        boundaries=[],
        counts={},
        table_versions=versions,
        status=SKIPPED,
        same_as=same_as,
        note=note,
    )


@dataclass(frozen=True)
class IncrementalChange:
    """What an incremental run recomputes: `plan` (None: every period), the run it compares
    with, and why, in words for the log and the summary."""

    plan: PeriodPlan | None
    baseline: dict[str, Any] | None
    note: str
    unchanged: bool = False


def _recorded_state(
    spark: SparkSession,
    config: Config,
    source: DataFrame,
    as_of: date | None,
    version: int | None,
    required: bool,
) -> InputState | None:
    """`input_state`; a full run that cannot take it logs a warning and goes on (only a later
    incremental run needs it, and that one then recomputes every period)."""
    if required:
        return input_state(spark, config, source, as_of, version)
    try:
        return input_state(spark, config, source, as_of, version)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        logger.warning("the input state of this run was not recorded: %s", paths.redact(first_line))
        return None


def input_state(
    spark: SparkSession,
    config: Config,
    source: DataFrame,
    as_of: date | None,
    version: int | None,
) -> InputState | None:
    """The state of the inputs that a later incremental run compares with (`source`: the
    frame the run reads); None when the source has no date partitions to compare."""
    days = source_day_fingerprints(spark, config.source, source.inputFiles())
    if days is None:
        return None
    fx = fx_date_fingerprints(_read_rates(spark, config)) if config.revenue.fx_rates else {}
    return InputState(
        days=days, fx=fx, as_of=as_of.isoformat() if as_of else None, delta_version=version
    )


def decide_incremental(
    spark: SparkSession, config: Config, grains: tuple[Grain, ...], state: InputState | None
) -> IncrementalChange:
    """Compare the inputs with the last run that covered every period (full or incremental)
    and plan the periods that contain the days that changed since."""
    if state is None:
        return IncrementalChange(
            None,
            None,
            f"every period, since source.date_partition ({config.source.date_partition!r}) "
            "is not a date partition column of the source",
        )
    baseline = complete_baseline(spark, config.output.path, config.fingerprint(), __version__)
    if isinstance(baseline, str):
        return IncrementalChange(None, None, f"every period, since {baseline}")
    run_id = baseline["run_id"]
    before = InputState.from_json(json.loads(baseline["source_read"])["state"])
    extra: set[str] = set()
    if config.source.format == "delta" and None in (before.delta_version, state.delta_version):
        return IncrementalChange(
            None,
            None,
            f"every period, since the Delta version read by run {run_id} or now is unknown",
        )
    if before.delta_version is not None and state.delta_version is not None:
        found = delta_deletion_vector_days(
            spark, config.source, before.delta_version, state.delta_version
        )
        if found is None:
            return IncrementalChange(
                None,
                None,
                f"every period, since the source's Delta log no longer holds the commits "
                f"after version {before.delta_version} (read by run {run_id})",
            )
        extra = found
    days = affected_days(
        before,
        state,
        config.revenue.fx_max_staleness_days,
        refund_reach_days(config),
        extra,
    )
    if isinstance(days, str):
        return IncrementalChange(None, None, f"every period, since {days} after run {run_id}")
    if not days:
        return IncrementalChange(
            None, baseline, f"no input changed since run {run_id}", unchanged=True
        )
    changed = sorted(changed_keys(before.days, state.days) | extra)
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    what = f"source day(s) {shown} changed" if changed else "FX rates or the as-of date changed"
    return IncrementalChange(
        plan_changed_days(grains, days), baseline, f"{what} since run {run_id}"
    )


def _compute_and_write(
    spark: SparkSession,
    config: Config,
    grains: tuple[Grain, ...],
    plan: PeriodPlan | None,
    source: DataFrame,
    rules: RowRules,
    log: RunLog,
    txn: Txn,
    timer: StageTimer,
) -> RunResult:
    run_id = log.run_id
    with timer("read"):
        transactions, observations, cached = customer_period_rows(
            spark, source, config, grains, plan, rules
        )

    groups = config.tiers.by
    tier_keys = ("grain_idx", "period_key", *groups)
    labels = contract.PERIOD_KEYS
    levels = config.tiers.levels
    customer_periods = transactions.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with timer("aggregate and cut points"):
            cut_rows = cut_points(
                customer_periods, levels, config.tiers.accuracy, tier_keys
            ).collect()
        for frame in cached:  # customer_periods is cached now
            frame.unpersist()
        cuts = spark.createDataFrame(labelled_cuts(cut_rows, grains, groups), cuts_schema(groups))
        segmented = assign_segments(
            customer_periods, cuts, levels, tier_keys, (*labels, "period_end_day")
        )

        with timer("tier boundaries"):
            boundary_rows = [
                row.asDict()
                for row in tier_boundaries(segmented, cuts, levels, tier_keys, labels).collect()
            ]
        unstored: set[str] = set()
        if plan is not None and log.scope == "incremental":
            # A period planned only because a neighbouring day changed may have no rows,
            # now or ever: with nothing stored for it there is nothing to replace.
            empty = _empty_periods(plan, boundary_rows)
            unstored = empty - _stored_periods(spark, config, empty)
        periods = _periods_to_write(
            plan,
            boundary_rows,
            config.periods.grains,
            config.quality.allow_empty_periods,
            unstored,
        )
        if unstored and not any(periods.values()):
            # Incremental: the changed days' periods hold no valid rows, and none is stored.
            # Returned before the counts (an empty read may have no observations).
            return RunResult(
                run_id=run_id,
                output_path=config.output.path,
                periods={},
                boundaries=[],
                counts={},
                stage_seconds=timer.seconds,
                note="nothing to write: the periods of the changed days hold no valid rows, "
                "and none of them is in the tables",
            )
        # (an empty read has no observations: the checks above stop it first)
        counts, duplicated = _collect_counts(observations)
        log.counts = counts
        check_fx_coverage(config, counts)
        check_quarantine_fraction(config, counts)
        skipped = incomplete_windows(grains, counts["first_month_idx"], counts["last_month_idx"])
        periods = {g: tuple(p for p in labels if p not in skipped) for g, labels in periods.items()}
        if not any(periods.values()):
            raise RunError(
                "nothing to write: every requested rolling window lacks history in the data "
                "read (add a calendar grain, or a range whose windows are complete)"
            )
        _reconcile(counts, boundary_rows, periods, grains)

        with timer("write"):
            versions = {}
            if quarantined_count(config, counts):
                versions[contract.QUARANTINED_TRANSACTIONS] = _write_quarantine(
                    spark, config, plan, source, rules, duplicated, counts, log, txn
                )
            segments = _segments_output(segmented, groups, config.periods.timezone)
            versions.update(
                _write_tables(spark, config, segments, boundary_rows, periods, run_id, txn)
            )
    finally:
        customer_periods.unpersist()
        for frame in cached:
            frame.unpersist()

    return RunResult(
        run_id=run_id,
        output_path=config.output.path,
        periods=periods,
        boundaries=sorted(boundary_rows, key=_boundary_order(config)),
        counts=counts,
        table_versions=versions,
        stage_seconds=timer.seconds,
        skipped_windows=tuple(sorted(skipped & {row["period"] for row in boundary_rows})),
    )


OUTPUT_TABLES = (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES)


def row_rules(config: Config, as_of: date | None) -> RowRules:
    """The configured row limits as instants: days begin at midnight in periods.timezone."""
    zone = ZoneInfo(config.periods.timezone)
    min_day = config.quality.min_day()
    return RowRules(
        not_before=datetime.combine(min_day, clock_time(), zone) if min_day else None,
        not_after=datetime.combine(as_of + timedelta(days=1), clock_time(), zone)
        if as_of
        else None,
        max_abs_amount=config.quality.max_amount(),
    )


def quarantined_count(config: Config, counts: dict[str, int]) -> int:
    """Rows the run puts in quarantine: rejected rows (excluded types only with
    quality.quarantine_excluded) and the extra copies of duplicates."""
    reasons = [r for r in ROW_REASONS if r != EXCLUDED_TYPE or config.quality.quarantine_excluded]
    return sum(counts.get(r, 0) for r in reasons) + counts.get("duplicate", 0)


def check_quarantine_fraction(config: Config, counts: dict[str, int]) -> None:
    """Too much bad input fails the run before anything is written."""
    total = counts.get("input_rows", 0)
    quarantined = quarantined_count(config, counts)
    limit = config.quality.max_quarantine_fraction
    if total and quarantined / total > limit:
        by_reason = ", ".join(
            f"{r} {counts[r]:,}" for r in (*ROW_REASONS, "duplicate") if counts.get(r)
        )
        raise RunError(
            f"{quarantined:,} of {total:,} rows ({quarantined / total:.1%}) would be "
            f"quarantined ({by_reason}), more than quality.max_quarantine_fraction "
            f"({limit:.1%}): nothing was written. Fix the source, or raise the limit."
        )


def _write_quarantine(
    spark: SparkSession,
    config: Config,
    plan: PeriodPlan | None,
    source: DataFrame,
    rules: RowRules,
    duplicated: list[int],
    counts: dict[str, int],
    log: RunLog,
    txn: Txn,
) -> int:
    """Append this run's quarantined rows (a second pass over the same files) and check
    that as many were written as the first pass counted."""
    checked = checked_transactions(spark, source, config, rules, keep_source=True)
    parts = [checked.where(is_quarantined(config.quality.quarantine_excluded))]
    if duplicated:
        keys = spark.createDataFrame([(k,) for k in duplicated], "_key long")
        month = month_index(local_date("transaction_ts", config.periods.timezone))
        valid = checked.where(F.col("reason").isNull()).withColumn("month_idx", month)
        needed = _needed_rows(plan, config.revenue.refund_attribution == "original", is_refund())
        parts.append(extra_copies(valid.where(needed).drop("month_idx"), keys))
    rows = parts[0].unionByName(parts[1]) if len(parts) > 1 else parts[0]
    written = Observation("quarantine")
    records = quarantine_records(rows, log.run_id, log.started.date()).observe(
        written, F.count(F.lit(1)).alias("rows")
    )
    path = table_path(config, contract.QUARANTINED_TRANSACTIONS)
    ensure_table(spark, path, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)
    before = latest_version(spark, path)
    version = append_rows(records, path, contract.QUARANTINE_PARTITIONS, log.run_id, txn)
    if version <= before:
        # A retry: Delta skipped the append (same txn ids) and the commit found is the
        # crashed attempt's. The frame never ran, so there is no observation to wait for.
        return version
    expected = quarantined_count(config, counts)
    got = int(written.get.get("rows", 0))
    if got != expected:
        raise RunError(
            f"reconciliation failed: the first pass counted {expected:,} rows to quarantine, "
            f"the quarantine pass wrote {got:,} (quarantine version {version}); "
            "customer_segments and tier_boundaries were not written"
        )
    return version


def _ensure_outputs(spark: SparkSession, config: Config) -> None:
    groups = config.tiers.by
    ensure_table(
        spark,
        table_path(config, contract.CUSTOMER_SEGMENTS),
        contract.with_groups(contract.CUSTOMER_SEGMENTS_SCHEMA, groups),
        contract.CUSTOMER_SEGMENTS_PARTITIONS,
        contract.CUSTOMER_SEGMENTS_PROPERTIES,
    )
    ensure_table(
        spark,
        table_path(config, contract.TIER_BOUNDARIES),
        contract.with_groups(contract.TIER_BOUNDARIES_SCHEMA, groups),
        contract.TIER_BOUNDARIES_PARTITIONS,
    )
    quarantine = table_path(config, contract.QUARANTINED_TRANSACTIONS)
    if DeltaTable.isDeltaTable(spark, quarantine):  # else created by the first run that needs it
        ensure_table(spark, quarantine, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)


def _input_files(spark: SparkSession, config: Config, source: DataFrame) -> list[str]:
    """The files a run reads (the source and the FX rates): part of its work key."""
    files = list(source.inputFiles())
    if config.revenue.fx_rates is not None:
        rates = read_source(spark, config.revenue.fx_rates, key="revenue.fx_rates")
        files += rates.inputFiles()
    return files


def _describe_request(plan: PeriodPlan | None) -> str:
    if plan is None:
        return "every period present in the source"
    months = ", ".join(f"{low} to {high}" for low, high in plan.read_ranges)
    return f"periods {', '.join(plan.all_periods)} (reading months {months})"


def _pruned(source: DataFrame, config: Config, plan: PeriodPlan | None) -> DataFrame:
    """The source, pruned to the date partitions the run needs (lazy)."""
    if plan is None:
        return source
    # One day either side: the lake is partitioned by date in its own time zone, periods
    # are cut in periods.timezone; rows outside the months are dropped later. Refunds
    # attributed to their sale also need the sales before the range and the refunds after it.
    margin = timedelta(days=1 + refund_reach_days(config))
    days = [(low.first_day() - margin, high.last_day() + margin) for low, high in plan.read_ranges]
    return prune_to_days(source, config.source, *days[0], *days[1:])


def in_read_months(plan: PeriodPlan, month: Column | None = None) -> Column:
    """Rows whose month (`month_idx`) is one the plan reads."""
    month = F.col("month_idx") if month is None else month
    inside = F.lit(False)
    for low, high in plan.read_ranges:
        inside = inside | month.between(low.index, high.index)
    return inside


def refund_reach_days(config: Config) -> int:
    """Days read beyond a range to attribute refunds to their sale (0 by transaction)."""
    revenue = config.revenue
    return revenue.max_refund_delay_days if revenue.refund_attribution == "original" else 0


def checked_transactions(
    spark: SparkSession,
    source: DataFrame,
    config: Config,
    rules: RowRules | None = None,
    keep_source: bool = False,
) -> DataFrame:
    """Transactions as read -> canonical columns, converted, each with its `reason` (null:
    counted). The first pass and the quarantine pass both start here."""
    columns = resolve_columns(source.columns, config.source.columns, config.source.path)
    conformed = conform_transactions(source, columns, keep_source)
    guest = config.quality.guest_customer_id
    if guest is not None:
        conformed = conformed.withColumn(
            "customer_id",
            F.when(is_blank("customer_id"), F.lit(guest)).otherwise(F.col("customer_id")),
        )
    conformed = _with_reporting_amounts(spark, config, conformed)
    revenue = config.revenue
    return with_rejection_reason(conformed, revenue.reporting_currency, revenue.types, rules)


def customer_period_rows(
    spark: SparkSession,
    source: DataFrame,
    config: Config,
    grains: tuple[Grain, ...],
    plan: PeriodPlan | None = None,
    rules: RowRules | None = None,
) -> PeriodRows:
    """Transactions as read -> customer x period rows keyed by (grain_idx, period_key); lazy,
    with its observations."""
    columns = resolve_columns(source.columns, config.source.columns, config.source.path)
    revenue = config.revenue
    present = [m for m in config.metrics.include if METRIC_SOURCE_COLUMNS[m] in columns]
    measures = tuple(m for m in present if m in MEASURE_COLUMNS)
    tops = tuple(m for m in present if m in TOP_DIMENSIONS)
    groups = config.tiers.by
    # Dimension columns the top_* metrics need beyond the tiers.by groups (blank: none).
    dimensions = tuple(
        dict.fromkeys(TOP_DIMENSIONS[t] for t in tops if TOP_DIMENSIONS[t] not in groups)
    )
    checked = checked_transactions(spark, source, config, rules)
    by_original = revenue.refund_attribution == "original"
    foreign = normalised_currency() != F.lit(revenue.reporting_currency)
    checked = checked.withColumn("foreign", foreign).withColumns(
        {
            **{
                g: F.when(is_blank(g), F.lit(contract.UNKNOWN_GROUP)).otherwise(F.trim(g))
                for g in groups
            },
            **{d: F.when(~is_blank(d), F.trim(d)) for d in dimensions},
        }
    )
    original = ["original_transaction_id"] if by_original else []
    facts = transaction_facts(
        checked,
        config.periods.timezone,
        keep=("reason", "foreign", *groups, *dimensions, *original),
        refund=is_refund(),
        amount="reporting_amount",
        measures=measures,
        cost="reporting_cost",
    )
    valid = F.col("reason").isNull()
    needed = _needed_rows(plan, by_original)
    input_obs = Observation("input")
    facts = facts.observe(
        input_obs,
        *reason_counts(),
        F.count(F.when(valid & ~needed, 1)).alias("outside_read"),
        F.count(F.when(valid & needed & F.col("foreign"), 1)).alias("converted_rows"),
    ).where(valid & needed)

    by_customer = facts.repartition("customer_id")
    if by_original:
        by_customer = attribute_refunds(by_customer)
    unique = deduplicate(by_customer, config.periods.timezone, (*groups, *dimensions), measures)
    observations = {"input": input_obs}
    if plan is not None:
        # Decided on the kept copy, after refunds moved to their sale: a refund read from
        # after the range may belong to a sale inside it.
        in_range = in_read_months(plan)
        observations["range"] = Observation("range")
        unique = unique.observe(
            observations["range"],
            F.coalesce(F.sum(F.when(~in_range, F.col("copies"))), F.lit(0)).alias("outside_kept"),
        ).where(in_range)
    refund = F.col("is_refund")
    observations["unique"] = Observation("unique")
    unique = unique.observe(
        observations["unique"],
        F.count(F.lit(1)).alias("valid_rows"),
        F.sum(F.col("copies") - 1).alias("duplicate"),
        F.count(F.when(refund, 1)).alias("refund_rows"),
        F.coalesce(-F.sum(F.when(refund, F.col("amount_cents"))), F.lit(0)).alias("refund_cents"),
        *(
            [F.count(F.when(F.col("unattributed"), 1)).alias("unattributed_refunds")]
            if by_original
            else []
        ),
        F.min("month_idx").alias("first_month_idx"),
        F.max("month_idx").alias("last_month_idx"),
        *_revenue_by_grain(grains, plan),
        # names the duplicated transactions for the quarantine pass (few: they are capped
        # by quality.max_quarantine_fraction before anything is written)
        F.collect_list(F.when(F.col("copies") > 1, transaction_key())).alias(DUPLICATE_KEYS),
    )
    by_week = any(grain.name == "week" for grain in grains)
    cached = []
    if tops:
        # Read twice, by the month aggregates and by the top values: kept, not recomputed.
        unique = unique.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(unique)
    months = month_aggregates(unique, groups, measures, by_week)
    key_runs = {g.name: plan.key_runs(g) for g in grains} if plan is not None else None
    customer_periods = roll_up(with_customer_first(months), grains, key_runs, groups, measures)
    if tops:
        keys = ["customer_id", *groups, "grain_idx", "period_key"]
        customer_periods = customer_periods.join(
            top_values(unique, tops, grains, key_runs, groups), keys, "left"
        )
    return PeriodRows(customer_periods, observations, tuple(cached))


class PeriodRows(NamedTuple):
    """Customer x period rows (lazy), the observations counted while they are computed, and
    frames persisted on the way, to unpersist once the rows are cached."""

    rows: DataFrame
    observations: dict[str, Observation]
    cached: tuple[DataFrame, ...] = ()


def _needed_rows(
    plan: PeriodPlan | None, by_original: bool, refund: Column | None = None
) -> Column:
    """Rows that can count in the months read: in them, or (refunds attributed to their
    sale) a sale before some of them that a refund in them may name, or a refund after
    some of them that may name a sale in them."""
    if plan is None:
        return F.lit(True)
    month = F.col("month_idx")
    needed = in_read_months(plan, month)
    if by_original:
        refund = F.col("is_refund") if refund is None else refund
        before = month < plan.read_to.index
        after = month > plan.read_from.index
        needed = needed | (before & ~refund) | (after & refund)
    return needed


def _with_reporting_amounts(spark: SparkSession, config: Config, frame: DataFrame) -> DataFrame:
    """`reporting_amount` and `fx_problem` for each row (see `revseg.fx`)."""
    revenue = config.revenue
    if revenue.fx_rates is None:
        return frame.withColumns(domestic_only(revenue.reporting_currency))
    rates = _read_rates(spark, config)
    return convert(
        frame,
        revenue.reporting_currency,
        local_date("transaction_ts", config.periods.timezone),
        effective_rates(rates, revenue.fx_max_staleness_days),
        first_rate_dates(rates),
    )


def _read_rates(spark: SparkSession, config: Config) -> DataFrame:
    """The FX rates as (currency, rate_date, rate), checked."""
    table = config.revenue.fx_rates
    assert table is not None
    raw = read_source(spark, table, key="revenue.fx_rates")
    rates = conform_rates(raw, table.columns, table.path)
    check_rates(rates, table.path)
    return rates


def check_fx_coverage(config: Config, counts: dict[str, int]) -> None:
    """With `revenue.fail_on_missing_fx`, a row without a usable rate fails the run."""
    unconverted = counts.get(MISSING_FX_RATE, 0) + counts.get(STALE_FX_RATE, 0)
    if config.revenue.fail_on_missing_fx and unconverted:
        raise RunError(
            f"{unconverted} transaction(s) have no usable FX rate to "
            f"{config.revenue.reporting_currency} (missing_fx_rate: "
            f"{counts.get(MISSING_FX_RATE, 0)}, stale_fx_rate: {counts.get(STALE_FX_RATE, 0)}) "
            "and revenue.fail_on_missing_fx is true: nothing was written. Add the rates to "
            "revenue.fx_rates or raise revenue.fx_max_staleness_days."
        )


def _revenue_by_grain(grains: tuple[Grain, ...], plan: PeriodPlan | None) -> list[Any]:
    """Valid revenue in the months each calendar grain writes: what its output must add up to.

    Rolling windows overlap (each month is in several), so they have no such total.
    """
    sums = []
    for grain in grains:
        if grain.rolling:
            continue
        cents = F.col("amount_cents")
        if plan is not None and grain.name == "week":
            weeks = [F.col("week_key").between(low, high) for low, high in plan.key_runs(grain)]
            cents = F.when(reduce(or_, weeks), cents)
        elif plan is not None:
            months = [m.index for m in plan.months_of(grain)]
            cents = F.when(F.col("month_idx").isin(months), cents)
        sums.append(F.coalesce(F.sum(cents), F.lit(0)).alias(f"revenue_cents_{grain.name}"))
    return sums


def incomplete_windows(grains: tuple[Grain, ...], first_month: int, last_month: int) -> set[str]:
    """Rolling windows that start before the first month read or end after the last one.

    Such a window lacks history (or runs past the data), so it is not written.
    """
    skipped: set[str] = set()
    for grain in grains:
        if not isinstance(grain, RollingGrain):
            continue
        for key in range(first_month, last_month + grain.months):
            window_first, window_last = grain.span(key)
            if window_first.index < first_month or window_last.index > last_month:
                skipped.add(grain.label(key))
    return skipped


def _collect_counts(observations: dict[str, Observation]) -> tuple[dict[str, int], list[int]]:
    """The counters, and the hashes of duplicated transaction keys."""
    counts: dict[str, int] = {}
    keys: list[int] = []
    for observation in observations.values():
        for name, value in observation.get.items():
            if name == DUPLICATE_KEYS:
                keys = list(value or [])
            else:
                counts[name] = int(value or 0)
    # Valid rows not counted in the months read: left before de-duplication, or after it.
    counts["outside_range"] = counts.pop("outside_read", 0) + counts.pop("outside_kept", 0)
    return counts, keys


def _found_periods(
    boundaries: list[dict[str, Any]], grains: tuple[str, ...]
) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {name: set() for name in grains}
    for row in boundaries:
        if row["customers"] > 0:
            found[row["period_grain"]].add(row["period"])
    return found


def _empty_periods(plan: PeriodPlan, boundaries: list[dict[str, Any]]) -> set[str]:
    found = _found_periods(boundaries, tuple(plan.periods))
    return {p for name, labels in plan.periods.items() for p in labels if p not in found[name]}


def _stored_periods(spark: SparkSession, config: Config, periods: set[str]) -> set[str]:
    """Which of these periods either output table holds rows for (both are partitioned by
    period: only those periods' files are read)."""
    stored: set[str] = set()
    for name in OUTPUT_TABLES if periods else ():
        table = spark.read.format("delta").load(table_path(config, name))
        rows = table.where(F.col("period").isin(sorted(periods))).select("period").distinct()
        stored |= {row["period"] for row in rows.collect()}
    return stored


def _periods_to_write(
    plan: PeriodPlan | None,
    boundaries: list[dict[str, Any]],
    grains: tuple[str, ...],
    allow_empty: bool = False,
    unstored: Collection[str] = (),
) -> dict[str, tuple[str, ...]]:
    """Requested periods (all must have data, unless `allow_empty`: then an empty period is
    replaced by nothing; `unstored` empty periods are left out), or every period the data
    produced."""
    found = _found_periods(boundaries, grains)
    if plan is None:
        if not any(found.values()):
            raise RunError("the source holds no valid transactions: nothing to segment")
        return {name: tuple(sorted(found[name])) for name in grains}
    planned = {name: tuple(p for p in plan.periods[name] if p not in unstored) for name in grains}
    empty = [p for name in grains for p in planned[name] if p not in found[name]]
    if empty and not allow_empty:
        raise RunError(
            f"no valid transactions for period(s) {', '.join(empty)}: nothing was written, "
            "because replacing those periods with nothing would delete them (set "
            "quality.allow_empty_periods: true if they are meant to be empty)"
        )
    return planned


def _reconcile(
    counts: dict[str, int],
    boundaries: list[dict[str, Any]],
    periods: dict[str, tuple[str, ...]],
    grains: tuple[Grain, ...],
) -> None:
    """Valid revenue in must equal revenue out, to the cent, for every calendar grain."""
    calendar = {g.name for g in grains if not g.rolling}
    for grain, labels in periods.items():
        if grain not in calendar:
            continue
        written = sum(
            int(row["revenue"] * 100)
            for row in boundaries
            if row["period_grain"] == grain and row["period"] in labels
        )
        expected = counts.get(f"revenue_cents_{grain}", 0)
        if written != expected:
            raise RunError(
                f"reconciliation failed for {grain} periods: valid transactions add up to "
                f"{expected / 100:.2f}, the segments to {written / 100:.2f}; nothing was written"
            )


def _segments_output(segmented: DataFrame, groups: tuple[str, ...], timezone: str) -> DataFrame:
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
        *_top_columns(columns),
    )


def _top_columns(columns: set[str]) -> list[Column]:
    """`top_channel`, `top_category` and their shares; nulls where not computed."""
    out = []
    for top in TOP_DIMENSIONS:
        if top in columns:
            value, share = top_share(top)
        else:
            value, share = F.lit(None).cast("string"), F.lit(None).cast("double")
        out += [value.alias(top), share.alias(f"{top}_share")]
    return out


def _write_tables(
    spark: SparkSession,
    config: Config,
    segments: DataFrame,
    boundary_rows: list[dict[str, Any]],
    periods: dict[str, tuple[str, ...]],
    run_id: str,
    txn: Txn | None = None,
) -> dict[str, int]:
    """customer_segments, then tier_boundaries: each one atomic commit over the periods."""
    all_periods = [p for labels in periods.values() for p in labels]
    segments_path = table_path(config, contract.CUSTOMER_SEGMENTS)
    boundaries_path = table_path(config, contract.TIER_BOUNDARIES)
    groups = config.tiers.by
    boundaries_schema = contract.with_groups(contract.TIER_BOUNDARIES_SCHEMA, groups)
    written_periods = set(all_periods)
    segments = segments.where(F.col("period").isin(all_periods))
    boundaries = spark.createDataFrame(
        [
            tuple(row[name] for name in boundaries_schema.fieldNames())
            for row in boundary_rows
            if row["period"] in written_periods
        ],
        boundaries_schema,
    )
    versions = {
        contract.CUSTOMER_SEGMENTS: replace_periods(
            segments,
            segments_path,
            all_periods,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
            run_id,
            parquet_settings=PLAIN_ENCODING,
            txn=txn,
        )
    }
    try:
        versions[contract.TIER_BOUNDARIES] = replace_periods(
            boundaries,
            boundaries_path,
            all_periods,
            contract.TIER_BOUNDARIES_PARTITIONS,
            run_id,
            txn=txn,
        )
    except ConcurrentWriteError as err:
        raise ConcurrentWriteError(
            f"{err} customer_segments was already committed (version "
            f"{versions[contract.CUSTOMER_SEGMENTS]}): retry the run to bring both tables "
            "in line."
        ) from None
    return versions


def _boundary_order(config: Config) -> Any:
    grain_rank = {name: i for i, name in enumerate(config.periods.grains)}
    segment_rank = {level.name: i for i, level in enumerate(config.tiers.levels)}

    def key(row: dict[str, Any]) -> tuple[int, str, int]:
        return (
            grain_rank.get(row["period_grain"], 99),
            row["period"],
            segment_rank.get(row["segment"], len(segment_rank)),
        )

    return key
