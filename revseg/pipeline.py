"""The run, in the order of DESIGN's stage list: plan -> read (source and rates, once) ->
first pass -> cut points and segments -> periods to write -> write -> log.

This is the only module below the CLI that sees the whole `Config`: it builds the plain
values and small option objects every stage takes, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession

from revseg import __version__, checks, contract
from revseg.compute import Computation, StageTimer, computation
from revseg.config import Config
from revseg.customer_periods import FxInput, PassOptions, row_rules
from revseg.errors import ConfigError, RunError
from revseg.incremental import IncrementalChange, decide_incremental, input_state
from revseg.io.changes import InputIdentity, InputState, delta_version, first_day
from revseg.io.current_table import clv_tables_of, write_current_segments
from revseg.io.delta_tables import Txn
from revseg.io.derived import write_derived
from revseg.io.inputs import FxRates, Inputs, read_inputs
from revseg.io.migrations_table import run_migrations, write_migrations
from revseg.io.outputs import (
    append_quarantine,
    clv_scores,
    committed_totals,
    ensure_outputs,
    period_tables,
    stored_periods,
    stored_state,
    write_periods,
)
from revseg.io.paths import redacting_logger
from revseg.io.runs import ensure_runs_table, now_utc, unchanged_since, work_key, write_ids
from revseg.io.source import explain_read_failure, prune_to_plan
from revseg.io.table_ref import Outputs
from revseg.periods import Month, PeriodPlan, RollingGrain, describe, make_grains, plan_periods
from revseg.result import SKIPPED, SUCCEEDED, Migrations, RunCounts, RunResult
from revseg.run_log import RunLog
from revseg.segmentation import in_boundary_order
from revseg.tiering import Tiering

if TYPE_CHECKING:
    from revseg.periods import Grain

logger = redacting_logger(__name__)


@dataclass(frozen=True)
class Request:
    """What a run was asked for, planned: grains, periods (None: all in the source), scope
    (all, range or incremental), in words, and the config's fingerprint (made once)."""

    grains: tuple[Grain, ...]
    plan: PeriodPlan | None
    scope: str
    requested: str
    as_of: date | None
    config_hash: str
    change: IncrementalChange | None = None
    state: InputState | None = None
    horizon: date | None = None  # the source's first day, when days before were removed


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
    started, timer = now_utc(), StageTimer(spark)
    if (first is None) != (last is None):
        first, last = first or last, last or first
    if incremental and first is not None:
        raise RunError("--incremental finds the periods to recompute itself: leave out --from/--to")
    grains = make_grains(config.periods.grains, config.periods.fiscal_year_start_month)
    plan = plan_periods(grains, first, last) if first and last else None

    # The source and its columns first: a run that cannot read them touches no table.
    # (A Delta source is read at the version taken first: the version logged is the one read.)
    version = delta_version(spark, config.source)
    inputs = read_inputs(spark, config.source, config.revenue.fx_rates, version)
    identity = inputs.identity(spark, config.source) if plan is None else None
    request = _plan_request(spark, config, grains, identity, plan, as_of, incremental)
    if request.change is not None and request.change.unchanged:
        return _skip_unchanged(spark, config, request, started)
    reach = config.reach_days()
    inputs = inputs.with_source(prune_to_plan(inputs.source, config.source, request.plan, reach))
    if identity is None:  # a range run: the files of its months
        identity = inputs.identity(spark, config.source)

    # Every table up front: a foreign table at output.path stops the run before any work.
    output = Outputs.of(config.output)
    log_version = ensure_runs_table(spark, output)
    starts = first_day(request.state.days) if request.state is not None else None
    summaries = config.insights.tables()
    horizon = ensure_outputs(
        spark,
        output,
        config.tiers.by,
        config.periods.meaning(),
        starts,
        summaries,
        config.insights.customer_current_segment,
    )
    request = replace(request, horizon=horizon)
    key = work_key(request.config_hash, request.requested, identity.lines(), __version__)
    run_id, txn = write_ids(key, log_version)
    logger.info("run %s: %s", run_id, request.requested)
    log = _run_log(config, request, run_id, key, started, len(inputs.files()))

    # (Version 0 is the empty log of a first run: nothing to be the same as.)
    tables = period_tables(summaries)
    previous = unchanged_since(spark, output, key, tables) if log_version else None
    if previous is not None:
        logger.info("run %s: same work as run %s, tables unchanged", run_id, previous["run_id"])
        versions = dict(previous["table_versions"])
        log.write(spark, SKIPPED, versions=versions)
        return RunResult.skipped(log.run_id, output, versions, previous["run_id"])
    counts: list[RunCounts] = []  # known once the first pass ran: logged with a failure
    try:
        result = _compute_and_write(spark, config, request, inputs, log, txn, timer, counts)
    except Exception as err:
        clear = explain_read_failure(err)
        log.write_failure(spark, clear or err, counts[0] if counts else None)
        if clear is not None:
            raise clear from None
        raise
    log.write(spark, SUCCEEDED, result=result)
    logger.info("run %s succeeded: %s", run_id, result.counts)
    return result


