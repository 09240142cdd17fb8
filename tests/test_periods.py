"""Periods: the driver's plan and Spark's labels agree; local dates follow the time zone."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg.checks import incomplete_windows, periods_begun_before
from revseg.periods import (
    GRAINS,
    SUPPORTED_GRAINS,
    Month,
    day_of,
    local_date,
    make_grains,
    monday_of,
    month_index,
    period_keys,
    plan_periods,
    week_key,
)


def test_month_parse_and_arithmetic() -> None:
    march = Month.parse("2024-03")
    assert (march.year, march.month, str(march)) == (2024, 3, "2024-03")
    assert str(march + 10) == "2025-01"
    assert march.last_day() == date(2024, 3, 31)
    assert Month.parse("2024-02").last_day() == date(2024, 2, 29)
    for bad in ("2024-13", "2024-3", "24-03", "march", "0001-01", "9999-12"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            Month.parse(bad)


def test_one_month_plan_rewrites_its_quarter_and_year() -> None:
    plan = plan_periods(
        make_grains(("month", "quarter", "year")), Month.parse("2024-03"), Month.parse("2024-03")
    )
    assert plan.periods == {"month": ("2024-03",), "quarter": ("2024-Q1",), "year": ("2024",)}
    assert (str(plan.read_from), str(plan.read_to)) == ("2024-01", "2024-12")
    assert [str(m) for m in plan.months_of(GRAINS["quarter"])] == ["2024-01", "2024-02", "2024-03"]


def test_range_across_years() -> None:
    plan = plan_periods(
        make_grains(("month", "quarter")), Month.parse("2023-11"), Month.parse("2024-02")
    )
    assert plan.periods["month"] == ("2023-11", "2023-12", "2024-01", "2024-02")
    assert plan.periods["quarter"] == ("2023-Q4", "2024-Q1")
    assert (str(plan.read_from), str(plan.read_to)) == ("2023-10", "2024-03")


MONTH_GRAINS = tuple(g for g in SUPPORTED_GRAINS if g != "week")  # keyed by month index


@pytest.mark.parametrize("fiscal_start", [1, 4, 10])
def test_spark_labels_match_driver_labels(spark: SparkSession, fiscal_start: int) -> None:
    grains = make_grains(MONTH_GRAINS, fiscal_start)
    keys = range(Month.parse("1999-01").index, Month.parse("2031-12").index)
    frame = spark.createDataFrame([(k,) for k in keys], "k int")
    labels = frame.select("k", *[g.label_col(F.col("k")).alias(g.name) for g in grains]).collect()
    for row in labels:
        for grain in grains:
            assert row[grain.name] == grain.label(row["k"]), (grain.name, row["k"])


def test_spark_period_keys_match_driver_keys(spark: SparkSession) -> None:
    grains = make_grains(MONTH_GRAINS, 7)
    months = range(Month.parse("2023-01").index, Month.parse("2025-12").index)
    frame = spark.createDataFrame([(m,) for m in months], "m int")
    rows = frame.select("m", F.inline(period_keys("m", grains))).collect()
    got: dict[int, set[tuple[int, int]]] = {}
    for row in rows:
        got.setdefault(row["m"], set()).add((row["grain_idx"], row["period_key"]))
    for m in months:
        expected = {(i, k) for i, g in enumerate(grains) for k in g.keys_of(Month(m))}
        assert got[m] == expected


@pytest.mark.parametrize(
    ("fiscal_start", "month", "fiscal_quarter", "fiscal_year", "quarter_months"),
    [
        (1, "2024-01", "FY2024-Q1", "FY2024", ("2024-01", "2024-03")),
        (1, "2024-12", "FY2024-Q4", "FY2024", ("2024-10", "2024-12")),
        (4, "2024-03", "FY2024-Q4", "FY2024", ("2024-01", "2024-03")),
        (4, "2024-04", "FY2025-Q1", "FY2025", ("2024-04", "2024-06")),
        (4, "2025-03", "FY2025-Q4", "FY2025", ("2025-01", "2025-03")),
        (2, "2024-01", "FY2024-Q4", "FY2024", ("2023-11", "2024-01")),
        (2, "2024-02", "FY2025-Q1", "FY2025", ("2024-02", "2024-04")),
    ],
)
def test_fiscal_periods_are_named_by_the_year_they_end(
    fiscal_start: int,
    month: str,
    fiscal_quarter: str,
    fiscal_year: str,
    quarter_months: tuple[str, str],
) -> None:
    fq, fy = make_grains(("fiscal_quarter", "fiscal_year"), fiscal_start)
    m = Month.parse(month)
    (q_key,), (y_key,) = fq.keys_of(m), fy.keys_of(m)
    assert (fq.label(q_key), fy.label(y_key)) == (fiscal_quarter, fiscal_year)
    assert tuple(str(x) for x in fq.span(q_key)) == quarter_months
    first, last = fy.span(y_key)
    assert last.index - first.index == 11 and first.month == fiscal_start


def test_rolling_windows_plan_reads_the_lookback() -> None:
    grains = make_grains(("month", "rolling_3m", "rolling_12m"))
    plan = plan_periods(grains, Month.parse("2024-06"), Month.parse("2024-07"))
    assert plan.periods["rolling_3m"] == ("L3M-2024-06", "L3M-2024-07")
    assert plan.periods["rolling_12m"] == ("L12M-2024-06", "L12M-2024-07")
    assert (str(plan.read_from), str(plan.read_to)) == ("2023-07", "2024-07")


def test_incomplete_windows_lack_history_or_run_past_the_data() -> None:
    grains = make_grains(("month", "rolling_3m"))
    windows = [g for g in grains if g.rolling]
    skipped = incomplete_windows(
        windows, Month.parse("2024-01").index, Month.parse("2024-06").index
    )
    assert skipped == {"L3M-2024-01", "L3M-2024-02", "L3M-2024-07", "L3M-2024-08"}


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        (datetime(2024, 3, 31, 23, 30, tzinfo=timezone.utc), "UTC", date(2024, 3, 31)),
        (datetime(2024, 3, 31, 23, 30, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 4, 1)),
        (datetime(2024, 4, 1, 3, 0, tzinfo=timezone.utc), "America/New_York", date(2024, 3, 31)),
        (datetime(2024, 12, 31, 15, 0, tzinfo=timezone.utc), "Asia/Tokyo", date(2025, 1, 1)),
        # The last hour of a month, east and west of UTC.
        (datetime(2024, 4, 30, 14, 59, tzinfo=timezone.utc), "Asia/Tokyo", date(2024, 4, 30)),
        (datetime(2024, 4, 30, 15, 0, tzinfo=timezone.utc), "Asia/Tokyo", date(2024, 5, 1)),
        (
            datetime(2024, 5, 1, 6, 59, tzinfo=timezone.utc),
            "America/Los_Angeles",
            date(2024, 4, 30),
        ),
        (datetime(2024, 5, 1, 7, 0, tzinfo=timezone.utc), "America/Los_Angeles", date(2024, 5, 1)),
        # Daylight saving: Berlin springs forward at 01:00 UTC on 2024-03-31 (UTC+1 -> +2).
        (datetime(2024, 3, 31, 21, 59, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 3, 31)),
        (datetime(2024, 3, 31, 22, 0, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 4, 1)),
        # ... and falls back at 01:00 UTC on 2024-10-27; October ends at 23:00 UTC (UTC+1).
        (datetime(2024, 10, 31, 22, 59, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 10, 31)),
        (datetime(2024, 10, 31, 23, 0, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 11, 1)),
        # New York: spring forward 2024-03-10 07:00 UTC, fall back 2024-11-03 06:00 UTC.
        (datetime(2024, 3, 10, 6, 59, tzinfo=timezone.utc), "America/New_York", date(2024, 3, 10)),
        (datetime(2024, 3, 11, 3, 59, tzinfo=timezone.utc), "America/New_York", date(2024, 3, 10)),
        (datetime(2024, 11, 3, 4, 59, tzinfo=timezone.utc), "America/New_York", date(2024, 11, 3)),
        (datetime(2024, 11, 4, 4, 59, tzinfo=timezone.utc), "America/New_York", date(2024, 11, 3)),
        (datetime(2024, 11, 4, 5, 0, tzinfo=timezone.utc), "America/New_York", date(2024, 11, 4)),
    ],
)
def test_local_date_in_time_zone(
    spark: SparkSession, instant: datetime, zone: str, expected: date
) -> None:
    frame = spark.createDataFrame([(instant,)], "ts timestamp")
    row = frame.select(
        local_date("ts", zone).alias("d"), month_index(local_date("ts", zone))
    ).first()
    assert row is not None
    assert row["d"] == expected
    assert row[1] == Month.of_date(expected).index


def test_local_date_ignores_session_time_zone(spark: SparkSession) -> None:
    instant = datetime(2024, 3, 31, 23, 30, tzinfo=timezone.utc)
    frame = spark.createDataFrame([(instant,)], "ts timestamp")
    before = spark.conf.get("spark.sql.session.timeZone")
    try:
        spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
        row = frame.select(local_date("ts", "UTC").alias("d")).first()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before or "UTC")
    assert row is not None and row["d"] == date(2024, 3, 31)


@given(
    first=st.integers(Month.parse("1990-01").index, Month.parse("2060-12").index),
    length=st.integers(0, 40),
    names=st.lists(st.sampled_from(SUPPORTED_GRAINS), min_size=1, max_size=4, unique=True),
    fiscal_start=st.integers(1, 12),
)
def test_plan_covers_exactly_the_periods_of_the_range(
    first: int, length: int, names: list[str], fiscal_start: int
) -> None:
    start, end = Month(first), Month(first + length)
    grains = make_grains(names, fiscal_start)
    plan = plan_periods(grains, start, end)
    months = [Month(i) for i in range(start.index, end.index + 1)]
    for grain in grains:
        if grain.rolling:  # the windows that end in the range
            wanted = {grain.label(m.index) for m in months}
        else:  # every period that overlaps the range
            wanted = {grain.label(k) for m in months for k in grain.keys_of(m)}
        assert set(plan.periods[grain.name]) == wanted
        low, high = plan.key_ranges[grain.name]
        assert plan.read_from <= grain.span(low)[0] and grain.span(high)[1] <= plan.read_to
    assert plan.read_from <= start and end <= plan.read_to


def test_iso_weeks_keys_labels_and_spans(spark: SparkSession) -> None:
    (week,) = make_grains(("week",))
    cases = {
        date(2024, 12, 30): "2025-W01",  # Monday of ISO week 1 of 2025
        date(2021, 1, 3): "2020-W53",  # a Sunday in the 53rd week of 2020
        date(2021, 1, 4): "2021-W01",
        date(2024, 2, 4): "2024-W05",
    }
    for day, label in cases.items():
        key = monday_of((day - date(1970, 1, 1)).days)
        assert week.label(key) == label and day_of(key).weekday() == 0
        assert day_of(key) <= day <= week.last_day(key)
    # Spark names every Monday from 1999 to 2031 as the driver does, and finds its Monday.
    mondays = range(monday_of(10_592), 22_280, 7)
    frame = spark.createDataFrame([(k,) for k in mondays], "k int")
    rows = frame.select("k", week.label_col(F.col("k")).alias("label")).collect()
    assert all(row["label"] == week.label(row["k"]) for row in rows)
    days = spark.range(10_590, 10_700).select(
        F.col("id").cast("int").alias("d"), week_key(F.col("id").cast("int")).alias("w")
    )
    assert all(row["w"] == monday_of(row["d"]) for row in days.collect())
    # A month's weeks: every week with a day in it; the plan reads whole weeks.
    february = Month.parse("2024-02")
    assert [week.label(k) for k in week.keys_of(february)] == [
        f"2024-W{n:02d}" for n in range(5, 10)
    ]
    plan = plan_periods((week,), february, february)
    assert (str(plan.read_from), str(plan.read_to)) == ("2024-01", "2024-03")


def test_periods_begun_before_a_first_day_are_those_that_straddle_it() -> None:
    """With the source's days before 2024-03-01 removed, the periods that held those days
    and may hold later ones (a partition day holds rows of the days either side)."""
    grains = make_grains(
        ["week", "month", "quarter", "year", "fiscal_quarter", "rolling_3m"],
        fiscal_year_start_month=4,
    )
    assert periods_begun_before(grains, date(2024, 3, 1)) == {
        "2024-W09",  # Monday 26 February to Sunday 3 March
        "2024-02",
        "2024-03",
        "2024-Q1",
        "2024",
        "FY2024-Q4",  # January to March, of the fiscal year ending in March 2024
        "L3M-2024-02",
        "L3M-2024-03",
        "L3M-2024-04",
        "L3M-2024-05",
    }
    assert periods_begun_before(make_grains(["month"]), date(2024, 3, 16)) == {"2024-03"}
