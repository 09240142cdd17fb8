"""Periods: which period of each grain a month belongs to, on the driver and in Spark.

A month is handled as an integer index (`year * 12 + month - 1`), so that every grain is
integer arithmetic on it and the driver (which plans what to read and replace) and Spark
(which labels the rows) compute the same periods from the same formula.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column
from pyspark.sql import functions as F

_MONTH_TEXT = re.compile(r"^(\d{4})-(\d{2})$")
_MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, as an index that orders and subtracts like an integer."""

    index: int

    @classmethod
    def of(cls, year: int, month: int) -> Month:
        return cls(year * 12 + month - 1)

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse `YYYY-MM`; raises ValueError with the expected form."""
        match = _MONTH_TEXT.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{text!r} is not a month in the form YYYY-MM, e.g. 2024-03")
        return cls.of(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of_date(cls, day: date) -> Month:
        return cls.of(day.year, day.month)

    @property
    def year(self) -> int:
        return self.index // 12

    @property
    def month(self) -> int:
        return self.index % 12 + 1

    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def last_day(self) -> date:
        following = self + 1
        return date.fromordinal(following.first_day().toordinal() - 1)

    def __add__(self, months: int) -> Month:
        return Month(self.index + months)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class CalendarGrain:
    """A grain whose periods tile the months: each month lies in exactly one period.

    `months` is the period length and `offset` the month index (mod `months`) at which
    periods start: 0 for calendar quarters and years.
    """

    name: str
    months: int
    label_format: str

    def start_of(self, month: Month) -> Month:
        return Month(month.index - month.index % self.months)

    def label(self, month: Month) -> str:
        start = self.start_of(month)
        return self.label_format.format(
            year=start.year, month=start.month, quarter=(start.month - 1) // 3 + 1
        )

    def span(self, month: Month) -> tuple[Month, Month]:
        """First and last month of the period that contains `month`."""
        start = self.start_of(month)
        return start, start + (self.months - 1)

    def start_col(self, month_index: Column) -> Column:
        """The month index at which the period containing `month_index` starts."""
        return month_index - F.pmod(month_index, F.lit(self.months))

    def label_col(self, month_index: Column) -> Column:
        """The period label of a month index column, by the same formula as `label`."""
        start = self.start_col(month_index)
        year = F.floor(start / 12).cast("int")
        month = (F.pmod(start, F.lit(12)) + 1).cast("int")
        quarter = (F.floor((month - 1) / 3) + 1).cast("int")
        if self.name == "month":
            return F.format_string("%04d-%02d", year, month)
        if self.name == "quarter":
            return F.format_string("%04d-Q%d", year, quarter)
        return F.format_string("%04d", year)


GRAINS: dict[str, CalendarGrain] = {
    "month": CalendarGrain("month", 1, "{year:04d}-{month:02d}"),
    "quarter": CalendarGrain("quarter", 3, "{year:04d}-Q{quarter}"),
    "year": CalendarGrain("year", 12, "{year:04d}"),
}
SUPPORTED_GRAINS: tuple[str, ...] = tuple(GRAINS)


@dataclass(frozen=True)
class PeriodPlan:
    """What a run over a month range computes: periods to write, months to read."""

    first: Month
    last: Month
    periods: dict[str, tuple[str, ...]]
    read_from: Month
    read_to: Month

    @property
    def all_periods(self) -> tuple[str, ...]:
        return tuple(p for labels in self.periods.values() for p in labels)

    def months_of(self, grain: str) -> tuple[Month, Month]:
        """First and last month covered by the periods of `grain` that the run writes."""
        return GRAINS[grain].span(self.first)[0], GRAINS[grain].span(self.last)[1]

    def start_ranges(self) -> dict[str, tuple[int, int]]:
        """Per grain, the first month index of the first and of the last period written."""
        return {
            name: (GRAINS[name].start_of(self.first).index, GRAINS[name].start_of(self.last).index)
            for name in self.periods
        }


def plan_periods(grains: Sequence[str], first: Month, last: Month) -> PeriodPlan:
    """Every period of every grain that overlaps [first, last], and the months they span.

    A one-month run of March therefore rewrites March, its quarter and its year whole,
    and reads every month those periods need.
    """
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    periods: dict[str, tuple[str, ...]] = {}
    read_from, read_to = first, last
    for name in grains:
        grain = GRAINS[name]
        labels: list[str] = []
        for month in months_between(first, last):
            label = grain.label(month)
            if label not in labels:
                labels.append(label)
        periods[name] = tuple(labels)
        read_from = min(read_from, grain.span(first)[0])
        read_to = max(read_to, grain.span(last)[1])
    return PeriodPlan(first, last, periods, read_from, read_to)


def months_between(first: Month, last: Month) -> Iterable[Month]:
    return (Month(i) for i in range(first.index, last.index + 1))


# --- Spark columns -----------------------------------------------------------------------


def local_date(ts: Column | str, timezone: str) -> Column:
    """The calendar date on which a UTC instant falls in `timezone`.

    Pure epoch arithmetic after `from_utc_timestamp`, so the result does not depend on
    the session time zone of whatever cluster runs the job.
    """
    ts_col = F.col(ts) if isinstance(ts, str) else ts
    if timezone in ("UTC", "Etc/UTC"):
        wall_clock_micros = F.unix_micros(ts_col)  # no zone rules to apply per row
    else:
        wall_clock_micros = F.unix_micros(F.from_utc_timestamp(ts_col, timezone))
    return F.date_from_unix_date(F.floor(wall_clock_micros / _MICROS_PER_DAY).cast("int"))


def month_index(day: Column | str) -> Column:
    """`year * 12 + month - 1` of a date column (see `Month`)."""
    day_col = F.col(day) if isinstance(day, str) else day
    return F.year(day_col) * 12 + F.month(day_col) - 1


def period_starts(month_idx: Column | str, grains: Sequence[str]) -> Column:
    """An array of (grain_idx, start_idx) structs: every period a month row rolls up into.

    Integers, not labels: grouping on them is much cheaper than on strings, and labels are
    made once per output row afterwards (`period_label`).
    """
    idx = F.col(month_idx) if isinstance(month_idx, str) else month_idx
    return F.array(
        *[
            F.struct(F.lit(i).alias("grain_idx"), GRAINS[name].start_col(idx).alias("start_idx"))
            for i, name in enumerate(grains)
        ]
    )


def grain_name(grain_idx: Column, grains: Sequence[str]) -> Column:
    return F.element_at(F.array(*[F.lit(name) for name in grains]), grain_idx + 1)


def period_label(grain_idx: Column, start_idx: Column, grains: Sequence[str]) -> Column:
    """The label of the period of grain number `grain_idx` that starts at `start_idx`."""
    label: Column = F.lit(None).cast("string")
    for i in reversed(range(len(grains))):
        label = F.when(grain_idx == i, GRAINS[grains[i]].label_col(start_idx)).otherwise(label)
    return label
