"""The run's row in the `runs` table: what was asked, read, counted and written, and the
table versions a reader of its results should read. Appended last, after every commit."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession

from revseg import __version__
from revseg.checks import written_revenue
from revseg.io import paths
from revseg.io.changes import InputState
from revseg.io.outputs import current_versions
from revseg.io.paths import redacting_logger
from revseg.io.runs import FAILED, append_run, now_utc
from revseg.io.table_ref import Outputs
from revseg.result import RunCounts, RunResult

logger = redacting_logger(__name__)


@dataclass(frozen=True)
class RunLog:
    """What goes into this run's row of the `runs` table, known when the run starts."""

    outputs: Outputs
    run_id: str
    key: str
    requested: str
    started: datetime
    config_hash: str
    source: str  # the source's path or table name
    source_format: str
    quarantine_excluded: bool
    source_is_table: bool = False  # `source` is a table name (source.table), not a path
    scope: str = "all"  # all, range or incremental
    state: InputState | None = None  # logged by runs of every period: incremental's baseline
    input_files: int = 0  # files read, the source's and the rates'

    def row(self, status: str, counts: RunCounts | None = None) -> dict[str, Any]:
        valid = counts.valid_revenue() if counts else {}
        return {
            "run_id": self.run_id,
            "status": status,
            "started_at": self.started,
            "finished_at": now_utc(),
            "revseg_version": __version__,
            "config_hash": self.config_hash,
            "work_key": self.key,
            "requested": self.requested,
            "source_read": json.dumps(
                {
                    **(
                        {"table": self.source}
                        if self.source_is_table
                        else {"path": paths.redact(self.source)}
                    ),
                    "format": self.source_format,
                    "files": self.input_files,
                    "scope": self.scope,
                    **({"state": self.state.to_json()} if self.state is not None else {}),
                    **(
                        {"data_months": [counts.first_month, counts.last_month]}
                        if counts is not None and counts.first_month is not None
                        else {}
                    ),
                }
            ),
            "input_rows": counts.input_rows if counts else None,
            "valid_rows": counts.valid_rows if counts else None,
            "quarantined_rows": counts.quarantined(self.quarantine_excluded) if counts else None,
            "duplicate_rows": counts.duplicates if counts else None,
            "valid_revenue": valid or None,
            "row_counts": counts.logged() if counts else None,
        }

    def write(
        self,
        spark: SparkSession,
        status: str,
        result: RunResult | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        """Log a succeeded or skipped run, with the table versions its results are at."""
        row = self.row(status, result.counts if result is not None else None)
        tables = dict(versions or {})
        if result is not None:
            tables.update(result.table_versions)
            row["periods_written"] = result.written_periods()
            row["written_revenue"] = written_revenue(result.periods, result.boundaries) or None
        row["table_versions"] = {**current_versions(spark, self.outputs, skip=tables), **tables}
        append_run(spark, self.outputs, row)

    def write_failure(
        self, spark: SparkSession, err: BaseException, counts: RunCounts | None = None
    ) -> None:
        """Log a failed run (best effort: the original error is what the user must see)."""
        row = self.row(FAILED, counts)
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        row["error"] = paths.redact(f"{type(err).__name__}: {first_line}")[:2000]
        try:
            append_run(spark, self.outputs, row)
        except Exception:
            logger.warning("could not log the failure of run %s", self.run_id, exc_info=True)
