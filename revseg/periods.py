"""Periods: which period of each grain a month belongs to, on the driver and in Spark.

A month is handled as an integer index (`year * 12 + month - 1`), so that every grain is
integer arithmetic on it and the driver (which plans what to read and replace) and Spark
(which labels the rows) compute the same periods from the same formula.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

from revseg.months import Month as Month  # re-exported: grains and plans speak of months
from revseg.names import SUPPORTED_GRAINS

_MICROS_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)


def _year_col(month_index: Column) -> Column:
    return F.floor(month_index / 12).cast("int")


def _month_col(month_index: Column) -> Column:
    return (F.pmod(month_index, F.lit(12)) + 1).cast("int")


@dataclass(frozen=True)
class CalendarGrain:
    """A grain whose periods tile the months: each month lies in exactly one period.

    A period is keyed by the index of its first month. `months` is its length and `offset`
    the month of the year (0-based) at which periods are aligned: 0 for calendar quarters
    and years. Fiscal grains align on `fiscal_offset` (fiscal_year_start_month - 1), and
    their labels name the fiscal year by the calendar year in which it ends.
    """

    name: str
    months: int
    fiscal_offset: int = 0

    @property
    def offset(self) -> int:
        return self.fiscal_offset % self.months

    @property
    def rolling(self) -> bool:
        return False

    def keys_of(self, month: Month) -> list[int]:
        return [month.index - (month.index - self.offset) % self.months]

    def key_cols(self, month_index: Column) -> list[Column]:
        return [month_index - F.pmod(month_index - self.offset, F.lit(self.months))]

    def span(self, key: int) -> tuple[Month, Month]:
        """First and last month of the period."""
        return Month(key), Month(key + self.months - 1)

    def first_day(self, key: int) -> date:
        return Month(key).first_day()

    def last_day(self, key: int) -> date:
        return self.span(key)[1].last_day()

    def first_month_col(self, key: Column) -> Column:
        return key

    def label(self, key: int) -> str:
        start = Month(key)
        if self.name == "month":
            return str(start)
        if self.name == "quarter":
            return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
        if self.name == "year":
            return f"{start.year:04d}"
        fiscal_start = key - (key - self.fiscal_offset) % 12
        fiscal_year = (fiscal_start + 11) // 12  # named by the year in which it ends
        if self.name == "fiscal_year":
            return f"FY{fiscal_year:04d}"
        return f"FY{fiscal_year:04d}-Q{(key - fiscal_start) // 3 + 1}"

    def label_col(self, key: Column) -> Column:
        """The label of a key column, by the same formula as `label`."""
        if self.name == "month":
            return F.format_string("%04d-%02d", _year_col(key), _month_col(key))
        if self.name == "quarter":
            quarter = (F.floor((_month_col(key) - 1) / 3) + 1).cast("int")
            return F.format_string("%04d-Q%d", _year_col(key), quarter)
        if self.name == "year":
            return F.format_string("%04d", _year_col(key))
        fiscal_start = key - F.pmod(key - self.fiscal_offset, F.lit(12))
        fiscal_year = _year_col(fiscal_start + 11)
        if self.name == "fiscal_year":
            return F.format_string("FY%04d", fiscal_year)
        quarter = (F.floor((key - fiscal_start) / 3) + 1).cast("int")
        return F.format_string("FY%04d-Q%d", fiscal_year, quarter)


@dataclass(frozen=True)
class RollingGrain:
    """Trailing windows of `months` complete months, keyed by the index of their last month.

    Each month belongs to the `months` windows that end in it and in the months after it.
    """

    name: str
    months: int

    @property
    def rolling(self) -> bool:
        return True

    def keys_of(self, month: Month) -> list[int]:
        return [month.index + i for i in range(self.months)]

    def key_cols(self, month_index: Column) -> list[Column]:
        return [month_index + i for i in range(self.months)]

    def span(self, key: int) -> tuple[Month, Month]:
        return Month(key - self.months + 1), Month(key)

    def first_day(self, key: int) -> date:
        return self.span(key)[0].first_day()

    def last_day(self, key: int) -> date:
        return Month(key).last_day()

    def first_month_col(self, key: Column) -> Column:
        return key - (self.months - 1)

    def label(self, key: int) -> str:
        return f"L{self.months}M-{Month(key)}"

    def label_col(self, key: Column) -> Column:
        return F.format_string(f"L{self.months}M-%04d-%02d", _year_col(key), _month_col(key))


@dataclass(frozen=True)
class WeekGrain:
    """ISO weeks, Monday to Sunday, keyed by the day number (days since 1970-01-01) of their
    Monday and named by ISO year and week (`2024-W01`; 2024-12-30 is in 2025-W01).

    Weeks do not tile months, so they roll up from month x week pieces of the month rows
    (`week_key` on each row), never from whole months.
    """

    name: str = "week"

    @property
    def rolling(self) -> bool:
        return False

    def keys_of(self, month: Month) -> list[int]:
        """The Mondays of every week that has a day in `month`."""
        first = monday_of((month.first_day() - EPOCH).days)
        last = (month.last_day() - EPOCH).days
        return list(range(first, last + 1, 7))

    def key_cols(self, month_index: Column) -> list[Column]:
        return [F.col("week_key")]

    def span(self, key: int) -> tuple[Month, Month]:
        """The months of its Monday and of its Sunday."""
        return Month.of_date(day_of(key)), Month.of_date(day_of(key + 6))

    def first_day(self, key: int) -> date:
        return day_of(key)

    def last_day(self, key: int) -> date:
        return day_of(key + 6)

    def first_month_col(self, key: Column) -> Column:
        return month_index(F.date_from_unix_date(key))

    def label(self, key: int) -> str:
        year, week, _ = day_of(key).isocalendar()
        return f"{year:04d}-W{week:02d}"

    def label_col(self, key: Column) -> Column:
        monday = F.date_from_unix_date(key)
        thursday = F.date_add(monday, 3)  # its year is the ISO year
        return F.format_string("%04d-W%02d", F.year(thursday), F.weekofyear(monday))


def day_of(day_number: int) -> date:
    return EPOCH + timedelta(days=day_number)


def monday_of(day_number: int) -> int:
    """The day number of the Monday of that day's ISO week (1970-01-01 was a Thursday)."""
    return day_number - (day_number + 3) % 7


