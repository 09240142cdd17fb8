"""Tiers: the segment rule on hand-built periods, and cut points against exact quantiles."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from revseg.config import DEFAULT_LEVELS, TierLevel
from revseg.tiers import assign_segments, cut_points, quantile_fractions, tier_boundaries

SCHEMA = "customer_id string, period_grain string, period string, revenue_cents long"


def periods(spark: SparkSession, rows: list[tuple[str, str, str, int]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def segments(
    frame: DataFrame, levels: tuple[TierLevel, ...] = DEFAULT_LEVELS, accuracy: int = 10000
) -> dict[str, str]:
    cuts = cut_points(frame, levels, accuracy)
    return {r["customer_id"]: r["segment"] for r in assign_segments(frame, cuts, levels).collect()}


def test_quantile_fractions() -> None:
    assert quantile_fractions(DEFAULT_LEVELS) == [0.99, 0.9, 0.5, 0.0]


def test_hundred_customers_one_to_hundred(spark: SparkSession) -> None:
    # percentile_approx(p) is the smallest value v with at least p of the values <= v:
    # p99 = 99, p90 = 90, p50 = 50, p0 = 1. Revenue >= cut point reaches the level.
    frame = periods(spark, [(f"c{i}", "month", "2024-01", i) for i in range(1, 101)])
    counts = Counter(segments(frame).values())
    assert counts == {"platinum": 2, "gold": 9, "silver": 40, "bronze": 49}
    got = segments(frame)
    assert got["c99"] == "platinum" and got["c98"] == "gold" and got["c50"] == "silver"
    assert got["c49"] == "bronze" and got["c1"] == "bronze"


def test_ties_at_a_cut_point_go_up(spark: SparkSession) -> None:
    rows = [(f"c{i}", "month", "2024-01", 10) for i in range(10)] + [
        ("top", "month", "2024-01", 50)
    ]
    got = segments(periods(spark, rows))
    # p99 = 50 -> only 'top' is platinum. p90 = 10 (10 of 11 values, 90.9%, are <= 10), so
    # all ten tied customers reach gold: ties at a cut point go to the higher tier.
    assert got["top"] == "platinum"
    assert {got[f"c{i}"] for i in range(10)} == {"gold"}


def test_everyone_spends_the_same(spark: SparkSession) -> None:
    got = segments(periods(spark, [(f"c{i}", "month", "2024-01", 500) for i in range(7)]))
    assert set(got.values()) == {"platinum"}


def test_single_customer_period(spark: SparkSession) -> None:
    assert segments(periods(spark, [("only", "year", "2024", 1)])) == {"only": "platinum"}


def test_no_revenue_customers_are_left_out_of_quantiles(spark: SparkSession) -> None:
    rows = [
        ("zero", "month", "2024-01", 0),
        ("neg", "month", "2024-01", -500),
        ("pos", "month", "2024-01", 100),
        ("alone_neg", "month", "2024-02", -1),
    ]
    got = segments(periods(spark, rows))
    assert got == {
        "zero": "no_revenue",
        "neg": "no_revenue",
        "pos": "platinum",
        "alone_neg": "no_revenue",
    }


def test_periods_are_tiered_separately(spark: SparkSession) -> None:
    rows = [(f"a{i}", "month", "2024-01", i) for i in range(1, 101)]
    rows += [(f"b{i}", "month", "2024-02", 1000 * i) for i in range(1, 101)]
    got = segments(periods(spark, rows))
    assert got["a100"] == "platinum" and got["b100"] == "platinum"
    assert got["a1"] == "bronze" and got["b1"] == "bronze"


@pytest.mark.parametrize("accuracy", [100, 10000])
def test_cut_points_against_exact_quantiles(spark: SparkSession, accuracy: int) -> None:
    rng = random.Random(11)
    n = 20000
    revenues = [int(rng.lognormvariate(8, 1.6)) + 1 for _ in range(n)]
    frame = periods(spark, [(f"c{i}", "month", "2024-01", r) for i, r in enumerate(revenues)])
    cuts = cut_points(frame, DEFAULT_LEVELS, accuracy).first()
    assert cuts is not None
    for level, cut in zip(DEFAULT_LEVELS, cuts["cut_points"], strict=True):
        share_at_or_above = sum(r >= cut for r in revenues) / n
        assert abs(share_at_or_above - level.fraction) <= 1 / accuracy + 1 / n, (level, cut)


def test_tier_boundaries(spark: SparkSession) -> None:
    levels = (TierLevel("top", 0.5), TierLevel("rest", 1.0))
    rows = [
        ("a", "month", "2024-01", 100),
        ("b", "month", "2024-01", 300),
        ("c", "month", "2024-01", -50),
        ("d", "month", "2024-02", 700),
    ]
    frame = periods(spark, rows)
    cuts = cut_points(frame, levels, 10000)
    result = tier_boundaries(assign_segments(frame, cuts, levels), cuts, levels)
    got = {(r["period"], r["segment"]): r for r in result.collect()}
    assert set(got) == {
        ("2024-01", "top"),
        ("2024-01", "rest"),
        ("2024-01", "no_revenue"),
        ("2024-02", "top"),
        ("2024-02", "rest"),
    }
    top = got[("2024-01", "top")]
    # p50 of {100, 300} is 100: both reach 'top'; 'rest' is empty but present.
    assert (top["min_revenue"], top["customers"], top["revenue"]) == (
        Decimal("1.00"),
        2,
        Decimal("4.00"),
    )
    assert top["revenue_share"] == pytest.approx(400 / 350)
    assert got[("2024-01", "rest")]["customers"] == 0
    assert got[("2024-01", "no_revenue")]["revenue"] == Decimal("-0.50")
    assert got[("2024-01", "no_revenue")]["min_revenue"] is None
    assert got[("2024-02", "top")]["revenue_share"] == pytest.approx(1.0)


def test_tiers_within_groups_and_a_single_customer_market(spark: SparkSession) -> None:
    rows = [(f"us{i}", "month", "2024-01", "US", i) for i in range(1, 101)]
    rows += [("lu1", "month", "2024-01", "LU", 5)]
    frame = spark.createDataFrame(
        rows,
        "customer_id string, period_grain string, period string, market string, revenue_cents long",
    )
    keys = ("period_grain", "period", "market")
    cuts = cut_points(frame, DEFAULT_LEVELS, 10000, keys)
    got = {
        r["customer_id"]: r["segment"]
        for r in assign_segments(frame, cuts, DEFAULT_LEVELS, keys).collect()
    }
    assert got["lu1"] == "platinum"  # alone in its market: the top of it
    us = Counter(segment for customer, segment in got.items() if customer.startswith("us"))
    assert us == {"platinum": 2, "gold": 9, "silver": 40, "bronze": 49}  # LU does not move US
    boundaries = tier_boundaries(
        assign_segments(frame, cuts, DEFAULT_LEVELS, keys), cuts, DEFAULT_LEVELS, keys
    ).collect()
    lu = {r["segment"]: r for r in boundaries if r["market"] == "LU"}
    assert lu["platinum"]["customers"] == 1 and lu["platinum"]["revenue_share"] == 1.0
    assert lu["bronze"]["customers"] == 0