def _plan_request(
    spark: SparkSession,
    config: Config,
    grains: tuple[Grain, ...],
    identity: InputIdentity | None,
    plan: PeriodPlan | None,
    as_of: date | None,
    incremental: bool,
) -> Request:
    """The periods to compute: the range asked for, every period, or (incremental) those
    of the days changed since the baseline. Runs of every period (`identity`: what they
    read) record their input state from the very files they read."""
    state = input_state(config.source, identity, as_of) if identity is not None else None
    change, config_hash = None, config.fingerprint()
    if incremental:
        change = decide_incremental(
            spark,
            Outputs.of(config.output),
            config.source,
            grains,
            state,
            config_hash,
            config.revenue.fx_max_staleness_days,
            config.reach_days(),
            period_tables(config.insights.tables()),
        )
        plan = change.plan
    scope = "incremental" if incremental else ("range" if plan is not None else "all")
    requested = (
        (f"incremental ({change.note}): " if change is not None else "")
        + ("nothing" if change is not None and change.unchanged else describe(plan))
        + (f", as of {as_of}" if as_of else "")
    )
    return Request(grains, plan, scope, requested, as_of, config_hash, change, state)


def _compute_and_write(
    spark: SparkSession,
    config: Config,
    request: Request,
    inputs: Inputs,
    log: RunLog,
    txn: Txn,
    timer: StageTimer,
    counts_seen: list[RunCounts],
) -> RunResult:
    grains, options = request.grains, pass_options(config, inputs.rates, request.as_of)
    check_metric_source(config, inputs.columns)
    tables = config.insights.tables()
    tiering = Tiering.of(
        config.tiers,
        "concentration" in tables,
        config.periods.timezone,
        "segment_summary" in tables,
    )
    seeds = None
    if tiering.stability is not None and request.plan is not None:
        seeds = stored_state(spark, Outputs.of(config.output), grains, request.plan, tiering.groups)
    clv = (
        clv_scores(spark, Outputs.of(config.output)) if tiering.metric == "predicted_clv" else None
    )
    with computation(
        inputs.source, inputs.columns, options, grains, request.plan, tiering, timer, seeds, clv
    ) as computed:
        unstored: set[str] = set()
        plan = request.plan
        planned = plan.periods if plan is not None else None
        # Periods that a retention left partial keep what is stored (checks.hold_partial).
        partial = checks.periods_begun_before(grains, request.horizon, config.reach_days())
        planned, held = checks.hold_partial(planned, partial) if planned else (planned, set())
        if planned is not None and request.scope == "incremental":
            # A period planned only because a neighbouring day changed may have no rows,
            # now or ever: with nothing stored for it there is nothing to replace.
            empty = checks.empty_periods(planned, computed.boundaries)
            unstored = empty - stored_periods(spark, Outputs.of(config.output), empty)
        periods = checks.periods_to_write(
            planned,
            computed.boundaries,
            config.periods.grains,
            config.quality.allow_empty_periods,
            unstored,
        )
        # Incremental: the changed days' periods may hold no valid rows, and none be stored:
        # no period to write, but their rejected rows are checked and quarantined as ever.
        nothing = bool(unstored) and not any(periods.values())
        periods = {} if nothing else periods
        counts, duplicated = computed.counts()
        counts_seen.append(counts)
        check_counts(config, counts)
        windows = [g for g in grains if isinstance(g, RollingGrain)]
        baseline = request.change.baseline if request.change is not None else None
        span = checks.data_span(
            (counts.first_month, counts.last_month),
            plan.read_ranges if plan is not None else None,
            baseline.data_months if baseline is not None else None,
        )
        skipped = checks.incomplete_windows(windows, *span)
        periods, found_partial = checks.hold_partial(periods, partial)
        held |= found_partial
        periods = checks.without_windows(periods, skipped, held)
        calendar = {g.name for g in grains if not g.rolling}
        checks.reconcile(counts, computed.boundaries, periods, calendar, held)
        migrations = None
        if contract.TIER_MIGRATIONS in config.insights.tables() and any(periods.values()):
            with timer("tier migrations"):
                migrations = run_migrations(
                    spark,
                    Outputs.of(config.output),
                    grains,
                    periods,
                    config.tiers.by,
                    computed.migration_input,
                    checks.boundary_totals(computed.boundaries, periods),
                )
        with timer("write"):
            versions = _write(
                spark, config, computed, counts, duplicated, periods, log, txn, migrations
            )
    return RunResult(
        run_id=log.run_id,
        outputs=Outputs.of(config.output),
        periods=periods,
        boundaries=in_boundary_order(
            computed.boundaries, config.periods.grains, config.tiers.segment_names()
        ),
        counts=counts,
        table_versions=versions,
        stage_seconds=timer.seconds,
        skipped_windows=tuple(sorted(skipped & {row["period"] for row in computed.boundaries})),
        rfm_ties=tuple(
            tie
            for tie in computed.rfm_ties
            if tie["period"] in periods.get(tie["period_grain"], ())
        ),
        held_back=tuple(
            row
            for row in computed.held_back
            if row["period"] in periods.get(row["period_grain"], ())
        ),
        note=_joined(
            request,
            checks.NOTHING_TO_WRITE if nothing else None,
            checks.held_note(held, request.horizon),
        ),
    )


