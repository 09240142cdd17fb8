"""Periods: the driver's plan and Spark's labels agree; local dates follow the time zone."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg.periods import GRAINS, Month, local_date, month_index, plan_periods


def test_month_parse_and_arithmetic() -> None:
    march = Month.parse("2024-03")
    assert (march.year, march.month, str(march)) == (2024, 3, "2024-03")
    assert str(march + 10) == "2025-01"
    assert march.last_day() == date(2024, 3, 31)
    assert Month.parse("2024-02").last_day() == date(2024, 2, 29)
    for bad in ("2024-13", "2024-3", "24-03", "march"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            Month.parse(bad)


def test_one_month_plan_rewrites_its_quarter_and_year() -> None:
    plan = plan_periods(
        ("month", "quarter", "year"), Month.parse("2024-03"), Month.parse("2024-03")
    )
    assert plan.periods == {"month": ("2024-03",), "quarter": ("2024-Q1",), "year": ("2024",)}
    assert (str(plan.read_from), str(plan.read_to)) == ("2024-01", "2024-12")
    assert [str(m) for m in plan.months_of("quarter")] == ["2024-01", "2024-03"]


def test_range_across_years() -> None:
    plan = plan_periods(("month", "quarter"), Month.parse("2023-11"), Month.parse("2024-02"))
    assert plan.periods["month"] == ("2023-11", "2023-12", "2024-01", "2024-02")
    assert plan.periods["quarter"] == ("2023-Q4", "2024-Q1")
    assert (str(plan.read_from), str(plan.read_to)) == ("2023-10", "2024-03")


def test_spark_labels_match_driver_labels(spark: SparkSession) -> None:
    months = [Month(i) for i in range(Month.parse("1999-01").index, Month.parse("2031-12").index)]
    frame = spark.createDataFrame([(m.index,) for m in months], "month_idx int")
    labels = frame.select(
        "month_idx", *[GRAINS[g].label_col(F.col("month_idx")).alias(g) for g in GRAINS]
    ).collect()
    for row in labels:
        month = Month(row["month_idx"])
        for grain in GRAINS:
            assert row[grain] == GRAINS[grain].label(month), (grain, str(month))


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        (datetime(2024, 3, 31, 23, 30, tzinfo=timezone.utc), "UTC", date(2024, 3, 31)),
        (datetime(2024, 3, 31, 23, 30, tzinfo=timezone.utc), "Europe/Berlin", date(2024, 4, 1)),
        (datetime(2024, 4, 1, 3, 0, tzinfo=timezone.utc), "America/New_York", date(2024, 3, 31)),
        (datetime(2024, 12, 31, 15, 0, tzinfo=timezone.utc), "Asia/Tokyo", date(2025, 1, 1)),
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
    grains=st.lists(st.sampled_from(sorted(GRAINS)), min_size=1, max_size=3, unique=True),
)
def test_plan_covers_exactly_the_overlapping_periods(
    first: int, length: int, grains: list[str]
) -> None:
    start, end = Month(first), Month(first + length)
    plan = plan_periods(grains, start, end)
    for name in grains:
        grain = GRAINS[name]
        overlapping = {grain.label(Month(i)) for i in range(start.index, end.index + 1)}
        assert set(plan.periods[name]) == overlapping
        for i in range(start.index, end.index + 1):
            span_first, span_last = grain.span(Month(i))
            assert plan.read_from <= span_first and span_last <= plan.read_to
    assert plan.read_from <= start and end <= plan.read_to
