"""tier_migrations as a run writes it: computed before the write from the run's rows and
the stored periods of the same grains, checked to add up to both periods' totals, and
written after the exclusive commits by `revseg.io.derived` (derived again from the table
where another run committed segments in between)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import checks, contract
from revseg.errors import ConcurrentWriteError, RunError
from revseg.io.delta_history import latest_version
from revseg.io.derived import changed_since, write_derived
from revseg.io.outputs import committed_rows, replace_summary
from revseg.io.table_ref import Outputs
from revseg.migrations import migration_counts_of
from revseg.periods import Grain
from revseg.result import Migrations

Totals = dict[tuple[str, str], tuple[int, int]]


def run_migrations(
    spark: SparkSession,
    output: Outputs,
    grains: Sequence[Grain],
    periods: Mapping[str, Sequence[str]],
    groups: Sequence[str],
    run_rows: Callable[[list[str]], DataFrame],
    run_totals: Totals,
) -> Migrations:
    """The tier_migrations rows of the pairs the written `periods` change, from the run's
    rows of them (`run_rows(labels)`) and the stored segments of every other period of
    their grains (at one version); checked before anything is written. `run_totals`: the
    customers and cents of the written periods."""
    version = latest_version(spark, output.table(contract.CUSTOMER_SEGMENTS))
    stored_totals = stored_period_totals(spark, output)
    written = {name: set(labels) for name, labels in periods.items() if labels}
    stored = {
        grain.name: {p for g, p in stored_totals if g == grain.name} - written[grain.name]
        for grain in grains
        if grain.name in written
    }
    rows = run_rows(sorted(p for labels in written.values() for p in labels))
    if any(stored.values()):
        rows = rows.unionByName(stored_segment_rows(spark, output, stored, groups, version))
    try:
        return _checked(
            spark, rows, grains, written, stored, groups, {**stored_totals, **run_totals}, version
        )
    except RunError:
        if changed_since(spark, output, version):
            raise ConcurrentWriteError(
                "another run committed customer_segments while this one read its stored "
                "periods for tier_migrations; nothing of this run was written. Retry the run."
            ) from None
        raise


def migrations_at(
    spark: SparkSession,
    output: Outputs,
    grains: Sequence[Grain],
    periods: Mapping[str, Sequence[str]],
    groups: Sequence[str],
    version: int,
) -> Migrations:
    """The run's tier_migrations derived again, from customer_segments at `version` alone
    (its written periods and every other of their grains), after another run committed."""
    written = {name: set(labels) for name, labels in periods.items() if labels}
    totals = segment_period_totals(spark, output, written, version)
    stored = {
        name: {p for g, p in totals if g == name} - labels for name, labels in written.items()
    }
    everything = {name: labels | stored[name] for name, labels in written.items()}
    rows = stored_segment_rows(spark, output, everything, groups, version)
    return _checked(spark, rows, grains, written, stored, groups, totals, version)


def _checked(
    spark: SparkSession,
    rows: DataFrame,
    grains: Sequence[Grain],
    written: Mapping[str, set[str]],
    stored: Mapping[str, set[str]],
    groups: Sequence[str],
    totals: Totals,
    version: int,
) -> Migrations:
    counts, replaced = migration_counts_of(spark, rows, grains, written, stored, groups)
    found = Migrations(tuple(counts), tuple(replaced), totals, version)
    checks.check_migrations(found.rows, found)
    return found


def write_migrations(
    spark: SparkSession,
    output: Outputs,
    grains: Sequence[Grain],
    periods: Mapping[str, Sequence[str]],
    groups: Sequence[str],
    computed: Migrations,
    run_id: str,
) -> int | None:
    """tier_migrations: the pairs computed before the write, or, where another run has
    committed segments since they were read, derived again from the table; each commit
    read back and checked."""

    def derive(version: int) -> int | None:
        found = computed
        if version != computed.source_version:
            found = migrations_at(spark, output, grains, periods, groups, version)
        committed = replace_summary(
            spark, output, contract.TIER_MIGRATIONS, found.rows, found.periods, groups, run_id
        )
        if committed is not None:
            stored = committed_rows(
                spark, output, contract.TIER_MIGRATIONS, committed, found.periods
            )
            checks.check_migrations(stored, found, committed)
        return committed

    return write_derived(
        spark, output, contract.TIER_MIGRATIONS, computed.source_version, derive, run_id
    )


def stored_period_totals(
    spark: SparkSession, outputs: Outputs
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per stored (period_grain, period): customers and revenue (cents), from tier_boundaries
    (a few rows per period)."""
    rows = (
        outputs.table(contract.TIER_BOUNDARIES)
        .read(spark)
        .groupBy("period_grain", "period")
        .agg(
            F.sum("customers").alias("customers"),
            F.sum((F.col("revenue") * 100).cast("long")).alias("cents"),
        )
        .collect()
    )
    return {
        (r["period_grain"], r["period"]): (int(r["customers"]), int(r["cents"] or 0)) for r in rows
    }


def segment_period_totals(
    spark: SparkSession, outputs: Outputs, grains: Collection[str], version: int
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (period_grain, period) of these grains in customer_segments at `version`:
    customers and revenue (cents), to derive tier_migrations from that version alone."""
    rows = (
        outputs.table(contract.CUSTOMER_SEGMENTS)
        .read(spark, version)
        .where(F.col("period_grain").isin(sorted(grains)))
        .groupBy("period_grain", "period")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum((F.col("revenue") * 100).cast("long")).alias("cents"),
        )
        .collect()
    )
    return {
        (r["period_grain"], r["period"]): (int(r["customers"]), int(r["cents"] or 0)) for r in rows
    }


def stored_segment_rows(
    spark: SparkSession,
    outputs: Outputs,
    periods: Mapping[str, Collection[str]],
    groups: Sequence[str],
    version: int | None = None,
) -> DataFrame:
    """The customer_segments rows of these periods (grain -> labels), at `version` (None:
    the latest): customer, period, groups, segment and revenue in cents (only those
    periods' files are read)."""
    wanted = F.lit(False)
    for grain, labels in periods.items():
        wanted = wanted | ((F.col("period_grain") == grain) & F.col("period").isin(sorted(labels)))
    return (
        outputs.table(contract.CUSTOMER_SEGMENTS)
        .read(spark, version)
        .where(wanted)
        .select(
            "customer_id",
            "period_grain",
            "period",
            *groups,
            "segment",
            (F.col("revenue") * 100).cast("long").alias("revenue_cents"),
        )
    )