def check_metric_source(config: Config, columns: Mapping[str, str]) -> None:
    """The tier metric's source column must be there (margin needs the cost)."""
    if config.tiers.metric == "margin" and "cost" not in columns:
        raise ConfigError(
            "config key 'tiers.metric': margin needs a cost column, and the source has none "
            "named cost: map one with source.columns.cost"
        )


def check_counts(config: Config, counts: RunCounts) -> None:
    if config.revenue.fail_on_missing_fx:
        checks.check_fx_coverage(counts, config.revenue.reporting_currency)
    quality = config.quality
    checks.check_quarantine_fraction(
        counts, quality.max_quarantine_fraction, quality.quarantine_excluded
    )


def _write(
    spark: SparkSession,
    config: Config,
    computed: Computation,
    counts: RunCounts,
    duplicated: tuple[int, ...],
    periods: dict[str, tuple[str, ...]],
    log: RunLog,
    txn: Txn,
    migrations: Migrations | None = None,
) -> dict[str, int]:
    """Quarantine first, then the periods of customer_segments and the small period tables,
    read back from the committed versions to check they hold what was computed; then the
    tables derived from the committed segments (`revseg.io.derived`)."""
    output, excluded = Outputs.of(config.output), config.quality.quarantine_excluded
    versions = {}
    expected = counts.quarantined(excluded)
    if expected:
        records = computed.quarantined(duplicated, excluded, log.run_id, log.started.date())
        versions[contract.QUARANTINED_TRANSACTIONS] = append_quarantine(
            spark, output, records, expected, log.run_id, txn
        )
    if not any(periods.values()):
        return versions
    summaries = {
        contract.TIER_BOUNDARIES: computed.boundaries,
        contract.SEGMENT_SUMMARY: computed.summaries,
        contract.CONCENTRATION: computed.concentration,
    }
    written = period_tables(config.insights.tables())
    versions.update(
        write_periods(
            spark,
            output,
            computed.segments,
            {name: rows for name, rows in summaries.items() if name in written},
            periods,
            config.tiers.by,
            log.run_id,
            txn,
        )
    )
    committed = committed_totals(spark, output, versions, periods)
    checks.check_committed(
        checks.boundary_totals(computed.boundaries, periods), committed, versions
    )
    grains = make_grains(config.periods.grains, config.periods.fiscal_year_start_month)
    if migrations is not None:
        version = write_migrations(
            spark, output, grains, periods, config.tiers.by, migrations, log.run_id
        )
        if version is not None:
            versions[contract.TIER_MIGRATIONS] = version
    if config.insights.customer_current_segment:
        mine = [grain for grain in grains if periods.get(grain.name)]
        current = write_derived(
            spark,
            output,
            contract.CUSTOMER_CURRENT_SEGMENT,
            versions[contract.CUSTOMER_SEGMENTS],
            lambda version: write_current_segments(
                spark, output, mine, config.tiers.by, version, log.run_id
            ),
            log.run_id,
            also=clv_tables_of(spark, output),
        )
        if current is not None:
            versions[contract.CUSTOMER_CURRENT_SEGMENT] = current
    return versions


