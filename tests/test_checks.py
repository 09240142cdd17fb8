"""The driver-side rules of a run, in plain Python: no Spark session here."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import pytest

from revseg.checks import (
    check_fx_coverage,
    check_quarantine_fraction,
    empty_periods,
    incomplete_windows,
    periods_to_write,
    reconcile,
    without_windows,
    written_revenue,
)
from revseg.errors import RunError
from revseg.periods import Month, make_grains
from revseg.result import RunCounts


def boundary(grain: str, period: str, customers: int, revenue: str) -> dict[str, Any]:
    return {
        "period_grain": grain,
        "period": period,
        "segment": "gold",
        "customers": customers,
        "revenue": Decimal(revenue),
    }


BOUNDARIES = [
    boundary("month", "2024-01", 3, "100.10"),
    boundary("month", "2024-01", 1, "0.05"),
    boundary("month", "2024-02", 0, "0.00"),  # a tier nobody reached
    boundary("month", "2024-03", 2, "-5.00"),
    boundary("quarter", "2024-Q1", 4, "95.15"),
]


def counts(**kwargs: Any) -> RunCounts:
    return RunCounts(**kwargs)


def test_counts_from_observed_values() -> None:
    observed = {
        "input_rows": 10,
        "valid_rows": 6,
        "duplicate": 1,
        "outside_kept": 2,
        "converted_rows": 3,
        "missing_fx_rate": 2,
        "refund_rows": None,  # an aggregate over no rows
        "first_month_idx": 24288,
        "last_month_idx": None,
        "revenue_cents_month": 10015,
        "revenue_cents_quarter": 9515,
    }
    got = RunCounts.from_observed(observed)
    assert (got.input_rows, got.valid_rows, got.duplicates) == (10, 6, 1)
    assert got.outside_range == 2  # rows (with their copies) kept outside the months
    assert got.refund_rows == 0 and got.unattributed_refunds is None
    assert (got.first_month, got.last_month) == (24288, None)
    assert got.rejected("missing_fx_rate") == 2 and got.rejected("malformed") == 0
    assert got.revenue_cents == {"month": 10015, "quarter": 9515}
    assert got.valid_revenue() == {"month": Decimal("100.15"), "quarter": Decimal("95.15")}
    assert "unattributed_refunds" not in got.logged()
    with_refunds = RunCounts.from_observed({**observed, "unattributed_refunds": 4})
    assert with_refunds.logged()["unattributed_refunds"] == 4


def test_quarantined_rows_count_excluded_types_only_when_asked() -> None:
    found = counts(duplicates=2, by_reason={"excluded_type": 3, "missing_amount": 1})
    assert found.quarantined(quarantine_excluded=False) == 3
    assert found.quarantined(quarantine_excluded=True) == 6


def test_quarantine_fraction_limit() -> None:
    found = counts(input_rows=100, duplicates=2, by_reason={"missing_amount": 3})
    check_quarantine_fraction(found, 0.05, False)  # 5 of 100: at the limit
    with pytest.raises(RunError, match=r"5 of 100 rows \(5.0%\) .*missing_amount 3, duplicate 2"):
        check_quarantine_fraction(found, 0.04, False)
    check_quarantine_fraction(counts(), 0.0, False)  # nothing read: nothing to refuse


def test_fx_coverage_names_both_kinds() -> None:
    check_fx_coverage(counts(by_reason={"missing_amount": 4}), "USD")
    found = counts(by_reason={"missing_fx_rate": 1, "stale_fx_rate": 2})
    with pytest.raises(RunError, match=r"3 transaction\(s\) .* to EUR .*missing_fx_rate: 1, stale"):
        check_fx_coverage(found, "EUR")


def test_periods_to_write_every_period_found_or_the_plan() -> None:
    found = periods_to_write(None, BOUNDARIES, ("month", "quarter"))
    assert found == {"month": ("2024-01", "2024-03"), "quarter": ("2024-Q1",)}
    with pytest.raises(RunError, match="holds no valid transactions"):
        periods_to_write(None, [], ("month",))
    planned = {"month": ("2024-01", "2024-02"), "quarter": ()}
    with pytest.raises(RunError, match=r"period\(s\) 2024-02: nothing was written"):
        periods_to_write(planned, BOUNDARIES, ("month", "quarter"))
    grains = ("month", "quarter")
    assert periods_to_write(planned, BOUNDARIES, grains, allow_empty=True) == planned
    kept = periods_to_write(planned, BOUNDARIES, grains, unstored={"2024-02"})
    assert kept == {"month": ("2024-01",), "quarter": ()}
    assert empty_periods(planned, BOUNDARIES) == {"2024-02"}


def test_incomplete_windows_and_what_is_left() -> None:
    grains = make_grains(("month", "rolling_3m"))
    windows = [g for g in grains if g.rolling]
    first, last = Month.parse("2024-01").index, Month.parse("2024-04").index
    skipped = incomplete_windows(windows, first, last)  # type: ignore[arg-type]
    assert skipped == {"L3M-2024-01", "L3M-2024-02", "L3M-2024-05", "L3M-2024-06"}
    periods = {"month": ("2024-01",), "rolling_3m": ("L3M-2024-02", "L3M-2024-03")}
    assert without_windows(periods, skipped) == {
        "month": ("2024-01",),
        "rolling_3m": ("L3M-2024-03",),
    }
    with pytest.raises(RunError, match="every requested rolling window lacks history"):
        without_windows({"rolling_3m": ("L3M-2024-02",)}, skipped)
    # With a calendar period held as stored (a retention left it partial) the run had
    # something to do: incomplete windows left over are no reason to refuse it.
    left = without_windows({"rolling_3m": ("L3M-2024-02",)}, skipped, held={"2024-02"})
    assert left == {"rolling_3m": ()}


def test_reconcile_to_the_cent_for_calendar_grains() -> None:
    periods = {"month": ("2024-01", "2024-03"), "quarter": ("2024-Q1",), "rolling_3m": ("x",)}
    exact = counts(revenue_cents={"month": 9515, "quarter": 9515})
    reconcile(exact, BOUNDARIES, periods, {"month", "quarter"})
    off = counts(revenue_cents={"month": 9516, "quarter": 9515})
    with pytest.raises(RunError, match=r"month periods: valid transactions add up to 95\.16, the"):
        reconcile(off, BOUNDARIES, periods, {"month", "quarter"})
    assert written_revenue({"month": ("2024-01",)}, BOUNDARIES) == {"month": Decimal("100.15")}


def test_checks_need_no_spark() -> None:
    import subprocess

    code = "import sys, revseg.checks, revseg.result; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_data_span_of_an_incremental_run_reaches_past_an_empty_edge_month() -> None:
    from revseg.checks import data_span
    from revseg.periods import Month

    march, july = Month.parse("2024-03"), Month.parse("2024-07")
    january, june = Month.parse("2024-01").index, Month.parse("2024-06").index
    april = Month.parse("2024-04").index
    read = [(march, july)]
    # March (read) is empty: the data still starts in January, which was not read.
    assert data_span((april, june), read, (january, june)) == (january, june)
    # The baseline's last month was read and is gone now: the read's last month holds.
    assert data_span((april, april), read, (january, june)) == (january, april)
    # Without a baseline, or with every month read, the read is all there is.
    assert data_span((april, june), read, None) == (april, june)
    assert data_span((april, june), None, (january, june)) == (april, june)
    # Nothing valid in the read: the baseline's months.
    assert data_span((None, None), read, (january, june)) == (january, june)


def test_committed_tables_must_hold_what_was_computed() -> None:
    from revseg.checks import boundary_totals, check_committed

    boundaries = [
        {"period_grain": "month", "period": "2024-01", "customers": 2, "revenue": Decimal("10.50")},
        {"period_grain": "month", "period": "2024-01", "customers": 1, "revenue": Decimal("0")},
        {"period_grain": "month", "period": "2024-02", "customers": 1, "revenue": Decimal("3")},
    ]
    computed = boundary_totals(boundaries, {"month": ("2024-01",)})
    assert computed == {("month", "2024-01"): (3, 1050)}
    versions = {"customer_segments": 4}
    check_committed(computed, {"customer_segments": {("month", "2024-01"): (3, 1050)}}, versions)
    for found in ({("month", "2024-01"): (4, 1050)}, {("month", "2024-01"): (3, 1049)}, {}):
        with pytest.raises(RunError, match=r"customer_segments \(version 4\) holds"):
            check_committed(computed, {"customer_segments": found}, versions)
