"""The output tables (under `output.path`, or in `output.schema`): created up front, their
stored periods, and the writes of a run (quarantine appended, then customer_segments, then
tier_boundaries, each one atomic commit)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import ConcurrentWriteError, ConfigError, RunError, TableError
from revseg.io.delta_history import Commit, commits_since, committed_version, latest_version
from revseg.io.delta_tables import (
    KEPT_HISTORY,
    PLAIN_ENCODING,
    PROPERTY_PREFIX,
    Txn,
    append_rows,
    ensure_properties,
    ensure_table,
    is_delta_table,
    replace_periods,
    set_properties,
)
from revseg.io.table_ref import Outputs
from revseg.period_keys import period_key_map
from revseg.periods import Grain, PeriodPlan, key_step
from revseg.predicted import ClvScores

# The tables every run replaces periods of (the quarantine is appended to).
OUTPUT_TABLES = (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES)
SUMMARY_TABLES = contract.SUMMARY_TABLES


def period_tables(summaries: Sequence[str] = ()) -> tuple[str, ...]:
    """The tables a run replaces periods of: customer_segments, tier_boundaries and the
    summary tables turned on, in the order it commits them."""
    return (*OUTPUT_TABLES, *[t for t in SUMMARY_TABLES if t in summaries])


# The earliest source day the tables' periods were computed from (table property).
SOURCE_FIRST_DAY = PROPERTY_PREFIX + "source.first_day"


def ensure_outputs(
    spark: SparkSession,
    outputs: Outputs,
    groups: tuple[str, ...],
    meaning: Mapping[str, str],
    first_day: date | None = None,
    summaries: Sequence[str] = (),
    current: bool = False,
) -> date | None:
    """Create customer_segments and tier_boundaries if absent (a foreign table at their path
    stops the run before any work), each recording the settings that give its period labels
    their `meaning` (`PeriodsConfig.meaning`), and refuse tables made under other ones;
    check the quarantine table if it exists.

    `summaries`: the summary tables the run writes, created here too, and with `current`
    customer_current_segment.
    `first_day`: the source's first date partition now (runs that list every partition).
    customer_segments records the earliest one its periods were computed from; when the
    source now starts later, the days before were removed (retention) and this returns
    `first_day`: periods that begin before it are partial now and stay as stored."""
    recorded = {PROPERTY_PREFIX + key: value for key, value in meaning.items()}
    first = {SOURCE_FIRST_DAY: first_day.isoformat()} if first_day is not None else {}
    found: dict[str, dict[str, str]] = {}
    for name, schema, partitions, properties in (
        (
            contract.CUSTOMER_SEGMENTS,
            contract.CUSTOMER_SEGMENTS_SCHEMA,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
            {**contract.CUSTOMER_SEGMENTS_PROPERTIES, **first},
        ),
        (
            contract.TIER_BOUNDARIES,
            contract.TIER_BOUNDARIES_SCHEMA,
            contract.TIER_BOUNDARIES_PARTITIONS,
            {},
        ),
        *[
            (name, contract.PERIOD_SUMMARY_SCHEMAS[name], contract.PERIOD_PARTITIONS, {})
            for name in SUMMARY_TABLES
            if name in summaries
        ],
        *[
            (
                contract.CUSTOMER_CURRENT_SEGMENT,
                contract.CUSTOMER_CURRENT_SEGMENT_SCHEMA,
                contract.CUSTOMER_CURRENT_SEGMENT_PARTITIONS,
                {},
            )
        ][: 1 if current else 0],
    ):
        table = outputs.table(name)
        schema = contract.with_groups(schema, groups)
        found[name] = ensure_table(spark, table, schema, partitions, {**properties, **recorded})
        ensure_properties(spark, table, found[name], meaning, KEPT_HISTORY)
    quarantine = outputs.table(contract.QUARANTINED_TRANSACTIONS)
    if is_delta_table(spark, quarantine):  # else created by the first run that needs it
        ensure_table(spark, quarantine, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)
    if first_day is None:
        return None
    seen = found[contract.CUSTOMER_SEGMENTS].get(SOURCE_FIRST_DAY)
    if seen is None or first_day.isoformat() < seen:  # a first run, or older days backfilled
        set_properties(spark, outputs.table(contract.CUSTOMER_SEGMENTS), first)
        return None
    return first_day if first_day.isoformat() > seen else None


def current_versions(
    spark: SparkSession, outputs: Outputs, skip: Collection[str] = ()
) -> dict[str, int]:
    """The current version of every output table that exists (what a reader should read),
    but those in `skip`."""
    versions = {}
    for table in (
        *OUTPUT_TABLES,
        *SUMMARY_TABLES,
        contract.CUSTOMER_CURRENT_SEGMENT,
        contract.QUARANTINED_TRANSACTIONS,
    ):
        if table in skip:
            continue
        ref = outputs.table(table)
        if is_delta_table(spark, ref):
            versions[table] = latest_version(spark, ref)
    return versions


def stored_periods(spark: SparkSession, outputs: Outputs, periods: set[str]) -> set[str]:
    """Which of these periods either output table holds rows for (both are partitioned by
    period: only those periods' files are read)."""
    stored: set[str] = set()
    for name in OUTPUT_TABLES if periods else ():
        table = outputs.table(name).read(spark)
        rows = table.where(F.col("period").isin(sorted(periods))).select("period").distinct()
        stored |= {row["period"] for row in rows.collect()}
    return stored


def write_periods(
    spark: SparkSession,
    outputs: Outputs,
    segments: DataFrame,
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    periods: Mapping[str, tuple[str, ...]],
    groups: tuple[str, ...],
    run_id: str,
    txn: Txn | None = None,
) -> dict[str, int]:
    """customer_segments, then each of the small tables in `summaries` (name -> rows:
    tier_boundaries first): each one atomic commit over the periods; then no other run may
    have committed the same periods to any of them since just before the first
    (`check_alone`).

    A small table with no rows for its periods and none stored there is left alone (Delta
    makes no commit for an empty replace)."""
    all_periods = [p for labels in periods.values() for p in labels]
    summaries = {
        name: rows
        for name, rows in summaries.items()
        if rows or holds_periods(spark, outputs, name, all_periods)
    }
    tables = (contract.CUSTOMER_SEGMENTS, *summaries)
    before = {table: latest_version(spark, outputs.table(table)) for table in tables}
    written = set(all_periods)
    replace_periods(
        segments.where(F.col("period").isin(all_periods)),
        outputs.table(contract.CUSTOMER_SEGMENTS),
        all_periods,
        contract.CUSTOMER_SEGMENTS_PARTITIONS,
        run_id,
        parquet_settings=PLAIN_ENCODING,
        txn=txn,
    )
    committed = [contract.CUSTOMER_SEGMENTS]
    for name, rows in summaries.items():
        frame = summary_frame(spark, name, rows, all_periods, groups)
        try:
            replace_periods(
                frame, outputs.table(name), all_periods, contract.PERIOD_PARTITIONS, run_id, txn=txn
            )
        except ConcurrentWriteError as err:
            done = ", ".join(
                f"{table} (version {committed_version(spark, outputs.table(table), run_id)})"
                for table in committed
            )
            raise ConcurrentWriteError(
                f"{err} {done} already committed: retry the run to bring the tables in line."
            ) from None
        committed.append(name)
    # One history read per table: this run's commit and every other since just before it.
    # A retry whose commit Delta skipped (same txn ids) finds the earlier attempt's: the
    # window starts there, so another run's commit in between is seen too.
    commits = {
        table: commits_since(spark, outputs.table(table), before[table], run_id) for table in tables
    }
    versions = {table: own_version(commits[table], table, run_id) for table in tables}
    check_alone(commits, written, run_id)
    return versions


def summary_frame(
    spark: SparkSession,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    periods: Sequence[str],
    groups: Sequence[str],
) -> DataFrame:
    """A small period table's rows of these periods, in its schema."""
    schema = contract.with_groups(contract.PERIOD_SUMMARY_SCHEMAS[name], tuple(groups))
    wanted = set(periods)
    return spark.createDataFrame(
        [tuple(row[f] for f in schema.fieldNames()) for row in rows if row["period"] in wanted],
        schema,
    )


def replace_summary(
    spark: SparkSession,
    outputs: Outputs,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    periods: Sequence[str],
    groups: Sequence[str],
    run_id: str,
) -> int | None:
    """Replace these periods of a small period table with `rows`, in one commit; its
    version (None: no rows, and none stored there, so nothing to replace)."""
    if not rows and not holds_periods(spark, outputs, name, periods):
        return None
    frame = summary_frame(spark, name, rows, periods, groups)
    table = outputs.table(name)
    replace_periods(frame, table, periods, contract.PERIOD_PARTITIONS, run_id)
    return committed_version(spark, table, run_id)


def holds_periods(
    spark: SparkSession, outputs: Outputs, table: str, periods: Sequence[str]
) -> bool:
    """Whether the table has rows in any of these periods (it is partitioned by period)."""
    found = outputs.table(table).read(spark).where(F.col("period").isin(list(periods)))
    return bool(found.limit(1).collect())


def stored_state(
    spark: SparkSession,
    outputs: Outputs,
    grains: Sequence[Grain],
    plan: PeriodPlan,
    groups: Sequence[str],
) -> DataFrame | None:
    """Stable tiers' seeds: the stored customer_segments rows of each period just before a
    planned one that is not planned itself (customer, grain_idx, groups, period_key,
    segment, pending_segment, pending_periods); None when there are none to read."""
    before: dict[str, list[str]] = {}
    for grain in grains:
        planned = set(plan.keys.get(grain.name, ()))
        keys = sorted({key - key_step(grain) for key in planned} - planned)
        before[grain.name] = [grain.label(key) for key in keys]
    if not any(before.values()):
        return None
    key_map = period_key_map(spark, grains, before)
    wanted = F.lit(False)
    for name, labels in before.items():
        wanted = wanted | ((F.col("period_grain") == name) & F.col("period").isin(labels))
    rows = outputs.table(contract.CUSTOMER_SEGMENTS).read(spark).where(wanted)
    return rows.join(F.broadcast(key_map), ["period_grain", "period"]).select(
        "customer_id",
        "grain_idx",
        *groups,
        "period_key",
        "segment",
        "pending_segment",
        "pending_periods",
    )


def clv_scores(spark: SparkSession, outputs: Outputs) -> ClvScores:
    """customer_clv's scores and calibration dates, for the predicted_clv tier metric; a
    clear error where no CLV run has written them."""
    table = outputs.table(contract.CUSTOMER_CLV)
    if not is_delta_table(spark, table):
        raise ConfigError(
            f"config key 'tiers.metric': predicted_clv ranks by {contract.CUSTOMER_CLV}, and "
            f"there is none at {table}: run `revseg clv` first, or rank by another metric"
        )
    frame = table.read(spark).select("customer_id", "calibration_end", "clv")
    dates = tuple(
        sorted(r["calibration_end"] for r in frame.select("calibration_end").distinct().collect())
    )
    if not dates:
        raise ConfigError(
            f"config key 'tiers.metric': predicted_clv ranks by {contract.CUSTOMER_CLV}, "
            f"which holds no scores at {table}: run `revseg clv` first"
        )
    return ClvScores(frame, dates)


def committed_rows(
    spark: SparkSession, outputs: Outputs, table: str, version: int, periods: Sequence[str]
) -> list[dict[str, Any]]:
    """A small table's rows of these periods at the version a run committed."""
    frame = outputs.table(table).read(spark, version).where(F.col("period").isin(list(periods)))
    return [row.asDict() for row in frame.collect()]


def own_version(commits: Sequence[Commit], table: str, run_id: str) -> int:
    """The version of the run's latest commit among `commits`."""
    own = [commit.version for commit in commits if commit.writer == run_id]
    if not own:
        raise TableError(f"the commit of run {run_id} is not in the history of {table}")
    return max(own)


def check_alone(
    commits: Mapping[str, Sequence[Commit]], periods: Collection[str], run_id: str
) -> None:
    """Fail when another writer committed any of `periods` to a table of `commits` (per
    table: since just before this run's first commit, or its earlier attempt's).

    Two runs of the same period whose commits interleave would each find the other's commit
    here, so at most one of them succeeds (or both commit strictly one after the other): a
    reader of the run log (`latest_complete`) never sees a period with segments of one run
    and boundaries of another."""
    clashes: dict[str, set[str]] = {}
    for table, found in commits.items():
        for commit in found:
            if commit.writer == run_id:
                continue
            touched = {period for period in periods if commit.touches(period)}
            if touched:
                writer = commit.writer or (
                    f"unknown (commits of {table} the log no longer holds, to version "
                    f"{commit.version})"
                    if commit.unknown
                    else f"another writer ({table} version {commit.version})"
                )
                clashes.setdefault(writer, set()).update(touched)
    if clashes:
        labels = sorted(set().union(*clashes.values()))
        raise ConcurrentWriteError(
            f"run {', '.join(sorted(clashes))} committed for period(s) {', '.join(labels)} "
            f"while run {run_id} wrote them; this run is not logged as succeeded, and "
            "readers of the run log see the other run's rows. Retry the run."
        )


def committed_totals(
    spark: SparkSession,
    outputs: Outputs,
    versions: Mapping[str, int],
    periods: Mapping[str, tuple[str, ...]],
) -> dict[str, dict[tuple[str, str], tuple[int, int]]]:
    """customer_segments, tier_boundaries and (when written) segment_summary read back at
    the versions a run committed: per (period_grain, period) of `periods`, customers and
    revenue in cents (one small aggregate over the written period partitions)."""
    labels = sorted({p for found in periods.values() for p in found})
    customers = {
        contract.CUSTOMER_SEGMENTS: F.lit(1).cast("long"),
        contract.TIER_BOUNDARIES: F.col("customers").cast("long"),
    }
    if contract.SEGMENT_SUMMARY in versions:
        customers[contract.SEGMENT_SUMMARY] = F.col("customers").cast("long")
    frames = [
        outputs.table(table)
        .read(spark, versions[table])
        .where(F.col("period").isin(labels))
        .select(
            F.lit(table).alias("table"),
            "period_grain",
            "period",
            count.alias("customers"),
            (F.col("revenue") * 100).cast("long").alias("cents"),
        )
        for table, count in customers.items()
    ]
    rows = (
        reduce(DataFrame.unionByName, frames)
        .groupBy("table", "period_grain", "period")
        .agg(F.sum("customers").alias("customers"), F.sum("cents").alias("cents"))
        .collect()
    )
    totals: dict[str, dict[tuple[str, str], tuple[int, int]]] = {t: {} for t in customers}
    for row in rows:
        key = (row["period_grain"], row["period"])
        totals[row["table"]][key] = (int(row["customers"]), int(row["cents"] or 0))
    return totals


def append_quarantine(
    spark: SparkSession,
    outputs: Outputs,
    records: DataFrame,
    expected: int,
    run_id: str,
    txn: Txn,
) -> int:
    """Append this run's quarantined rows and check that as many were written as the first
    pass counted; the quarantine table's version."""
    written = Observation("quarantine")
    records = records.observe(written, F.count(F.lit(1)).alias("rows"))
    table = outputs.table(contract.QUARANTINED_TRANSACTIONS)
    ensure_table(spark, table, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)
    before = latest_version(spark, table)
    append_rows(records, table, contract.QUARANTINE_PARTITIONS, run_id, txn)
    version = committed_version(spark, table, run_id)
    if version <= before:
        # A retry: Delta skipped the append (same txn ids) and the commit found is the
        # crashed attempt's. The frame never ran, so there is no observation to wait for.
        return version
    got = int(written.get.get("rows", 0))
    if got != expected:
        raise RunError(
            f"reconciliation failed: the first pass counted {expected:,} rows to quarantine, "
            f"the quarantine pass wrote {got:,} (quarantine version {version}); "
            "customer_segments and tier_boundaries were not written"
        )
    return version
