"""Driver-side rules of a run, in plain Python: what may be written, and whether it adds up.

They read the run's counts and the tier boundary rows (both small, on the driver) and either
pass, return what to write, or raise a `RunError` that says why nothing was written. No
Spark here: each rule is tested without a session.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from revseg.config.model import LAPSED_SEGMENT, NEW_SEGMENT, REACTIVATED_SEGMENT
from revseg.errors import RunError
from revseg.months import Month
from revseg.reasons import DUPLICATE, MISSING_FX_RATE, ROW_REASONS, STALE_FX_RATE
from revseg.result import Boundary, Migrations, RunCounts

if TYPE_CHECKING:
    from revseg.periods import Grain, RollingGrain


def check_fx_coverage(counts: RunCounts, reporting_currency: str) -> None:
    """With `revenue.fail_on_missing_fx`, a row without a usable rate fails the run."""
    missing, stale = counts.rejected(MISSING_FX_RATE), counts.rejected(STALE_FX_RATE)
    if missing + stale:
        raise RunError(
            f"{missing + stale} transaction(s) have no usable FX rate to "
            f"{reporting_currency} (missing_fx_rate: {missing}, stale_fx_rate: {stale}) "
            "and revenue.fail_on_missing_fx is true: nothing was written. Add the rates to "
            "revenue.fx_rates or raise revenue.fx_max_staleness_days."
        )


def check_quarantine_fraction(counts: RunCounts, limit: float, quarantine_excluded: bool) -> None:
    """Too much bad input fails the run before anything is written."""
    total = counts.input_rows
    quarantined = counts.quarantined(quarantine_excluded)
    if total and quarantined / total > limit:
        found = {**counts.by_reason, DUPLICATE: counts.duplicates}
        by_reason = ", ".join(
            f"{r} {found[r]:,}" for r in (*ROW_REASONS, DUPLICATE) if found.get(r)
        )
        raise RunError(
            f"{quarantined:,} of {total:,} rows ({quarantined / total:.1%}) would be "
            f"quarantined ({by_reason}), more than quality.max_quarantine_fraction "
            f"({limit:.1%}): nothing was written. Fix the source, or raise the limit."
        )


def found_periods(boundaries: Iterable[Boundary], grains: Sequence[str]) -> dict[str, set[str]]:
    """Per grain, the periods in which some customer has a row."""
    found: dict[str, set[str]] = {name: set() for name in grains}
    for row in boundaries:
        if row["customers"] > 0:
            found[row["period_grain"]].add(row["period"])
    return found


# The note of an incremental run whose changed days' periods hold no valid rows, none stored.
NOTHING_TO_WRITE = (
    "nothing to write: the periods of the changed days hold no valid rows, and none of them "
    "is in the tables"
)


def empty_periods(planned: Mapping[str, Sequence[str]], boundaries: Iterable[Boundary]) -> set[str]:
    """Planned periods without a single customer row."""
    found = found_periods(boundaries, tuple(planned))
    return {p for name, labels in planned.items() for p in labels if p not in found[name]}


def periods_to_write(
    planned: Mapping[str, Sequence[str]] | None,
    boundaries: Sequence[Boundary],
    grains: Sequence[str],
    allow_empty: bool = False,
    unstored: Collection[str] = (),
) -> dict[str, tuple[str, ...]]:
    """The planned periods (all must have data, unless `allow_empty`: then an empty period
    is replaced by nothing; `unstored` empty periods are left out), or, without a plan,
    every period the data produced."""
    found = found_periods(boundaries, grains)
    if planned is None:
        if not any(found.values()):
            raise RunError("the source holds no valid transactions: nothing to segment")
        return {name: tuple(sorted(found[name])) for name in grains}
    kept = {name: tuple(p for p in planned[name] if p not in unstored) for name in grains}
    empty = [p for name in grains for p in kept[name] if p not in found[name]]
    if empty and not allow_empty:
        raise RunError(
            f"no valid transactions for period(s) {', '.join(empty)}: nothing was written, "
            "because replacing those periods with nothing would delete them (set "
            "quality.allow_empty_periods: true if they are meant to be empty)"
        )
    return kept


def incomplete_windows(
    windows: Iterable[RollingGrain], first_month: int, last_month: int
) -> set[str]:
    """Rolling windows that start before the first month read or end after the last one.

    Such a window lacks history (or runs past the data), so it is not written.
    """
    skipped: set[str] = set()
    for grain in windows:
        for key in range(first_month, last_month + grain.months):
            window_first, window_last = grain.span(key)
            if window_first.index < first_month or window_last.index > last_month:
                skipped.add(grain.label(key))
    return skipped


def data_span(
    read: tuple[int | None, int | None],
    read_ranges: Iterable[tuple[Month, Month]] | None,
    before: tuple[int, int] | None,
) -> tuple[int, int]:
    """The first and last month with counted data in the whole source, for an incremental
    run that read only `read_ranges` (`read`: what it found there): the months it did not
    read are as its baseline found them (`before`), so an empty month at the edge of the
    read is not taken for the edge of the data. Without a baseline (or with every month
    read) the months read are all there is."""
    first, last = read
    if before is not None and read_ranges is not None:
        read_months = {m for low, high in read_ranges for m in range(low.index, high.index + 1)}
        if before[0] not in read_months:
            first = before[0] if first is None else min(first, before[0])
        if before[1] not in read_months:
            last = before[1] if last is None else max(last, before[1])
        first = before[0] if first is None else first
        last = before[1] if last is None else last
    return first or 0, last or 0


def without_windows(
    periods: Mapping[str, tuple[str, ...]],
    skipped: Collection[str],
    held: Collection[str] = (),
) -> dict[str, tuple[str, ...]]:
    """The periods to write, less the `skipped` rolling windows; refuses to write nothing
    when there was something to write (periods `held` as stored count as handled)."""
    kept = {
        grain: tuple(p for p in labels if p not in skipped) for grain, labels in periods.items()
    }
    if any(periods.values()) and not any(kept.values()) and not held:
        raise RunError(
            "nothing to write: every requested rolling window lacks history in the data "
            "read (add a calendar grain, or a range whose windows are complete)"
        )
    return kept


def periods_begun_before(
    grains: Sequence[Grain], first_day: date | None, reach_days: int = 0
) -> set[str]:
    """With the source's partition days before `first_day` removed, the labels of the
    periods that a rewrite would get wrong: those holding a day from `first_day - 1` (a
    partition day holds rows of the day either side in periods.timezone) to `first_day +
    reach_days` (a copy, or a refund booked to its sale, whose other row was removed)."""
    labels: set[str] = set()
    if first_day is None:
        return labels
    low, high = first_day - timedelta(days=1), first_day + timedelta(days=reach_days)
    months = range(Month.of_date(low).index, Month.of_date(high).index + 1)
    for grain in grains:
        for key in {k for index in months for k in grain.keys_of(Month(index))}:
            if grain.first_day(key) <= high and grain.last_day(key) >= low:
                labels.add(grain.label(key))
    return labels


def hold_partial(
    periods: Mapping[str, tuple[str, ...]], partial: Collection[str]
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """The periods less the `partial` ones (`periods_begun_before`): their stored rows
    were computed from every day, a rewrite would count only what is left. Also: the
    labels held back."""
    kept = {g: tuple(p for p in labels if p not in partial) for g, labels in periods.items()}
    return kept, {p for labels in periods.values() for p in labels if p in partial}


def held_note(held: Collection[str], horizon: date | None) -> str | None:
    if not held or horizon is None:
        return None
    return (
        f"kept {', '.join(sorted(held))} as stored: the source's days before {horizon} were "
        "removed since they were computed, and a rewrite would count only what is left"
    )


def written_revenue(
    periods: Mapping[str, Sequence[str]], boundaries: Iterable[Boundary]
) -> dict[str, Decimal]:
    """Revenue per grain over the written periods, from the tier boundary rows."""
    written = {p for labels in periods.values() for p in labels}
    totals: dict[str, Decimal] = {}
    for row in boundaries:
        if row["period"] in written:
            grain = row["period_grain"]
            totals[grain] = totals.get(grain, Decimal(0)) + row["revenue"]
    return totals


def reconcile(
    counts: RunCounts,
    boundaries: Iterable[Boundary],
    periods: Mapping[str, Sequence[str]],
    calendar_grains: Collection[str],
    held: Collection[str] = (),
) -> None:
    """Valid revenue in must equal revenue out, to the cent, for every calendar grain
    (rolling windows overlap, so they have no such total); the revenue of `held` periods
    (computed, kept as stored: `hold_partial`) is accounted as not written."""
    rows = list(boundaries)
    for grain, labels in periods.items():
        if grain not in calendar_grains:
            continue
        written, kept = 0, 0
        for row in rows:
            if row["period_grain"] == grain and row["period"] in labels:
                written += int(row["revenue"] * 100)
            elif row["period_grain"] == grain and row["period"] in held:
                kept += int(row["revenue"] * 100)
        expected = counts.revenue_cents.get(grain, 0) - kept
        if written != expected:
            raise RunError(
                f"reconciliation failed for {grain} periods: valid transactions add up to "
                f"{expected / 100:.2f}, the segments to {written / 100:.2f}; nothing was written"
            )


# Per (period_grain, period): (customers, revenue in cents).
PeriodTotals = Mapping[tuple[str, str], tuple[int, int]]


def boundary_totals(
    boundaries: Iterable[Boundary], periods: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    """Customers and revenue (cents) per written period, from the computed boundary rows."""
    written = {(grain, label) for grain, labels in periods.items() for label in labels}
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for row in boundaries:
        key = (row["period_grain"], row["period"])
        if key in written:
            customers, cents = totals.get(key, (0, 0))
            totals[key] = (customers + int(row["customers"]), cents + int(row["revenue"] * 100))
    return totals


def check_committed(
    computed: PeriodTotals,
    committed: Mapping[str, PeriodTotals],
    versions: Mapping[str, int],
) -> None:
    """What the tables hold after the commits, read back per period (`committed`: table ->
    totals), must be what the run computed: a commit Delta skipped, a doubled or a lost
    row shows here. The tables stay as committed, but the run is not logged as succeeded,
    so readers of the run log keep the last good versions."""
    for table, found in committed.items():
        for key in sorted(set(computed) | set(found)):
            want, got = computed.get(key, (0, 0)), found.get(key, (0, 0))
            if want != got:
                grain, period = key
                raise RunError(
                    f"reconciliation of the committed tables failed: {table} (version "
                    f"{versions.get(table)}) holds {got[0]:,} customers and "
                    f"{got[1] / 100:,.2f} of revenue for {grain} {period}, the run computed "
                    f"{want[0]:,} and {want[1] / 100:,.2f}; the run is not logged as "
                    "succeeded, so readers of the run log keep the previous versions. Run "
                    "it again to replace these periods."
                )


def check_migrations(
    rows: Iterable[Mapping[str, Any]], migrations: Migrations, version: int | None = None
) -> None:
    """Every pair of tier_migrations must add up to both periods' customers and revenue:
    the computed rows before the write, the committed ones (`version`) after it, which
    must also be as many as were computed."""
    rows = list(rows)
    where = "the computed" if version is None else f"tier_migrations (version {version}) holds"
    wrong = unbalanced_pairs(rows, migrations.totals)
    if version is not None and len(rows) != len(migrations.rows):
        wrong.append(
            f"{len(rows):,} rows for the periods written, the run computed {len(migrations.rows):,}"
        )
    if wrong:
        raise RunError(
            f"reconciliation of the tier migrations failed: {where} pairs that do not add up "
            f"to their periods: {'; '.join(wrong[:3])}"
            + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "")
            + ". The run is not logged as succeeded; run it again to replace these periods."
        )


def unbalanced_pairs(
    rows: Iterable[Mapping[str, Any]], totals: Mapping[tuple[str, str], tuple[int, int]]
) -> list[str]:
    """The pairs whose migrations do not add up to both periods' customers and revenue
    (`totals`: (period_grain, period) -> customers, cents), described."""
    sides: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        pair = (row["period_grain"], row["from_period"], row["to_period"])
        found = sides.setdefault(pair, [0, 0, 0, 0])
        if row["from_segment"] not in (NEW_SEGMENT, REACTIVATED_SEGMENT):
            found[0] += int(row["customers"])
        if row["to_segment"] != LAPSED_SEGMENT:
            found[2] += int(row["customers"])
        found[1] += int(row["from_revenue"] * 100)
        found[3] += int(row["to_revenue"] * 100)
    wrong = []
    for (grain, first, second), (c1, r1, c2, r2) in sorted(sides.items()):
        want = (*totals.get((grain, first), (0, 0)), *totals.get((grain, second), (0, 0)))
        if (c1, r1, c2, r2) != want:
            wrong.append(
                f"{grain} {first} -> {second}: {c1:,} customers and {r1 / 100:,.2f} from, "
                f"{c2:,} and {r2 / 100:,.2f} to; the periods hold {want[0]:,} and "
                f"{want[1] / 100:,.2f}, {want[2]:,} and {want[3] / 100:,.2f}"
            )
    return wrong
