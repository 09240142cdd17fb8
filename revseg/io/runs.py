"""The run log: one row per run in the `runs` Delta table, and reads through it.

A run appends its row last, after every table it writes has committed, so a reader who
trusts the log (`latest_complete`) never sees half a run. The log also gives each run its
Delta transaction ids: the work key (config, request, input files) and the log's version
when the run started. A retry of a run that died before logging matches both, so Delta
skips the commits it already made; any logged run in between changes the version.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.errors import TableError
from revseg.io.changes import InputState
from revseg.io.delta_history import commits_since, latest_version
from revseg.io.delta_tables import KEPT_HISTORY_TEXT, Txn, append_rows, ensure_table, is_delta_table
from revseg.io.table_ref import Outputs, TableRef
from revseg.result import FAILED, SKIPPED, SUCCEEDED

# The tables whose periods runs replace (the quarantine is appended to).
PERIOD_TABLES = (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES)


def ensure_runs_table(spark: SparkSession, outputs: Outputs) -> int:
    """Create the run log if absent; its current version."""
    table = outputs.table(contract.RUNS)
    ensure_table(spark, table, contract.RUNS_SCHEMA, ())
    return latest_version(spark, table)


def work_key(config_hash: str, requested: str, inputs: Sequence[str], version: str) -> str:
    """What a run computes from: the same key means the same config, request and input
    content (`inputs`: `InputIdentity.lines`: files by name, size and time, the Delta
    version, the rates by value)."""
    canonical = json.dumps(
        {
            "config": config_hash,
            "requested": requested,
            "inputs": list(inputs),
            "revseg": version,
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_ids(key: str, log_version: int) -> tuple[str, Txn]:
    """The run id and Delta transaction ids of a run of `key` that starts when the run log
    is at `log_version`. A retry after a crash gets the same ones (nothing was logged in
    between); after any logged run (even the same work's) they differ."""
    run_id = f"r{log_version + 1:06d}-{key[:10]}"
    return run_id, Txn(app_id=f"revseg-{key[:32]}", version=log_version + 1)


def append_run(spark: SparkSession, outputs: Outputs, row: dict[str, Any]) -> None:
    """Log one run (a dict with the `runs` columns)."""
    frame = spark.createDataFrame(
        [tuple(row.get(f.name) for f in contract.RUNS_SCHEMA.fields)], contract.RUNS_SCHEMA
    )
    append_rows(frame.coalesce(1), outputs.table(contract.RUNS), (), row["run_id"])


def read_runs(spark: SparkSession, outputs: Outputs, version: int | None = None) -> DataFrame:
    """The run log (at `version`, else its current one)."""
    table = outputs.table(contract.RUNS)
    if not is_delta_table(spark, table):
        raise TableError(f"no run log at {table}: no revseg run has written to {outputs} yet")
    return table.read(spark, version)


def recent_runs(spark: SparkSession, outputs: Outputs, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first."""
    frame = read_runs(spark, outputs).orderBy(F.col("finished_at").desc()).limit(limit)
    return [row.asDict(recursive=True) for row in frame.collect()]


def last_succeeded(spark: SparkSession, outputs: Outputs) -> dict[str, Any] | None:
    rows = (
        read_runs(spark, outputs)
        .where(F.col("status") == SUCCEEDED)
        .orderBy(F.col("finished_at").desc())
        .limit(1)
        .collect()
    )
    return rows[0].asDict(recursive=True) if rows else None


class Baseline(NamedTuple):
    """The run an incremental run compares with: its id, input state, table versions, and
    the first and last month (index) with counted data that it found."""

    run_id: str
    state: InputState
    table_versions: Mapping[str, int]
    data_months: tuple[int, int] | None = None


class NoBaseline(NamedTuple):
    """Why there is no baseline (the incremental run then computes every period)."""

    reason: str


def complete_baseline(
    spark: SparkSession, outputs: Outputs, config_hash: str, version: str
) -> Baseline | NoBaseline:
    """The last successful run that covered every period and logged its input state (what an
    incremental run compares with), or why there is none: no such run, or a run since then
    (even a failed one, which may have committed) used another config or revseg version."""
    try:
        frame = read_runs(spark, outputs)
    except TableError:
        return NoBaseline(f"no run is logged in {outputs} yet")
    rows = (
        frame.where(F.col("status").isin(SUCCEEDED, FAILED))
        .select(
            "run_id", "status", "config_hash", "revseg_version", "source_read", "table_versions"
        )
        .orderBy(F.col("finished_at").desc())
        .collect()
    )
    for row in rows:
        if row["config_hash"] != config_hash or row["revseg_version"] != version:
            return NoBaseline(
                f"run {row['run_id']} used another config or revseg version "
                f"({row['config_hash']}, revseg {row['revseg_version']})"
            )
        read = json.loads(row["source_read"] or "{}")
        if row["status"] == SUCCEEDED and read.get("scope") in ("all", "incremental"):
            if "state" not in read:
                break
            state = InputState.from_json(read["state"])
            months = read.get("data_months")
            return Baseline(
                row["run_id"],
                state,
                dict(row["table_versions"] or {}),
                (int(months[0]), int(months[1])) if months else None,
            )
    return NoBaseline("no earlier run of every period logged the state of its input")


def unchanged_since(
    spark: SparkSession, outputs: Outputs, key: str, tables: Sequence[str]
) -> dict[str, Any] | None:
    """The last successful run of the same work, if no table it wrote has changed since:
    re-running it would write the same contents again."""
    run = last_succeeded(spark, outputs)
    if run is None or run["work_key"] != key:
        return None
    for table in tables:
        recorded = (run["table_versions"] or {}).get(table)
        if recorded is None or latest_version(spark, outputs.table(table)) != recorded:
            return None
    return run


def unlogged_changes(spark: SparkSession, outputs: Outputs, tables: Sequence[str]) -> list[str]:
    """The tables whose rows changed after the last version a successful run logged for
    them: a run killed (or failed) after committing left them so, and they may hold rows
    no logged run accounts for."""
    runs = read_runs(spark, outputs).where(F.col("status").isin(SUCCEEDED, SKIPPED))
    logged = {
        row["key"]: int(row["version"])
        for row in runs.select(F.explode("table_versions"))
        .groupBy("key")
        .agg(F.max("value").alias("version"))
        .collect()
    }
    changed = []
    for table in tables:
        ref = outputs.table(table)
        since = logged.get(table, 0)  # 0: created empty (every table is, up front)
        if not is_delta_table(spark, ref) or latest_version(spark, ref) <= since:
            continue
        if any(commit.changes_rows for commit in commits_since(spark, ref, since)):
            changed.append(table)
    return changed


def latest_complete(
    spark: SparkSession, outputs: Outputs, table: str, log_version: int | None = None
) -> DataFrame:
    """`table` as the successful runs left it, never a run that has not (yet) logged
    success: each period of customer_segments and tier_boundaries as the successful run
    with the latest customer_segments commit for it wrote it, in both tables alike; the
    quarantine table as the rows of successful runs.

    A period is read at the newest version that still holds that run's rows (just before
    the next commit that replaced it, else the current one): the versions a stopped run
    left above stay unread, and old versions the log may have cleaned up are not needed.
    Where log clean-up has cut the history short of that run's commit (the tables keep
    it for ten years unless set otherwise), which run's rows a period holds cannot be told:
    refused, naming the periods. `log_version` pins the run log (`latest_complete_tables`
    reads all three tables at one)."""
    path = outputs.table(table)
    succeeded = read_runs(spark, outputs, log_version).where(F.col("status") == SUCCEEDED)
    if table not in PERIOD_TABLES:
        rows = succeeded.select("run_id", F.col("table_versions")[table].alias("v")).collect()
        logged = [row for row in rows if row["v"] is not None]
        if not logged:
            raise TableError(f"no successful run under {outputs} has written {table}")
        return _read_at(spark, path, max(int(row["v"]) for row in logged)).where(
            F.col("run_id").isin(sorted({row["run_id"] for row in logged}))
        )
    chosen = _period_runs(succeeded, table)
    if not chosen:
        raise TableError(f"no successful run under {outputs} has written {table}")
    since = min(v for _, v in chosen.values())
    later = commits_since(spark, path, since)
    current = max((commit.version for commit in later), default=since)
    at_version: dict[int, list[str]] = {}
    cut_short: dict[str, str] = {}  # period -> run id, where the history does not tell
    for period, (run_id, version) in chosen.items():
        touch = next((c for c in later if c.version > version and c.touches(period)), None)
        if touch is not None and touch.unknown:
            cut_short[period] = run_id
        else:
            read_at = current if touch is None else touch.version - 1
            at_version.setdefault(read_at, []).append(period)
    if cut_short:
        raise TableError(
            f"cannot tell which run wrote period(s) {', '.join(sorted(cut_short))} of {path}: "
            "log clean-up removed the history after the successful run that did "
            f"({', '.join(sorted(set(cut_short.values())))}), so a run that stopped since may "
            "have replaced them. revseg creates its tables with delta.logRetentionDuration "
            f"{KEPT_HISTORY_TEXT}; where it was set shorter, re-run those periods"
        )
    frames = [
        _read_at(spark, path, version).where(F.col("period").isin(sorted(periods)))
        for version, periods in sorted(at_version.items())
    ]
    return functools.reduce(DataFrame.unionByName, frames[1:], frames[0])


def latest_complete_tables(spark: SparkSession, outputs: Outputs) -> dict[str, DataFrame]:
    """customer_segments, tier_boundaries and the quarantine table (where a run wrote it)
    by `latest_complete`, all three from one version of the run log: a run that logs
    meanwhile cannot show in one table and not in another."""
    log_version = latest_version(spark, outputs.table(contract.RUNS))
    tables = {t: latest_complete(spark, outputs, t, log_version) for t in PERIOD_TABLES}
    with contextlib.suppress(TableError):  # else no successful run quarantined a row
        tables[contract.QUARANTINED_TRANSACTIONS] = latest_complete(
            spark, outputs, contract.QUARANTINED_TRANSACTIONS, log_version
        )
    return tables


def _period_runs(succeeded: DataFrame, table: str) -> dict[str, tuple[str, int]]:
    """Per period: the successful run with the latest customer_segments commit for it, and
    the version of `table` that run committed."""
    best: dict[str, tuple[int, str, int]] = {}
    for row in succeeded.select(
        "run_id",
        F.explode("periods_written").alias("period"),
        F.col("table_versions")[contract.CUSTOMER_SEGMENTS].alias("segments"),
        F.col("table_versions")[table].alias("v"),
    ).collect():
        if row["segments"] is None or row["v"] is None:
            continue
        if row["period"] not in best or int(row["segments"]) > best[row["period"]][0]:
            best[row["period"]] = (int(row["segments"]), row["run_id"], int(row["v"]))
    return {period: (run_id, v) for period, (_, run_id, v) in best.items()}


def _read_at(spark: SparkSession, table: TableRef, version: int) -> DataFrame:
    return table.read(spark, version)


def now_utc() -> datetime:
    """The clock, read at the edge for the log's started/finished times only."""
    from datetime import timezone

    return datetime.now(timezone.utc)
