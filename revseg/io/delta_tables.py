"""The Delta writer: tables created up front, periods replaced atomically, one commit each.

Every Delta operation goes through delta-spark. Facts this module relies on:
replaceWhere's constraint check only runs against an existing table (so tables are created
first), an empty DataFrame with replaceWhere deletes the periods (the pipeline refuses that),
and a conflicting concurrent commit reaches Python as a Py4JJavaError whose Java exception
carries the error class DELTA_CONCURRENT_*.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from revseg.errors import ConcurrentWriteError, TableError
from revseg.io.paths import redacting_logger

logger = redacting_logger(__name__)

# History (the commit log) kept for ten years, not Delta's 30 days: which run wrote each
# period is read from it (`revseg.io.runs.latest_complete`, the concurrency check), and
# revseg's tables take a few commits a day, each a small file.
KEPT_HISTORY_TEXT = "interval 3650 days"
KEPT_HISTORY = {"delta.logRetentionDuration": KEPT_HISTORY_TEXT}
# Keep the tables readable by delta-rs, Polars and DuckDB: no deletion vectors, row
# tracking or column mapping (Databricks turns deletion vectors on by default).
TABLE_PROPERTIES = {
    **KEPT_HISTORY,
    "delta.enableDeletionVectors": "false",
    "delta.enableRowTracking": "false",
    "delta.columnMapping.mode": "none",
    "delta.checkpointPolicy": "classic",
}

# Parquet settings for tables whose columns are mostly unique per row (ids, amounts,
# timestamps): dictionaries there cost write time and save no space (measured: writes 30-40%
# faster, files 5% smaller). Set on the session for the write only: Delta does not pass
# DataFrameWriter options on to Parquet.
PLAIN_ENCODING = {"parquet.enable.dictionary": "false"}

_PERIOD_VALUE = re.compile(r"^[A-Za-z0-9-]+$")
_CONFLICT_MARKERS = ("DELTA_CONCURRENT", "ConcurrentAppendException", "ConcurrentWriteException")


def ensure_table(
    spark: SparkSession,
    path: str,
    schema: StructType,
    partition_columns: Sequence[str],
    properties: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Create the table if absent; refuse one whose schema or partitioning differs. The
    table's properties."""
    if DeltaTable.isDeltaTable(spark, path):
        return _check_existing(spark, path, schema, partition_columns)
    created = {**TABLE_PROPERTIES, **(properties or {})}
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    builder = builder.partitionedBy(*partition_columns)
    for key, value in created.items():
        builder = builder.property(key, value)
    try:
        builder.execute()
    except Exception as err:
        if not DeltaTable.isDeltaTable(spark, path):  # not lost to a concurrent creation
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise TableError(f"cannot create the Delta table at {path}: {first_line}") from None
    if not DeltaTable.isDeltaTable(spark, path):
        raise TableError(
            f"{path} holds files that are not a Delta table: point output.path elsewhere or "
            "move them away; revseg does not overwrite them"
        )
    if latest_version(spark, path) != 0 or _created_by_other(spark, path, schema):
        # another run won the race and has written since, or created another shape
        return _check_existing(spark, path, schema, partition_columns)
    return created


def _created_by_other(spark: SparkSession, path: str, schema: StructType) -> bool:
    """After createIfNotExists: the table's schema is not the one asked for (the cheap check;
    the full one reads the table's details)."""
    found = spark.read.format("delta").load(path).schema
    return [f.name for f in found.fields] != [f.name for f in schema.fields]


