"""A Delta table's history, as revseg reads it: versions, commits and who made them.

`DESCRIBE HISTORY` works the same in a classic session and through Spark Connect. revseg
marks its commits with the run id (`userMetadata`) and replaces periods with its own
`period IN (...)` predicate, so the history says which run wrote which periods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import Row, SparkSession

from revseg.errors import TableError
from revseg.io.table_ref import TableRef

PERIOD_VALUE = re.compile(r"^[A-Za-z0-9-]+$")


def history(spark: SparkSession, table: TableRef, limit: int) -> list[Row]:
    """The table's latest `limit` commits, newest first (`DESCRIBE HISTORY`)."""
    return spark.sql(f"DESCRIBE HISTORY {table.sql} LIMIT {int(limit)}").collect()


def latest_version(spark: SparkSession, table: TableRef) -> int:
    """The table's current version."""
    return int(history(spark, table, 1)[0]["version"])


def committed_version(spark: SparkSession, table: TableRef, run_id: str) -> int:
    """The version this run committed (found by its run id, not "the latest": another run
    may have committed since)."""
    rows = [row for row in history(spark, table, 100) if row["userMetadata"] == run_id]
    if not rows:
        raise TableError(f"the commit of run {run_id} is not in the history of {table}")
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
    spark: SparkSession, table: TableRef, version: int, writer: str | None = None
) -> list[Commit]:
    """The table's commits after `version`, oldest first; with `writer`, back to that
    writer's latest commit too where it lies before (one history read for a run's own
    commit and the others'). Where the log no longer reaches back that far (log clean-up),
    an unknown commit (`Commit.unknown`) stands first for those removed, at the newest
    version removed."""
    limit = 16
    while True:
        rows = history(spark, table, limit)
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
    if not all(len(p) > 2 and p[0] == p[-1] == "'" and PERIOD_VALUE.match(p[1:-1]) for p in labels):
        return None
    return frozenset(p[1:-1] for p in labels)
