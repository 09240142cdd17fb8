"""What changed in the inputs since an earlier run: the state an incremental run compares.

A run that covers every period (a full or an incremental run) logs the state of its inputs:
a fingerprint per date partition of the source (file names, sizes and modification times;
for a Delta source, the files of the snapshot read), a fingerprint per date of the FX rates,
and the as-of date. The next `--incremental` run compares its own state with it, day by day.
Fingerprints come from file listings and the Delta log, never from reading the data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple
from urllib.parse import unquote

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg.columns import quoted
from revseg.config import SourceConfig
from revseg.errors import SourceError
from revseg.io.delta_history import history, latest_version
from revseg.io.paths import qualify
from revseg.io.table_ref import TableRef

# A day partition whose value is not a date: its rows cannot be placed, so any change
# in it (or in the set of such partitions) makes the incremental run a full one.
UNDATED = "undated"
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")  # what a cast to date reads as a day


@dataclass(frozen=True)
class InputState:
    """The state of a run's inputs, as logged in `runs.source_read` under "state"."""

    days: Mapping[str, str]  # ISO day of a source date partition -> fingerprint of its files
    fx: Mapping[str, str] = field(default_factory=dict)  # ISO rate date -> its rates' hash
    as_of: str | None = None
    delta_version: int | None = None  # a Delta source: the version read

    def to_json(self) -> dict[str, Any]:
        return {
            "days": dict(sorted(self.days.items())),
            "fx": dict(sorted(self.fx.items())),
            "as_of": self.as_of,
            "delta_version": self.delta_version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputState:
        return cls(
            days=dict(data.get("days") or {}),
            fx=dict(data.get("fx") or {}),
            as_of=data.get("as_of"),
            delta_version=data.get("delta_version"),
        )


@dataclass(frozen=True)
class InputIdentity:
    """What a run reads, by content: a line per source file (`source_listing`), the Delta
    version read (None: not Delta) and the FX rates' fingerprint per date. Part of the work
    key; a run of every period logs the state made from it."""

    source_files: Mapping[str, str]  # path -> line
    source_version: int | None
    rates: Mapping[str, str]  # ISO rate date -> hash of that day's rates

    def lines(self) -> list[str]:
        return [
            *sorted(self.source_files.values()),
            f"delta version {self.source_version}",
            *(f"fx {day} {value}" for day, value in sorted(self.rates.items())),
        ]


def source_listing(
    spark: SparkSession, source: SourceConfig, files: Sequence[str]
) -> dict[str, str]:
    """A line per file a run reads (`files`: the source frame's), saying what the file
    holds: for a Delta source its name (Delta never rewrites a file in place, and the
    version read says the rest, deletion vectors included); for files, the name, length
    and modification time, so that a file rewritten under the same name counts as changed."""
    if source.format == "delta" or not files:
        return {path: path.rsplit("/", 1)[-1] for path in files}
    try:
        # Spark's binaryFile source reads no content when only the path, length and
        # modification time are selected: a listing of exactly these files.
        reader = spark.read.format("binaryFile")
        if source.path is not None:
            reader = reader.option("basePath", qualify(source.path))
        listing = (
            reader.load(list(files))
            .select("path", "length", F.col("modificationTime").cast("string"))
            .collect()
        )
    except AnalysisException as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SourceError(f"cannot list the source {source.location!r}: {first_line}") from None
    return {row[0]: "|".join(str(v) for v in row) for row in listing}


def source_day_fingerprints(
    source: SourceConfig, listing: Mapping[str, str]
) -> dict[str, str] | None:
    """Per date partition of the source, a hash of its files' lines (`source_listing`); None
    without a date partition column (then changes cannot be placed in time)."""
    column = source.date_partition
    if column is None:
        return None
    pattern = re.compile(rf"/{re.escape(column)}=([^/]*)/")
    days = {path: pattern.search(path) for path in listing}
    if not listing or any(found is None for found in days.values()):
        return None  # not partitioned by that column
    return _fingerprints(
        (unquote(found.group(1)), listing[path]) for path, found in days.items() if found
    )


def _fingerprints(files: Iterable[tuple[str | None, str]]) -> dict[str, str]:
    """(day, file line) pairs -> day -> a hash of its sorted lines (partition values that
    are not dates share UNDATED)."""
    lines: dict[str, list[str]] = {}
    for day, line in files:
        lines.setdefault(_day_text(day), []).append(line)
    return {
        day: hashlib.sha256("\n".join(sorted(found)).encode()).hexdigest()[:20]
        for day, found in lines.items()
    }


def _day_text(value: str | None) -> str:
    """An ISO day, or UNDATED for a partition value that is not one."""
    if value is None or not _ISO_DAY.match(value):
        return UNDATED
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return UNDATED


def source_table(source: SourceConfig) -> TableRef:
    """The source as a table: its catalog name or its path."""
    if source.table is not None:
        return TableRef.named(source.table, "source.table")
    return TableRef.at(source.path or "")


def delta_version(spark: SparkSession, source: SourceConfig) -> int | None:
    """The Delta source's current version (None: not Delta, or not readable: the source read
    that follows names the problem)."""
    if source.format != "delta":
        return None
    try:
        return latest_version(spark, source_table(source))
    except Exception:
        return None


def delta_deletion_vector_days(
    spark: SparkSession, source: SourceConfig, since: int, until: int
) -> set[str] | None:
    """Days whose files gained or lost a deletion vector in the commits (since, until]:
    such a change keeps the file names. None when that cannot be told: a commit file is
    gone (log cleanup), or a catalog table without Change Data Feed had such a commit."""
    column = source.date_partition
    if since >= until or column is None:
        return set()
    if source.path is None:
        return _named_deletion_vector_days(spark, source_table(source), column, since, until)
    log = qualify(source.path).rstrip("/") + "/_delta_log"  # readable by path: Connect too
    commits = [f"{log}/{version:020d}.json" for version in range(since + 1, until + 1)]
    try:
        lines = spark.read.text(commits)
        # a vector added (a DELETE or UPDATE) or one removed (e.g. a RESTORE) alike
        days = lines.select(
            *[
                F.when(
                    F.get_json_object("value", f"$.{action}.deletionVector").isNotNull(),
                    F.get_json_object("value", f"$.{action}.partitionValues.{column}"),
                ).alias(action)
                for action in ("add", "remove")
            ]
        )
        found = days.where(F.col("add").isNotNull() | F.col("remove").isNotNull()).collect()
        return {_day_text(row[a]) for row in found for a in ("add", "remove") if row[a]}
    except AnalysisException:
        return None


def fx_date_fingerprints(rates: DataFrame) -> dict[str, str]:
    """Per rate date, a hash of that day's (currency, rate) rows."""
    line = F.concat_ws("|", "currency", F.col("rate").cast("string"))
    per_day = rates.groupBy(F.col("rate_date").cast("string").alias("day")).agg(
        F.sha2(F.concat_ws("\n", F.array_sort(F.collect_list(line))), 256).alias("hash")
    )
    return {row["day"]: row["hash"][:20] for row in per_day.collect()}


# --- comparing two states (pure) ---------------------------------------------------------


class EveryPeriod(NamedTuple):
    """Why a change cannot be placed in time, so that every period must be recomputed."""

    reason: str


def changed_keys(before: Mapping[str, str], now: Mapping[str, str]) -> set[str]:
    """Keys added, removed or whose fingerprint differs."""
    return {key for key in set(before) | set(now) if before.get(key) != now.get(key)}


def first_day(days: Iterable[str]) -> date | None:
    """The earliest dated source partition day of a state's `days`."""
    dated = [date.fromisoformat(day) for day in days if day != UNDATED]
    return min(dated) if dated else None


def retired_days(before: Mapping[str, str], now: Mapping[str, str]) -> set[str]:
    """Source partition days removed since, all earlier than every day left (retention):
    not a change to recompute, since the periods they fed would only lose rows."""
    first = first_day(now)
    if first is None:
        return set()
    return {
        day for day in set(before) - set(now) if day != UNDATED and date.fromisoformat(day) < first
    }


def changed_days(before: Mapping[str, str], now: Mapping[str, str]) -> set[str]:
    """Source partition days added, removed or changed, less the retired ones."""
    return changed_keys(before, now) - retired_days(before, now)


def affected_days(
    before: InputState,
    now: InputState,
    fx_max_staleness_days: int,
    reach_days: int,
    extra_source_days: Iterable[str] = (),
) -> set[date] | EveryPeriod:
    """The days (in periods.timezone) whose periods must be recomputed, or the reason why
    every period must be.

    A changed source partition day d holds rows of d - 1 to d + 1 in periods.timezone (the
    lake's day need not be the business's). A changed rate on day d converts rows of d to
    d + staleness. A moved as-of date changes which rows around both dates count. With
    refunds booked to their sale, a change on day x can move a refund to or from the day of
    its sale, up to `reach_days` before x, and a changed sale on x moves its refunds from up
    to that many days after; a copy of a transaction on x can likewise take the count from
    a copy up to that many days away (the earliest copy counts): each day widens both ways.
    """
    retired = retired_days(before.days, now.days)  # their rows are gone, not changed
    changed = changed_days(before.days, now.days) | (set(extra_source_days) - retired)
    if UNDATED in changed:
        return EveryPeriod("a source partition whose value is not a date changed")
    present = {
        date.fromisoformat(day)
        for day in (set(before.days) | set(now.days)) - retired
        if day != UNDATED
    }
    days: set[date] = set()
    for text in changed:
        day = date.fromisoformat(text)
        days |= _span(day - timedelta(days=1), day + timedelta(days=1))
    for text in changed_keys(before.fx, now.fx):
        day = date.fromisoformat(text)
        days |= _span(day, day + timedelta(days=fx_max_staleness_days)) & _near(present)
    if before.as_of != now.as_of:
        ends = [date.fromisoformat(d) for d in (before.as_of, now.as_of) if d is not None]
        if len(ends) == 1 or not ends:
            return EveryPeriod("the as-of limit was set or cleared")
        low, high = min(ends), max(ends)
        days |= _span(low - timedelta(days=1), high + timedelta(days=1)) & _near(present)
    if reach_days and days:
        reach = timedelta(days=reach_days)
        days = {d for day in days for d in _span(day - reach, day + reach)} & _near(present)
    first = first_day(now.days) if retired else None
    return days if first is None else {d for d in days if d >= first - timedelta(days=1)}


def _span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def _near(partition_days: set[date]) -> set[date]:
    """Days in periods.timezone that rows of these partition days can fall on."""
    return {d + timedelta(days=shift) for d in partition_days for shift in (-1, 0, 1)}


_VECTOR_METRICS = (
    "numDeletionVectorsAdded",
    "numDeletionVectorsRemoved",
    "numDeletionVectorsUpdated",
)


def _named_deletion_vector_days(
    spark: SparkSession, table: TableRef, column: str, since: int, until: int
) -> set[str] | None:
    """`delta_deletion_vector_days` for a catalog table, whose log files are not readable by
    path (Unity Catalog): its history tells which commits added or removed deletion
    vectors, and its Change Data Feed (where the table has it on) the days they changed."""
    rows = [
        r for r in history(spark, table, until - since + 8) if since < int(r["version"]) <= until
    ]
    if len(rows) < until - since:
        return None  # log clean-up removed some
    touching = [
        int(r["version"])
        for r in rows
        if r["operation"] == "RESTORE"
        or any(int((r["operationMetrics"] or {}).get(k) or 0) for k in _VECTOR_METRICS)
    ]
    if not touching:
        return set()
    if any(r["operation"] == "RESTORE" for r in rows):
        return None  # a restore writes no change data
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", min(touching))
            .option("endingVersion", max(touching))
            .table(table.sql)
            .where(F.col("_change_type") != "insert")
            .select(quoted(column).cast("string"))
            .distinct()
            .collect()
        )
    except AnalysisException:  # no Change Data Feed on the table for these versions
        return None
    return {_day_text(row[0]) for row in changes}