def _check_existing(
    spark: SparkSession, path: str, schema: StructType, partition_columns: Sequence[str]
) -> dict[str, str]:
    detail = DeltaTable.forPath(spark, path).detail().collect()[0]
    found_partitions = list(detail["partitionColumns"])
    if found_partitions != list(partition_columns):
        raise TableError(
            f"the Delta table at {path} is partitioned by {found_partitions}, revseg writes it "
            f"partitioned by {list(partition_columns)}: point output.path elsewhere or move "
            "that table away; revseg does not overwrite it"
        )
    found = spark.read.format("delta").load(path).schema
    expected = {f.name: f.dataType.simpleString() for f in schema.fields}
    actual = {f.name: f.dataType.simpleString() for f in found.fields}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
        raise TableError(
            f"the Delta table at {path} has another schema than revseg writes "
            f"(missing: {missing or 'none'}, unexpected: {extra or 'none'}, other types: "
            f"{changed or 'none'}): point output.path elsewhere or move that table away"
        )
    return dict(detail["properties"] or {})


PROPERTY_PREFIX = "revseg."


def ensure_properties(
    spark: SparkSession,
    path: str,
    found: Mapping[str, str],
    settings: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
) -> None:
    """Record config `settings` (key -> value) as the table properties `revseg.<key>`, or
    refuse the table if it records other values (`found`: its properties, from
    `ensure_table`): its rows were made under those. `defaults`: Delta properties set where
    the table has none of its own (one commit for all that are missing)."""
    wanted = {PROPERTY_PREFIX + key: value for key, value in settings.items()}
    for name, value in wanted.items():
        if name in found and found[name] != value:
            key = name.removeprefix(PROPERTY_PREFIX)
            raise TableError(
                f"config key '{key}' is {value!r}, but the table at {path} holds periods made "
                f"with {found[name]!r} (table property {name}): the same period labels would "
                f"mean two things in one table. Set {key} back to {found[name]!r}, or write "
                "to a new output.path"
            )
    missing = {**(defaults or {}), **wanted}
    set_properties(spark, path, {n: v for n, v in missing.items() if n not in found})


def set_properties(spark: SparkSession, path: str, properties: Mapping[str, str]) -> None:
    """Set table properties (one SET TBLPROPERTIES commit, which leaves the rows as they are)."""
    if properties:
        pairs = ", ".join(f"'{n}' = '{_sql_text(v)}'" for n, v in properties.items())
        spark.sql(f"ALTER TABLE delta.`{path.replace('`', '``')}` SET TBLPROPERTIES ({pairs})")


def _sql_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def period_predicate(periods: Sequence[str]) -> str:
    """`period IN (...)` for replaceWhere, from period labels that revseg built itself."""
    for period in periods:
        if not _PERIOD_VALUE.match(period):
            raise ValueError(f"not a period label: {period!r}")
    values = ", ".join(f"'{p}'" for p in sorted(set(periods)))
    return f"`period` IN ({values})"


@dataclass(frozen=True)
class Txn:
    """Delta's idempotent-write ids: a write whose (app id, version) a table has already
    committed is skipped. revseg derives both from the work and the run log (see
    `revseg.io.runs.write_ids`), so only a true retry of the same work matches."""

    app_id: str
    version: int

    def options(self) -> dict[str, str]:
        return {"txnAppId": self.app_id, "txnVersion": str(self.version)}


def replace_periods(
    frame: DataFrame,
    path: str,
    periods: Sequence[str],
    partition_columns: Sequence[str],
    run_id: str,
    parquet_settings: Mapping[str, str] | None = None,
    txn: Txn | None = None,
) -> None:
    """Replace exactly `periods` of the table with `frame`, in one commit (its version:
    `committed_version`, or the writer's commit in `commits_since`).

    The frame is clustered by the partition columns first, so each Delta partition gets
    about one new file rather than one per task.
    """
    if not periods:
        raise ValueError("replace_periods needs at least one period")
    predicate = period_predicate(periods)
    writer = (
        frame.repartition(*partition_columns)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .option("userMetadata", run_id)
        .options(**(txn.options() if txn else {}))
    )
    try:
        with session_settings(frame.sparkSession, parquet_settings or {}):
            writer.save(path)
    except Exception as err:
        if any(marker in str(err) for marker in _CONFLICT_MARKERS):
            raise ConcurrentWriteError(
                f"another run committed to {path} for period(s) {', '.join(sorted(periods))} "
                "at the same time; nothing of this run was written there. Retry the run."
            ) from None
        raise


