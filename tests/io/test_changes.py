"""The input state an incremental run compares (`revseg.io.changes`): the days a change of
partitions, rates or the as-of date affects. Plain Python: no Spark session here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from revseg.io.changes import (
    UNDATED,
    EveryPeriod,
    InputState,
    affected_days,
    changed_days,
    retired_days,
)


def state(
    days: Mapping[str, str], fx: Mapping[str, str] | None = None, as_of: str | None = None
) -> InputState:
    return InputState(days=days, fx=fx or {}, as_of=as_of)


def test_affected_days_from_partitions_rates_and_as_of() -> None:
    before = state({"2024-03-01": "a", "2024-03-02": "b", "2024-03-05": "c"}, {}, "2024-03-05")
    # A new partition on the first of a month: its rows may fall on the last day before.
    now = state({**before.days, "2024-03-01": "A"}, {}, "2024-03-05")
    assert affected_days(before, now, 3, 0) == {date(2024, 2, 29), *_days(3, 1, 2)}
    # Refunds booked to their sale: a change moves refunds to or from days up to that many
    # days before and after, where there are rows.
    wide = state({"2024-02-20": "w", "2024-03-01": "a", "2024-03-10": "x", "2024-03-25": "y"})
    wide_now = state({**wide.days, "2024-03-01": "A"})
    assert affected_days(wide, wide_now, 3, 10) == {
        *_days(2, 19, 21),
        date(2024, 2, 29),
        *_days(3, 1, 2),
        *_days(3, 9, 11),
    }
    # A partition value that is not a date, unchanged, changes nothing.
    undated = state({**before.days, UNDATED: "z"}, {}, "2024-03-05")
    assert affected_days(undated, undated, 3, 0) == set()
    # A removed partition is a change too.
    gone = state({"2024-03-01": "a", "2024-03-02": "b"}, {}, "2024-03-05")
    assert affected_days(before, gone, 3, 0) == _days(3, 4, 6)
    # A changed rate: its day and the staleness window after it, where rows can be.
    rates = state(before.days, {"2024-03-02": "x"}, "2024-03-05")
    assert affected_days(before, rates, 3, 0) == _days(3, 2, 5)
    # A moved as-of date: the days around both dates that rows can fall on.
    later = state(before.days, {}, "2024-03-08")
    assert affected_days(before, later, 3, 0) == _days(3, 4, 6)
    # A partition value that is not a date: no day to place it.
    odd = state({**before.days, UNDATED: "z"}, {}, "2024-03-05")
    assert isinstance(affected_days(before, odd, 3, 0), EveryPeriod)
    assert affected_days(before, before, 3, 0) == set()


def _days(month: int, first: int, last: int) -> set[date]:
    return {date(2024, month, d) for d in range(first, last + 1)}


def test_days_removed_before_every_day_left_are_retired_not_changed() -> None:
    before = state({"2024-01-01": "a", "2024-01-02": "b", "2024-01-03": "c", "2024-01-09": "d"})
    # retention took the first two days; a deletion in the middle is still a change
    now = state({"2024-01-03": "c"})
    assert retired_days(before.days, now.days) == {"2024-01-01", "2024-01-02"}
    assert changed_days(before.days, now.days) == {"2024-01-09"}
    assert affected_days(before, now, 0, 0) == _days(1, 8, 10)
    only_retired = state({"2024-01-03": "c", "2024-01-09": "d"})
    assert affected_days(before, only_retired, 0, 0) == set()
    assert retired_days(before.days, state({}).days) == set()  # nothing left: no first day
    # Rates pruned with the source, and a deletion vector on a removed day, change nothing
    # that is left; a change on the first day left plans no day before the one before it.
    rated = state(before.days, {"2023-12-30": "q", "2024-01-03": "r"})
    pruned = state(only_retired.days, {"2024-01-03": "r"})
    assert affected_days(rated, pruned, 2, 0, {"2024-01-01"}) == set()
    late = state({"2024-01-03": "C", "2024-01-09": "d"})
    assert affected_days(before, late, 0, 3) == _days(1, 2, 4)
