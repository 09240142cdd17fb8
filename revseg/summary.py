"""The one-screen summary printed at the end of a run (plain text, no Spark)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from revseg.config import NO_REVENUE_SEGMENT
from revseg.contract import (
    CUSTOMER_SEGMENTS,
    QUARANTINED_TRANSACTIONS,
    RUNS,
    SUMMARY_TABLES,
    TIER_BOUNDARIES,
)
from revseg.io.paths import redact
from revseg.reasons import ROW_REASONS
from revseg.result import SKIPPED, RunCounts, RunResult

if TYPE_CHECKING:
    from revseg.clv_pipeline import ClvResult

PERIODS_SHOWN = 3


def format_summary(
    result: RunResult,
    levels: Sequence[str],
    reporting_currency: str,
    periods_shown: int = PERIODS_SHOWN,
) -> str:
    """Periods written, customers and revenue share per tier (`levels`: the tier names,
    highest first), the counts, and where the tables are (with any credential in the
    output path redacted)."""
    return redact(_summary(result, levels, reporting_currency, periods_shown))


def summary_json(result: RunResult) -> str:
    """The run's summary for an orchestrator (`revseg run --summary json`): status, periods
    written, table versions and names, counts; money as decimal text, to the cent."""
    counts = result.counts
    document = {
        "run_id": result.run_id,
        "status": result.status,
        "same_as": result.same_as,
        "note": result.note,
        "periods": {grain: list(labels) for grain, labels in result.periods.items()},
        "skipped_windows": list(result.skipped_windows),
        "tables": {
            name: result.table_name(name)
            for name in (
                CUSTOMER_SEGMENTS,
                TIER_BOUNDARIES,
                *[t for t in SUMMARY_TABLES if t in result.table_versions],
                QUARANTINED_TRANSACTIONS,
                RUNS,
            )
        },
        "table_versions": dict(result.table_versions),
        "row_counts": counts.logged() if counts is not None else None,
        "valid_revenue": (
            {grain: str(amount) for grain, amount in counts.valid_revenue().items()}
            if counts is not None
            else None
        ),
        "stage_seconds": dict(result.stage_seconds),
        "rfm_ties": [dict(tie) for tie in result.rfm_ties],
        "held_back": [dict(row) for row in result.held_back],
    }
    return redact(json.dumps(document, indent=2))


def _summary(
    result: RunResult, levels: Sequence[str], reporting_currency: str, periods_shown: int
) -> str:
    if result.status == SKIPPED and result.note is not None:
        return (
            f"revseg run {result.run_id} skipped: {result.note}; nothing was written.\n"
            f"tables: {result.outputs} (versions "
            + ", ".join(f"{t} {v}" for t, v in sorted(result.table_versions.items()))
            + ")"
        )
    if result.status == SKIPPED:
        return (
            f"revseg run {result.run_id} skipped: the same config and input as run "
            f"{result.same_as}, and its tables are unchanged since; nothing was written.\n"
            f"tables: {result.outputs} (versions "
            + ", ".join(f"{t} {v}" for t, v in sorted(result.table_versions.items()))
            + ")"
        )
    segments = [*levels, NO_REVENUE_SEGMENT]
    lines = [f"revseg run {result.run_id} succeeded", ""]
    if result.note is not None:
        lines[1:1] = [f"incremental: {result.note}"]
    by_period: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in result.boundaries:  # summed over tiers.by groups, if any
        cell = by_period[(row["period_grain"], row["period"])].setdefault(
            row["segment"], {"customers": 0, "revenue": Decimal(0)}
        )
        cell["customers"] += row["customers"]
        cell["revenue"] += row["revenue"]
    for period_cells in by_period.values():
        period_total = sum((c["revenue"] for c in period_cells.values()), Decimal(0))
        for cell in period_cells.values():
            share = cell["revenue"] / period_total if period_total else None
            cell["revenue_share"] = None if share is None else float(share)

    for grain, periods in result.periods.items():
        if not periods:
            continue
        span = periods[0] if len(periods) == 1 else f"{periods[0]} .. {periods[-1]}"
        if result.note is not None and len(periods) <= 6:  # incremental: need not be a range
            span = ", ".join(periods)
        lines.append(f"{grain}: {len(periods)} period(s) written ({span})")
        header = f"  {'period':<10}" + "".join(f"{s:>20}" for s in segments) + f"{'revenue':>16}"
        lines.append(header)
        for period in periods[-periods_shown:]:
            rows = by_period[(grain, period)]
            total = sum((r["revenue"] for r in rows.values()), Decimal(0))
            cells = "".join(f"{_cell(rows.get(s)):>20}" for s in segments)
            lines.append(f"  {period:<10}{cells}{total:>16,.2f}")
        if len(periods) > periods_shown:
            lines.append(f"  ... {len(periods) - periods_shown} earlier period(s) not shown")
        lines.append("")
    lines.append("  cells: customers (share of the period's revenue)")
    lines.append("")
    if result.skipped_windows:
        lines.append(
            "rolling windows not written (they lack history in the data read): "
            + ", ".join(result.skipped_windows)
        )
    if result.rfm_ties:
        lines.append(_ties_line(result.rfm_ties))
    if result.held_back:
        lines.append(_held_line(result.held_back))
    counts = result.counts or RunCounts()
    lines.append(_counts_line(counts))
    money = _money_line(counts, reporting_currency)
    if money:
        lines.append(money)
    lines.append("tables:")
    for name in (CUSTOMER_SEGMENTS, TIER_BOUNDARIES, *SUMMARY_TABLES, QUARANTINED_TRANSACTIONS):
        version = result.table_versions.get(name)
        if version is not None:
            lines.append(f"  {result.table_name(name)}  (Delta version {version})")
    lines.append(f"  run logged in {result.table_name(RUNS)}")
    timing = ", ".join(f"{stage} {sec:.1f}s" for stage, sec in result.stage_seconds.items())
    lines.append(f"stages: {timing}")
    return "\n".join(lines)


def _ties_line(ties: Sequence[Mapping[str, Any]], shown: int = 4) -> str:
    """Where ties at a score boundary left fewer than five RFM scores in use."""
    listed = [
        f"{tie['period']} {tie['measure']} ({', '.join(map(str, tie['scores']))})"
        for tie in ties[:shown]
    ]
    more = f", and {len(ties) - shown} more (revseg run --summary json lists them)"
    return (
        f"rfm: ties at a score boundary leave fewer than five scores in use in {len(ties)} "
        "period measure(s): " + "; ".join(listed) + (more if len(ties) > shown else "")
    )


def _held_line(held: Sequence[Mapping[str, Any]], shown: int = 4) -> str:
    """How many tier changes the stable-tier rules held back, per period."""
    total = sum(int(row["customers"]) for row in held)
    listed = [f"{row['period']} {int(row['customers']):,}" for row in held[:shown]]
    more = f", and {len(held) - shown} more (revseg run --summary json lists them)"
    return (
        f"stable tiers: {total:,} tier change(s) held back (hysteresis or not yet confirmed): "
        + "; ".join(listed)
        + (more if len(held) > shown else "")
    )


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["customers"] == 0:
        return "0"
    share = row["revenue_share"]
    if share is not None and abs(share) < 0.0005:
        share = 0.0  # not "-0.0%" for a sliver of negative revenue
    return f"{row['customers']:,} ({share:.1%})" if share is not None else f"{row['customers']:,}"


def _counts_line(counts: RunCounts) -> str:
    rejected = {r: counts.rejected(r) for r in ROW_REASONS if counts.rejected(r)}
    parts = [
        f"rows read {counts.input_rows:,}",
        f"counted {counts.valid_rows:,}",
        f"duplicates dropped {counts.duplicates:,}",
        f"outside the months {counts.outside_range:,}",
    ]
    if rejected:
        parts.append("not counted: " + ", ".join(f"{k} {v:,}" for k, v in rejected.items()))
    return "; ".join(parts)


def _money_line(counts: RunCounts, reporting_currency: str) -> str | None:
    """Refunds netted and rows converted, when there were any."""
    parts = []
    if counts.refund_rows:
        refunds = Decimal(counts.refund_cents) / 100
        parts.append(f"refunds netted {counts.refund_rows:,} ({refunds:,.2f})")
        if counts.unattributed_refunds is not None:  # refund_attribution: original
            own = counts.unattributed_refunds
            parts.append(
                f"booked to their sale's period {counts.refund_rows - own:,}, "
                f"sale not found (own period) {own:,}"
            )
    if counts.converted_rows:
        parts.append(f"rows converted to {reporting_currency} {counts.converted_rows:,}")
    return "; ".join(parts) or None


def format_runs(runs: list[dict[str, Any]]) -> str:
    """The run log as a terminal table, newest first."""
    if not runs:
        return "no runs logged yet"
    header = (
        f"{'run_id':<20} {'status':<10} {'started (UTC)':<20} {'secs':>6} "
        f"{'rows in':>12} {'valid':>12} {'quarantined':>12} {'periods':>8}  requested / error"
    )
    lines = [header]
    for run in runs:
        seconds = (run["finished_at"] - run["started_at"]).total_seconds()
        detail = run["error"] or run["requested"]
        lines.append(
            f"{run['run_id']:<20} {run['status']:<10} {run['started_at']:%Y-%m-%d %H:%M:%S}  "
            f"{seconds:>6.0f} {_number(run['input_rows']):>12} {_number(run['valid_rows']):>12} "
            f"{_number(run['quarantined_rows']):>12} {len(run['periods_written'] or []):>8}  "
            f"{detail[:100]}"
        )
    return "\n".join(lines)


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_clv_summary(result: ClvResult, levels: Sequence[str]) -> str:
    """A CLV run: each model's parameters (standard errors) and log-likelihood, the holdout
    errors, and customers and predicted value per predictive segment (`levels`: the tier
    names, highest first)."""
    unit = result.time_unit
    lines = [
        f"clv run {result.run_id}: calibration to {result.calibration_end} (inclusive), "
        f"{result.customers:,} customers ({result.repeat_customers:,} with repeat purchases), "
        f"{result.summary_rows:,} distinct summary rows; time unit {unit}, horizon "
        f"{result.horizon} {unit}s",
        _counts_line(result.counts),
    ]
    if result.refund_only_days:
        refunds = Decimal(result.refund_only_cents) / 100
        lines.append(
            f"refund-only days (no occasion; not in monetary values): "
            f"{result.refund_only_days:,} ({refunds:,.2f} {result.currency})"
        )
    lines.append("")
    for fit in result.fits:
        shown = ", ".join(
            f"{name} {value:.4f} (se {fit.std_errors[name]:.4f})"
            for name, value in fit.parameters.items()
        )
        lines.append(
            f"{fit.model:<12} {shown}; log-likelihood {fit.log_likelihood:,.2f} over "
            f"{fit.customers:,} customers ({fit.method})"
        )
    metrics = {row.name: row for row in result.validation if row.kind == "metric"}
    if metrics:
        purchases, revenue = metrics["total_purchases"], metrics["total_revenue"]
        lines += [
            "",
            f"holdout to {result.holdout_end}: repeat purchases actual "
            f"{purchases.actual or 0:,.0f}, predicted {purchases.predicted or 0:,.1f}; MAE "
            f"{_metric(metrics, 'mae_purchases'):.3f}, "
            f"RMSE {_metric(metrics, 'rmse_purchases'):.3f}",
            f"  revenue actual {revenue.actual or 0:,.2f}, predicted "
            f"{revenue.predicted or 0:,.2f} {result.currency}; MAE "
            f"{_metric(metrics, 'mae_revenue'):,.2f}, RMSE {_metric(metrics, 'rmse_revenue'):,.2f}",
        ]
    lines += ["", f"{'clv_segment':<14} {'customers':>12} {'predicted value':>20}"]
    order = {name: i for i, name in enumerate([*levels, NO_REVENUE_SEGMENT])}
    for seg in sorted(result.segments, key=lambda s: order.get(s.segment, len(order))):
        value = Decimal(seg.clv_cents) / 100
        lines.append(f"{seg.segment:<14} {seg.customers:>12,} {value:>20,.2f}")
    lines.append("")
    lines.append(
        "tables: "
        + ", ".join(f"{name} v{version}" for name, version in result.table_versions.items())
    )
    lines.append(
        "stages: "
        + ", ".join(f"{stage} {sec:.1f} s" for stage, sec in result.stage_seconds.items())
    )
    return redact("\n".join(lines))


def _metric(metrics: dict[str, Any], name: str) -> float:
    return float(metrics[name].value or 0.0)
