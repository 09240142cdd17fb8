"""The printed summary and run list, from hand-built results: no Spark session here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from revseg.io.table_ref import Outputs
from revseg.result import RunCounts, RunResult
from revseg.summary import format_runs, format_summary

LEVELS = ("gold", "silver")


def row(period: str, segment: str, customers: int, revenue: str, grain: str = "month") -> Any:
    return {
        "period_grain": grain,
        "period": period,
        "segment": segment,
        "customers": customers,
        "revenue": Decimal(revenue),
    }


def result(**kwargs: Any) -> RunResult:
    fields: dict[str, Any] = {
        "run_id": "r000002-abcdef0123",
        "outputs": Outputs(path="/data/out"),
        "periods": {"month": ("2024-01", "2024-02", "2024-03", "2024-04")},
        "boundaries": (
            row("2024-04", "gold", 1, "75.00"),
            row("2024-04", "silver", 3, "25.00"),
            row("2024-04", "no_revenue", 1, "-0.01"),
            row("2024-03", "gold", 2, "10.00"),
        ),
        "counts": RunCounts(
            input_rows=1234,
            valid_rows=1200,
            duplicates=4,
            outside_range=10,
            refund_rows=2,
            refund_cents=1050,
            unattributed_refunds=1,
            converted_rows=7,
            by_reason={"missing_amount": 20, "malformed": 0},
        ),
        "table_versions": {"customer_segments": 3, "tier_boundaries": 3},
        "stage_seconds": {"read": 0.1, "write": 2.25},
    }
    return RunResult(**{**fields, **kwargs})


def test_summary_of_a_run() -> None:
    text = format_summary(result(), LEVELS, "EUR")
    lines = text.splitlines()
    assert lines[0] == "revseg run r000002-abcdef0123 succeeded"
    assert "month: 4 period(s) written (2024-01 .. 2024-04)" in lines
    april = next(line for line in lines if line.strip().startswith("2024-04"))
    # customers and share of the period's revenue per tier, then the period's revenue
    # (a sliver of negative revenue shows as 0.0%, not -0.0%)
    assert april.split() == ["2024-04", "1", "(75.0%)", "3", "(25.0%)", "1", "(0.0%)", "99.99"]
    assert "  ... 1 earlier period(s) not shown" in lines
    assert (
        "rows read 1,234; counted 1,200; duplicates dropped 4; outside the months 10; "
        "not counted: missing_amount 20" in lines
    )
    assert (
        "refunds netted 2 (10.50); booked to their sale's period 1, sale not found "
        "(own period) 1; rows converted to EUR 7" in lines
    )
    assert "  /data/out/customer_segments  (Delta version 3)" in lines
    assert "quarantined_transactions" not in text  # not written by this run
    assert lines[-1] == "stages: read 0.1s, write 2.2s"


def test_summary_of_skipped_runs() -> None:
    same = result(status="skipped", same_as="r000001-abcdef0123", counts=None)
    assert format_summary(same, LEVELS, "USD").startswith(
        "revseg run r000002-abcdef0123 skipped: the same config and input as run "
        "r000001-abcdef0123, and its tables are unchanged since; nothing was written."
    )
    unchanged = result(status="skipped", note="no input changed since run r1", counts=None)
    text = format_summary(unchanged, LEVELS, "USD")
    assert text.splitlines() == [
        "revseg run r000002-abcdef0123 skipped: no input changed since run r1; nothing was "
        "written.",
        "tables: /data/out (versions customer_segments 3, tier_boundaries 3)",
    ]


def test_summary_of_an_incremental_run_lists_its_periods() -> None:
    text = format_summary(
        result(note="source day(s) 2024-03-02 changed since run r1"), LEVELS, "USD"
    )
    assert "incremental: source day(s) 2024-03-02 changed since run r1" in text
    assert "month: 4 period(s) written (2024-01, 2024-02, 2024-03, 2024-04)" in text


def test_summary_with_nothing_counted() -> None:
    text = format_summary(result(periods={}, boundaries=(), counts=None), LEVELS, "USD")
    assert "rows read 0; counted 0; duplicates dropped 0; outside the months 0" in text


def test_run_list_newest_first() -> None:
    start = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    runs = [
        {
            "run_id": "r000002-abcdef0123",
            "status": "failed",
            "started_at": start,
            "finished_at": start + timedelta(seconds=42),
            "input_rows": None,
            "valid_rows": None,
            "quarantined_rows": None,
            "periods_written": None,
            "error": "RunError: too many bad rows",
            "requested": "every period present in the source",
        },
        {
            "run_id": "r000001-abcdef0123",
            "status": "succeeded",
            "started_at": start - timedelta(days=1),
            "finished_at": start - timedelta(days=1) + timedelta(seconds=7),
            "input_rows": 1234567,
            "valid_rows": 1234000,
            "quarantined_rows": 567,
            "periods_written": ["2024-01", "2024-Q1"],
            "error": None,
            "requested": "every period present in the source",
        },
    ]
    lines = format_runs(runs).splitlines()
    assert lines[0].split()[:3] == ["run_id", "status", "started"]
    failed = ["r000002-abcdef0123", "failed", "2024-05-01", "08:00:00", "42", "-", "-", "-", "0"]
    assert lines[1].split()[:9] == failed
    assert lines[1].endswith("RunError: too many bad rows")
    assert lines[2].split()[4:9] == ["7", "1,234,567", "1,234,000", "567", "2"]
    assert format_runs([]) == "no runs logged yet"


def test_summary_redacts_credentials_in_the_output_path() -> None:
    path = "abfss://c@acct.dfs.core.windows.net/out?sv=2024&sig=S3CRET"
    for status in ("succeeded", "skipped"):
        extra: dict[str, Any] = {"status": status, "same_as": "r000001-0"}
        text = format_summary(result(outputs=Outputs(path=path), **extra), LEVELS, "EUR")
        assert "S3CRET" not in text, text
        assert "abfss://c@acct.dfs.core.windows.net/out?sv=2024&sig=***" in text


def test_summary_says_where_rfm_ties_left_scores_unused() -> None:
    ties = tuple(
        {"period_grain": "month", "period": f"2024-0{m}", "measure": "frequency", "scores": [2, 5]}
        for m in range(1, 7)
    )
    text = format_summary(result(rfm_ties=ties), LEVELS, "EUR")
    line = next(line for line in text.splitlines() if line.startswith("rfm:"))
    assert "fewer than five scores in use in 6 period measure(s)" in line
    assert "2024-01 frequency (2, 5); 2024-02 frequency (2, 5)" in line
    assert line.endswith("and 2 more (revseg run --summary json lists them)")
    assert not any(
        line.startswith("rfm:") for line in format_summary(result(), LEVELS, "EUR").splitlines()
    )
