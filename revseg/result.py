"""What a run found and did, as frozen values: its counts and its result (no Spark here).

The first pass counts rows with `DataFrame.observe` while Spark computes the customer x
period rows; the names of those observed aggregates are defined here, beside the one type
that reads them (`RunCounts`), so that no other module keys a dict by them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from revseg.io.table_ref import Outputs
from revseg.reasons import EXCLUDED_TYPE, ROW_REASONS

SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"

# Names of the observed aggregates of the first pass (see `revseg.customer_periods`).
INPUT_ROWS = "input_rows"
VALID_ROWS = "valid_rows"
DUPLICATE_ROWS = "duplicate"
OUTSIDE_KEPT = "outside_kept"  # kept copies outside the months read, after it
CONVERTED_ROWS = "converted_rows"
REFUND_ROWS = "refund_rows"
REFUND_CENTS = "refund_cents"
UNATTRIBUTED_REFUNDS = "unattributed_refunds"
FIRST_MONTH = "first_month_idx"
LAST_MONTH = "last_month_idx"
DUPLICATE_KEYS = "duplicate_keys"  # hashes naming the duplicated transactions
_REVENUE_PREFIX = "revenue_cents_"


def revenue_name(grain: str) -> str:
    """The observed valid revenue (cents) of the months a calendar grain writes."""
    return f"{_REVENUE_PREFIX}{grain}"


@dataclass(frozen=True)
class RunCounts:
    """Every row and cent of a run's input, accounted for: read, counted, rejected (by
    reason), duplicated, outside the months read; revenue per calendar grain in cents."""

    input_rows: int = 0
    valid_rows: int = 0
    duplicates: int = 0
    outside_range: int = 0
    converted_rows: int = 0
    refund_rows: int = 0
    refund_cents: int = 0
    unattributed_refunds: int | None = None  # counted only with refunds booked to their sale
    first_month: int | None = None  # month index of the first and last valid row
    last_month: int | None = None
    by_reason: Mapping[str, int] = field(default_factory=dict)
    revenue_cents: Mapping[str, int] = field(default_factory=dict)  # per calendar grain

    @classmethod
    def from_observed(cls, values: Mapping[str, Any]) -> RunCounts:
        """From the observed aggregates of the first pass, merged into one mapping."""

        def count(name: str) -> int:
            return int(values.get(name) or 0)

        def optional(name: str) -> int | None:
            return None if values.get(name) is None else int(values[name])

        return cls(
            input_rows=count(INPUT_ROWS),
            valid_rows=count(VALID_ROWS),
            duplicates=count(DUPLICATE_ROWS),
            # valid rows read (with their copies) whose kept copy is outside the months
            outside_range=count(OUTSIDE_KEPT),
            converted_rows=count(CONVERTED_ROWS),
            refund_rows=count(REFUND_ROWS),
            refund_cents=count(REFUND_CENTS),
            unattributed_refunds=(
                count(UNATTRIBUTED_REFUNDS) if UNATTRIBUTED_REFUNDS in values else None
            ),
            first_month=optional(FIRST_MONTH),
            last_month=optional(LAST_MONTH),
            by_reason={reason: count(reason) for reason in ROW_REASONS},
            revenue_cents={
                name.removeprefix(_REVENUE_PREFIX): count(name)
                for name in values
                if name.startswith(_REVENUE_PREFIX)
            },
        )

    def rejected(self, reason: str) -> int:
        return self.by_reason.get(reason, 0)

    def quarantined(self, quarantine_excluded: bool) -> int:
        """Rows the run puts in quarantine: rejected rows (excluded types only with
        quality.quarantine_excluded) and the extra copies of duplicates."""
        reasons = [r for r in ROW_REASONS if r != EXCLUDED_TYPE or quarantine_excluded]
        return sum(self.rejected(r) for r in reasons) + self.duplicates

    def valid_revenue(self) -> dict[str, Decimal]:
        """Valid revenue per calendar grain, in the reporting currency."""
        return {grain: Decimal(cents) / 100 for grain, cents in self.revenue_cents.items()}

    def logged(self) -> dict[str, int]:
        """The row counts the run log keeps (`runs.row_counts`)."""
        logged = {
            INPUT_ROWS: self.input_rows,
            VALID_ROWS: self.valid_rows,
            DUPLICATE_ROWS: self.duplicates,
            "outside_range": self.outside_range,
            REFUND_ROWS: self.refund_rows,
            CONVERTED_ROWS: self.converted_rows,
        }
        if self.unattributed_refunds is not None:
            logged[UNATTRIBUTED_REFUNDS] = self.unattributed_refunds
        return {**logged, **{r: self.rejected(r) for r in ROW_REASONS}}


Boundary = Mapping[str, Any]  # a tier_boundaries row, as collected to the driver


@dataclass(frozen=True)
class RunResult:
    """What a run did: for the summary, the run log, the tests and notebook users."""

    run_id: str
    outputs: Outputs
    periods: Mapping[str, tuple[str, ...]]
    boundaries: tuple[Boundary, ...]
    counts: RunCounts | None
    table_versions: Mapping[str, int] = field(default_factory=dict)
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    skipped_windows: tuple[str, ...] = ()
    status: str = SUCCEEDED
    same_as: str | None = None  # a skipped run: the earlier run whose results stand
    note: str | None = None  # an incremental run: what it found changed, and since when
    # RFM measures whose ties left fewer than five scores in use, per period written
    rfm_ties: tuple[Mapping[str, Any], ...] = ()
    # stable tiers: per period written, the customers whose tier change the rules held back
    held_back: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def skipped(
        cls,
        run_id: str,
        outputs: Outputs,
        versions: Mapping[str, int],
        same_as: str,
        note: str | None = None,
    ) -> RunResult:
        """A run that wrote nothing, because the results of run `same_as` stand."""
        return cls(
            run_id=run_id,
            outputs=outputs,
            periods={},
            boundaries=(),
            counts=None,
            table_versions=versions,
            status=SKIPPED,
            same_as=same_as,
            note=note,
        )

    def table_name(self, name: str) -> str:
        """The output table `name` (customer_segments, ...): its path or catalog name."""
        return str(self.outputs.table(name))

    def table_path(self, name: str) -> str:
        """The path of output table `name` (outputs under output.path only)."""
        path = self.outputs.table(name).path
        if path is None:
            raise ValueError(f"{name} is the catalog table {self.table_name(name)}, not a path")
        return path

    def written_periods(self) -> list[str]:
        return [p for labels in self.periods.values() for p in labels]


@dataclass(frozen=True)
class Migrations:
    """What a run writes to tier_migrations: its rows, the periods it replaces, the
    customers and revenue (cents) of every period the pairs name, to check them by, and
    the customer_segments version its stored periods were read at."""

    rows: tuple[dict[str, Any], ...]
    periods: tuple[str, ...]
    totals: Mapping[tuple[str, str], tuple[int, int]]
    source_version: int