def week_key(epoch_day: Column) -> Column:
    """`monday_of` in Spark."""
    return epoch_day - F.pmod(epoch_day + 3, F.lit(7))


Grain = CalendarGrain | RollingGrain | WeekGrain


def make_grain(name: str, fiscal_year_start_month: int = 1) -> Grain:
    """The grain called `name`; fiscal grains start their year in the given month."""
    fiscal_offset = fiscal_year_start_month - 1
    grains: dict[str, Grain] = {
        "week": WeekGrain(),
        "month": CalendarGrain("month", 1),
        "quarter": CalendarGrain("quarter", 3),
        "year": CalendarGrain("year", 12),
        "fiscal_quarter": CalendarGrain("fiscal_quarter", 3, fiscal_offset),
        "fiscal_year": CalendarGrain("fiscal_year", 12, fiscal_offset),
        "rolling_3m": RollingGrain("rolling_3m", 3),
        "rolling_12m": RollingGrain("rolling_12m", 12),
    }
    return grains[name]


def make_grains(names: Sequence[str], fiscal_year_start_month: int = 1) -> tuple[Grain, ...]:
    return tuple(make_grain(name, fiscal_year_start_month) for name in names)


GRAINS: dict[str, Grain] = {name: make_grain(name) for name in SUPPORTED_GRAINS}


@dataclass(frozen=True)
class PeriodPlan:
    """What a run computes: the periods to write (as keys per grain) and the months to read.

    A range run writes every calendar period that overlaps its months and the rolling windows
    that end in them; an incremental run writes the periods that contain changed days. The
    months read are every month those periods need, as merged ranges.
    """

    keys: dict[str, tuple[int, ...]]
    periods: dict[str, tuple[str, ...]]
    read_ranges: tuple[tuple[Month, Month], ...]

    @property
    def all_periods(self) -> tuple[str, ...]:
        return tuple(p for labels in self.periods.values() for p in labels)

    @property
    def read_from(self) -> Month:
        return self.read_ranges[0][0]

    @property
    def read_to(self) -> Month:
        return self.read_ranges[-1][1]

    @property
    def key_ranges(self) -> dict[str, tuple[int, int]]:
        """Lowest and highest key per grain."""
        return {name: (keys[0], keys[-1]) for name, keys in self.keys.items()}

    def key_runs(self, grain: Grain) -> list[tuple[int, int]]:
        """The grain's keys as runs of consecutive periods (weeks step by 7 days)."""
        return _runs(self.keys[grain.name], 7 if isinstance(grain, WeekGrain) else 1)

    def months_of(self, grain: Grain) -> list[Month]:
        """Every month covered by the periods of `grain` that the run writes."""
        covered = {
            i
            for key in self.keys[grain.name]
            for i in range(grain.span(key)[0].index, grain.span(key)[1].index + 1)
        }
        return [Month(i) for i in sorted(covered)]


def describe(plan: PeriodPlan | None) -> str:
    """The periods a run writes and the months it reads, in words (for the run log)."""
    if plan is None:
        return "every period present in the source"
    months = ", ".join(f"{low} to {high}" for low, high in plan.read_ranges)
    return f"periods {', '.join(plan.all_periods)} (reading months {months})"