def append_rows(
    frame: DataFrame,
    path: str,
    partition_columns: Sequence[str],
    run_id: str,
    txn: Txn | None = None,
) -> None:
    """Append `frame` to the table in one commit (its version: `committed_version`).
    Appends read nothing, so concurrent appends do not conflict."""
    clustered = frame.repartition(*partition_columns) if partition_columns else frame
    (
        clustered.write.format("delta")
        .mode("append")
        .option("userMetadata", run_id)
        .options(**(txn.options() if txn else {}))
        .save(path)
    )


def latest_version(spark: SparkSession, path: str) -> int:
    """The table's current version."""
    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


# Settings held by `session_settings` blocks, per (session, key): how many blocks hold it
# and the session's own value to restore when the last one ends.
_HELD: dict[tuple[int, str], tuple[int, str | None]] = {}
_HELD_LOCK = threading.Lock()


@contextmanager
def session_settings(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set Spark SQL settings for the block and restore the session's own values after.

    The settings only tune how files are written, never what they hold: a platform that
    refuses one (serverless, shared sessions) keeps its own, and one that refuses to
    restore it is warned about; neither fails the run (a refusal after a commit would
    fail every retry the same way). Blocks that overlap in one session (runs in threads)
    share the setting: the first sets it, the last restores the session's own value. Other
    work in the same session sees the settings while a block runs.
    """
    taken: list[tuple[int, str]] = []
    with _HELD_LOCK:
        for key, value in settings.items():
            held = (id(spark), key)
            if held in _HELD:
                count, old = _HELD[held]
                _HELD[held] = (count + 1, old)
                taken.append(held)
                continue
            try:
                old = spark.conf.get(key, None)
                spark.conf.set(key, value)
            except Exception as err:  # the platform decides which settings a job may change
                logger.info("could not set %s for the write (%s); using the default", key, err)
                continue
            _HELD[held] = (1, old)
            taken.append(held)
    try:
        yield
    finally:
        with _HELD_LOCK:
            for held in taken:
                count, old = _HELD.pop(held)
                if count > 1:
                    _HELD[held] = (count - 1, old)
                    continue
                _restore(spark, held[1], old)


def _restore(spark: SparkSession, key: str, old: str | None) -> None:
    try:
        if old is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, old)
    except Exception as err:
        logger.warning("could not restore the session setting %s (%s)", key, err)


def committed_version(spark: SparkSession, path: str, run_id: str) -> int:
    """The version this run committed (found by its run id, not "the latest": another run
    may have committed since)."""
    history = DeltaTable.forPath(spark, path).history(100)
    rows = history.where(history.userMetadata == run_id).select("version").collect()
    if not rows:
        raise TableError(f"the commit of run {run_id} is not in the history of {path}")
    return int(max(row["version"] for row in rows))


# Commits that leave a table's rows as they were: not a change a run has to account for.
KEEPS_ROWS = frozenset({"VACUUM START", "VACUUM END", "OPTIMIZE", "SET TBLPROPERTIES"})
# The operation of the commits log clean-up removed from a table's history.
UNKNOWN = "UNKNOWN"
_REPLACED = re.compile(r"^`period` IN \((.*)\)$")


@dataclass(frozen=True)
class Commit:
    """One commit of a table's history: its version, operation, writer (the run id revseg
    sets as user metadata; None for other writers) and the periods it replaced (parsed
    back from revseg's own replaceWhere predicate; None: it may have changed any)."""

    version: int
    operation: str
    writer: str | None
    periods: frozenset[str] | None

    @property
    def changes_rows(self) -> bool:
        return self.operation not in KEEPS_ROWS

    @property
    def unknown(self) -> bool:
        """Stands for commits the log no longer holds (any writer, any periods)."""
        return self.operation == UNKNOWN

    def touches(self, period: str) -> bool:
        return self.changes_rows and (self.periods is None or period in self.periods)


def commits_since(
    spark: SparkSession, path: str, version: int, writer: str | None = None
) -> list[Commit]:
    """The table's commits after `version`, oldest first; with `writer`, back to that
    writer's latest commit too where it lies before (one history read for a run's own
    commit and the others'). Where the log no longer reaches back that far (log clean-up),
    an unknown commit (`Commit.unknown`) stands first for those removed, at the newest
    version removed."""
    limit = 16
    while True:
        rows = DeltaTable.forPath(spark, path).history(limit).collect()
        reached = min((int(r["version"]) for r in rows), default=0) <= version + 1
        found = writer is None or any(r["userMetadata"] == writer for r in rows)
        if len(rows) < limit or (reached and found):
            break
        limit *= 4
    if writer is not None:
        own = [int(r["version"]) for r in rows if r["userMetadata"] == writer]
        version = min(version, max(own, default=version + 1) - 1)
    oldest = min((int(r["version"]) for r in rows), default=version + 1)
    unknown = [Commit(oldest - 1, UNKNOWN, None, None)] if oldest > version + 1 else []
    return unknown + sorted(
        (
            Commit(
                int(row["version"]),
                row["operation"],
                row["userMetadata"],
                _replaced_periods((row["operationParameters"] or {}).get("predicate")),
            )
            for row in rows
            if int(row["version"]) > version
        ),
        key=lambda commit: commit.version,
    )


def _replaced_periods(predicate: str | None) -> frozenset[str] | None:
    """The periods of a `period_predicate` (as Delta's history records it), else None."""
    found = _REPLACED.match(predicate or "")
    if found is None:
        return None
    labels = [part.strip() for part in found.group(1).split(",")]
    if not all(
        len(p) > 2 and p[0] == p[-1] == "'" and _PERIOD_VALUE.match(p[1:-1]) for p in labels
    ):
        return None
    return frozenset(p[1:-1] for p in labels)


def vacuum_table(
    spark: SparkSession, path: str, retain_hours: float | None = None, force: bool = False
) -> int | None:
    """Delete the files no current version of the table uses (left by failed or killed
    writes, or replaced more than the retention ago); how many. None: no table there.

    A retention below the table's `delta.deletedFileRetentionDuration` (7 days unless set)
    is refused, as Delta refuses it, unless `force`: it can delete the files of a write
    still running (not yet committed) and those a reader of an older version needs."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    before = _data_files(spark, path)
    table = DeltaTable.forPath(spark, path)
    # VACUUM lists the table's directories in a job of parallelPartitionDiscovery.parallelism
    # tasks (10,000 by default): 42 s for a small table on 2 cores, 2.4 s with 8 tasks.
    cores = spark.sparkContext.defaultParallelism
    settings = {"spark.sql.sources.parallelPartitionDiscovery.parallelism": str(max(8, 4 * cores))}
    if force:
        logger.warning(
            "vacuum of %s with retention %s h and Delta's retention check off: files of a "
            "write still running there, or of an older version a reader uses, are deleted",
            path,
            retain_hours,
        )
        settings["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
    try:
        with session_settings(spark, settings):
            if retain_hours is None:
                table.vacuum()
            else:
                table.vacuum(retain_hours)
    except Exception as err:
        if "retentionDurationCheck" not in str(err):
            raise
        raise TableError(
            f"vacuum of {path}: a retention of {retain_hours:g} hours is below the table's "
            "delta.deletedFileRetentionDuration (7 days unless set); it would delete the "
            "files of any write still running there and those a reader of an older version "
            "needs. Use a longer --retain-hours, or add --force when nothing is running or "
            "reading there"
        ) from None
    return before - _data_files(spark, path)


def _data_files(spark: SparkSession, path: str) -> int:
    """Parquet files under the table's directory (committed or not)."""
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    files = fs.listFiles(jvm_path, True)
    count = 0
    while files.hasNext():
        name = files.next().getPath().toString()
        if name.endswith(".parquet") and "/_delta_log/" not in name:
            count += 1
    return count