def _joined(request: Request, *notes: str | None) -> str | None:
    """An incremental run's note (what changed) followed by the run's own, if any."""
    parts = [request.change.note if request.change is not None else None, *notes]
    return "; ".join(p for p in parts if p) or None


def pass_options(config: Config, rates: FxRates | None, as_of: date | None) -> PassOptions:
    """The first pass's options, from the config, the checked rates and the as-of date."""
    revenue, quality, timezone = config.revenue, config.quality, config.periods.timezone
    fx = None
    if rates is not None:
        fx = FxInput(rates.rates, rates.first_dates, revenue.fx_max_staleness_days)
    return PassOptions(
        timezone=timezone,
        reporting_currency=revenue.reporting_currency,
        types=revenue.types,
        rules=row_rules(timezone, quality.min_date, quality.max_abs_amount, as_of),
        groups=config.tiers.by,
        metrics=config.metrics.include,
        refunds_to_sale=revenue.refund_attribution == "original",
        guest_customer_id=quality.guest_customer_id,
        fx=fx,
    )


def _run_log(
    config: Config, request: Request, run_id: str, key: str, started: datetime, files: int
) -> RunLog:
    return RunLog(
        outputs=Outputs.of(config.output),
        run_id=run_id,
        key=key,
        requested=request.requested,
        started=started,
        config_hash=request.config_hash,
        source=config.source.location,
        source_format=config.source.format,
        source_is_table=config.source.table is not None,
        quarantine_excluded=config.quality.quarantine_excluded,
        scope=request.scope,
        state=request.state,
        input_files=files,
    )


def _skip_unchanged(
    spark: SparkSession, config: Config, request: Request, started: datetime
) -> RunResult:
    """An incremental run that found no input changed: logged as skipped, nothing read."""
    change = request.change
    if change is None or change.baseline is None:
        raise ValueError("only an incremental run with a baseline is skipped as unchanged")
    log_version = ensure_runs_table(spark, Outputs.of(config.output))
    key = work_key(request.config_hash, request.requested, [], __version__)
    run_id, _ = write_ids(key, log_version)
    logger.info("run %s: %s", run_id, change.note)
    versions = dict(change.baseline.table_versions)
    _run_log(config, request, run_id, key, started, 0).write(spark, SKIPPED, versions=versions)
    return RunResult.skipped(
        run_id, Outputs.of(config.output), versions, change.baseline.run_id, change.note
    )
