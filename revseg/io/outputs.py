"""The output tables under `output.path`: created up front, their stored periods, and the
writes of a run (quarantine appended, then customer_segments, then tier_boundaries, each
one atomic commit)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import ConcurrentWriteError, RunError
from revseg.io import paths
from revseg.io.delta_tables import (
    PLAIN_ENCODING,
    PROPERTY_PREFIX,
    Txn,
    append_rows,
    ensure_properties,
    ensure_table,
    latest_version,
    replace_periods,
)

# The tables every run replaces periods of (the quarantine is appended to).
OUTPUT_TABLES = (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES)


def table_path(output_path: str, name: str) -> str:
    return paths.join(output_path, name)


def ensure_outputs(
    spark: SparkSession,
    output_path: str,
    groups: tuple[str, ...],
    meaning: Mapping[str, str],
) -> None:
    """Create customer_segments and tier_boundaries if absent (a foreign table at their path
    stops the run before any work), each recording the settings that give its period labels
    their `meaning` (`PeriodsConfig.meaning`), and refuse tables made under other ones;
    check the quarantine table if it exists."""
    recorded = {PROPERTY_PREFIX + key: value for key, value in meaning.items()}
    for name, schema, partitions, properties in (
        (
            contract.CUSTOMER_SEGMENTS,
            contract.CUSTOMER_SEGMENTS_SCHEMA,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
            contract.CUSTOMER_SEGMENTS_PROPERTIES,
        ),
        (
            contract.TIER_BOUNDARIES,
            contract.TIER_BOUNDARIES_SCHEMA,
            contract.TIER_BOUNDARIES_PARTITIONS,
            {},
        ),
    ):
        path = table_path(output_path, name)
        found = ensure_table(
            spark,
            path,
            contract.with_groups(schema, groups),
            partitions,
            {**properties, **recorded},
        )
        ensure_properties(spark, path, found, meaning)
    quarantine = table_path(output_path, contract.QUARANTINED_TRANSACTIONS)
    if DeltaTable.isDeltaTable(spark, quarantine):  # else created by the first run that needs it
        ensure_table(spark, quarantine, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)


def current_versions(
    spark: SparkSession, output_path: str, skip: Collection[str] = ()
) -> dict[str, int]:
    """The current version of every output table that exists (what a reader should read),
    but those in `skip`."""
    versions = {}
    for table in (*OUTPUT_TABLES, contract.QUARANTINED_TRANSACTIONS):
        if table in skip:
            continue
        path = table_path(output_path, table)
        if DeltaTable.isDeltaTable(spark, path):
            versions[table] = latest_version(spark, path)
    return versions


def stored_periods(spark: SparkSession, output_path: str, periods: set[str]) -> set[str]:
    """Which of these periods either output table holds rows for (both are partitioned by
    period: only those periods' files are read)."""
    stored: set[str] = set()
    for name in OUTPUT_TABLES if periods else ():
        table = spark.read.format("delta").load(table_path(output_path, name))
        rows = table.where(F.col("period").isin(sorted(periods))).select("period").distinct()
        stored |= {row["period"] for row in rows.collect()}
    return stored


def write_periods(
    spark: SparkSession,
    output_path: str,
    segments: DataFrame,
    boundaries: Sequence[Mapping[str, Any]],
    periods: Mapping[str, tuple[str, ...]],
    groups: tuple[str, ...],
    run_id: str,
    txn: Txn | None = None,
) -> dict[str, int]:
    """customer_segments, then tier_boundaries: each one atomic commit over the periods."""
    all_periods = [p for labels in periods.values() for p in labels]
    written = set(all_periods)
    boundaries_schema = contract.with_groups(contract.TIER_BOUNDARIES_SCHEMA, groups)
    boundary_frame = spark.createDataFrame(
        [
            tuple(row[name] for name in boundaries_schema.fieldNames())
            for row in boundaries
            if row["period"] in written
        ],
        boundaries_schema,
    )
    versions = {
        contract.CUSTOMER_SEGMENTS: replace_periods(
            segments.where(F.col("period").isin(all_periods)),
            table_path(output_path, contract.CUSTOMER_SEGMENTS),
            all_periods,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
            run_id,
            parquet_settings=PLAIN_ENCODING,
            txn=txn,
        )
    }
    try:
        versions[contract.TIER_BOUNDARIES] = replace_periods(
            boundary_frame,
            table_path(output_path, contract.TIER_BOUNDARIES),
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


def committed_totals(
    spark: SparkSession,
    output_path: str,
    versions: Mapping[str, int],
    periods: Mapping[str, tuple[str, ...]],
) -> dict[str, dict[tuple[str, str], tuple[int, int]]]:
    """customer_segments and tier_boundaries read back at the versions a run committed:
    per (period_grain, period) of `periods`, customers and revenue in cents (one small
    aggregate over the written period partitions of both tables)."""
    labels = sorted({p for found in periods.values() for p in found})
    customers = {
        contract.CUSTOMER_SEGMENTS: F.lit(1).cast("long"),
        contract.TIER_BOUNDARIES: F.col("customers").cast("long"),
    }
    frames = [
        spark.read.format("delta")
        .option("versionAsOf", versions[table])
        .load(table_path(output_path, table))
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
        frames[0]
        .unionByName(frames[1])
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
    output_path: str,
    records: DataFrame,
    expected: int,
    run_id: str,
    txn: Txn,
) -> int:
    """Append this run's quarantined rows and check that as many were written as the first
    pass counted; the quarantine table's version."""
    written = Observation("quarantine")
    records = records.observe(written, F.count(F.lit(1)).alias("rows"))
    path = table_path(output_path, contract.QUARANTINED_TRANSACTIONS)
    ensure_table(spark, path, contract.QUARANTINE_SCHEMA, contract.QUARANTINE_PARTITIONS)
    before = latest_version(spark, path)
    version = append_rows(records, path, contract.QUARANTINE_PARTITIONS, run_id, txn)
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