def _runs(keys: Sequence[int], step: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for key in keys:
        if runs and key == runs[-1][1] + step:
            runs[-1] = (runs[-1][0], key)
        else:
            runs.append((key, key))
    return runs


def plan_for_keys(grains: Sequence[Grain], keys: Mapping[str, Iterable[int]]) -> PeriodPlan:
    """The plan that writes the periods with these keys, and reads every month they need."""
    sorted_keys = {grain.name: tuple(sorted(set(keys[grain.name]))) for grain in grains}
    if not any(sorted_keys.values()):
        raise ValueError("the plan has no period to write")
    needed = {
        i
        for grain in grains
        for key in sorted_keys[grain.name]
        for i in range(grain.span(key)[0].index, grain.span(key)[1].index + 1)
    }
    read_ranges = tuple((Month(low), Month(high)) for low, high in _runs(sorted(needed), 1))
    periods = {
        grain.name: tuple(grain.label(k) for k in sorted_keys[grain.name]) for grain in grains
    }
    return PeriodPlan(sorted_keys, periods, read_ranges)


def plan_periods(grains: Sequence[Grain], first: Month, last: Month) -> PeriodPlan:
    """Every period of every grain that a run over [first, last] writes, and what it reads.

    A one-month run of March therefore rewrites March, its quarter and its year whole,
    and reads every month those periods need.
    """
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    keys: dict[str, set[int]] = {}
    for grain in grains:
        if grain.rolling:  # the windows that end in the range
            keys[grain.name] = set(range(first.index, last.index + 1))
        else:  # every period that overlaps it
            keys[grain.name] = {k for m in months_between(first, last) for k in grain.keys_of(m)}
    return plan_for_keys(grains, keys)


def plan_changed_days(grains: Sequence[Grain], days: Iterable[date]) -> PeriodPlan:
    """The plan that rewrites every period containing one of `days`: for each grain, the
    periods those days fall in (rolling: every window that contains them)."""
    day_set = set(days)
    months = {Month.of_date(day) for day in day_set}
    keys: dict[str, set[int]] = {}
    for grain in grains:
        if isinstance(grain, WeekGrain):
            keys[grain.name] = {monday_of((day - EPOCH).days) for day in day_set}
        else:
            keys[grain.name] = {k for month in months for k in grain.keys_of(month)}
    return plan_for_keys(grains, keys)


def months_between(first: Month, last: Month) -> Iterable[Month]:
    return (Month(i) for i in range(first.index, last.index + 1))


# --- Spark columns -----------------------------------------------------------------------


def local_epoch_day(ts: Column | str, timezone: str) -> Column:
    """Days since 1970-01-01 of the calendar date on which a UTC instant falls in `timezone`.

    Pure epoch arithmetic after `from_utc_timestamp`, so the result does not depend on
    the session time zone of whatever cluster runs the job.
    """
    ts_col = F.col(ts) if isinstance(ts, str) else ts
    if timezone in ("UTC", "Etc/UTC"):
        wall_clock_micros = F.unix_micros(ts_col)  # no zone rules to apply per row
    else:
        wall_clock_micros = F.unix_micros(F.from_utc_timestamp(ts_col, timezone))
    return F.floor(wall_clock_micros / _MICROS_PER_DAY).cast("int")


def local_date(ts: Column | str, timezone: str) -> Column:
    """The calendar date on which a UTC instant falls in `timezone` (see `local_epoch_day`)."""
    return F.date_from_unix_date(local_epoch_day(ts, timezone))


def month_index(day: Column | str) -> Column:
    """`year * 12 + month - 1` of a date column (see `Month`)."""
    day_col = F.col(day) if isinstance(day, str) else day
    return F.year(day_col) * 12 + F.month(day_col) - 1


def period_keys(month_idx: Column | str, grains: Sequence[Grain]) -> Column:
    """An array of (grain_idx, period_key) structs: every period a month row rolls up into.

    Integers, not labels: grouping on them is much cheaper than on strings, and labels are
    made once per output row afterwards (`period_label`).
    """
    idx = F.col(month_idx) if isinstance(month_idx, str) else month_idx
    return F.array(
        *[
            F.struct(F.lit(i).alias("grain_idx"), key.alias("period_key"))
            for i, grain in enumerate(grains)
            for key in grain.key_cols(idx)
        ]
    )


def grain_name(grain_idx: Column, grains: Sequence[Grain]) -> Column:
    return F.element_at(F.array(*[F.lit(grain.name) for grain in grains]), grain_idx + 1)


def period_label(grain_idx: Column, key: Column, grains: Sequence[Grain]) -> Column:
    """The label of the period of grain number `grain_idx` with key `key`."""
    label: Column = F.lit(None).cast("string")
    for i in reversed(range(len(grains))):
        label = F.when(grain_idx == i, grains[i].label_col(key)).otherwise(label)
    return label


def key_step(grain: Grain) -> int:
    """How far apart the keys of two consecutive periods are: months of a calendar period,
    one month for rolling windows (keyed by their last month), seven days for weeks."""
    if isinstance(grain, WeekGrain):
        return 7
    if isinstance(grain, CalendarGrain):
        return grain.months
    return 1


def keys_of_labels(grain: Grain, labels: Iterable[str]) -> dict[str, int]:
    """The key of each period label of `grain` (labels name their year: the periods of the
    years around it are tried; a label that is no period of the grain is left out)."""
    found: dict[str, int] = {}
    for label in labels:
        year = re.search(r"\d{4}", label)
        if year is None:
            continue
        first = Month.of(int(year.group()) - 2, 1).index
        for index in range(first, first + 48):
            for key in grain.keys_of(Month(index)):
                if grain.label(key) == label:
                    found[label] = key
        # (rolling labels name their last month, fiscal ones the year they end in: both
        # lie within the four years tried)
    return found
