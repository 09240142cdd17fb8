"""Tiers: the segment rule on hand-built periods, and cut points against exact quantiles."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from revseg.config import DEFAULT_LEVELS, Config, RfmConfig, TierLevel
from revseg.period_cuts import period_cuts
from revseg.periods import make_grains
from revseg.segmentation import segmented_rows, with_metric
from revseg.tiering import Tiering
from revseg.tiers import (
    assign_segments,
    cut_points,
    quantile_fractions,
    score_floors,
    tier_boundaries,
)

SCHEMA = "customer_id string, period_grain string, period string, revenue_cents long, orders long"


def periods(spark: SparkSession, rows: list[tuple[str, str, str, int]]) -> DataFrame:
    return spark.createDataFrame([(*row, 1) for row in rows], SCHEMA)


def names(levels: tuple[TierLevel, ...]) -> list[str]:
    return [level.name for level in levels]


def segments(
    frame: DataFrame, levels: tuple[TierLevel, ...] = DEFAULT_LEVELS, accuracy: int = 10000
) -> dict[str, str]:
    cuts = cut_points(frame, levels, accuracy)
    return {
        r["customer_id"]: r["segment"]
        for r in assign_segments(frame, cuts, names(levels)).collect()
    }


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
    result = tier_boundaries(assign_segments(frame, cuts, names(levels)), cuts, names(levels))
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
    rows = [(f"us{i}", "month", "2024-01", "US", i, 1) for i in range(1, 101)]
    rows += [("lu1", "month", "2024-01", "LU", 5, 1)]
    frame = spark.createDataFrame(
        rows,
        "customer_id string, period_grain string, period string, market string, "
        "revenue_cents long, orders long",
    )
    keys = ("period_grain", "period", "market")
    cuts = cut_points(frame, DEFAULT_LEVELS, 10000, keys)
    got = {
        r["customer_id"]: r["segment"]
        for r in assign_segments(frame, cuts, names(DEFAULT_LEVELS), keys).collect()
    }
    assert got["lu1"] == "platinum"  # alone in its market: the top of it
    us = Counter(segment for customer, segment in got.items() if customer.startswith("us"))
    assert us == {"platinum": 2, "gold": 9, "silver": 40, "bronze": 49}  # LU does not move US
    boundaries = tier_boundaries(
        assign_segments(frame, cuts, names(DEFAULT_LEVELS), keys), cuts, names(DEFAULT_LEVELS), keys
    ).collect()
    lu = {r["segment"]: r for r in boundaries if r["market"] == "LU"}
    assert lu["platinum"]["customers"] == 1 and lu["platinum"]["revenue_share"] == 1.0
    assert lu["bronze"]["customers"] == 0


# --- every method through the run's path: metric, cut points, segments, percentiles ------

ROW_SCHEMA = (
    "customer_id string, grain_idx int, period_key int, revenue_cents long, orders long, "
    "cost_cents long, cost_missing int"
)
MONTH = make_grains(("month",), 1)
JAN = 24288  # 2024-01


def tiered(
    spark: SparkSession, rows: list[tuple[str, int, int, int]], **settings: object
) -> dict[str, tuple[str, float | None]]:
    """customer -> (segment, value_percentile) for rows (customer, revenue cents, orders,
    cost cents) of January, tiered as `settings` (tiers.* keys) say."""
    frame = spark.createDataFrame(
        [(c, 0, JAN, revenue, orders, cost, 0) for c, revenue, orders, cost in rows], ROW_SCHEMA
    )
    tiering = Tiering.of(Config.from_dict({"tiers": settings}).tiers)
    periods = with_metric(frame, tiering.metric)
    cuts = period_cuts(spark, periods, MONTH, tiering)
    return {
        r["customer_id"]: (r["segment"], r["value_percentile"])
        for r in segmented_rows(periods, cuts, tiering).collect()
    }


def test_thresholds_fixed_amounts_with_a_floor(spark: SparkSession) -> None:
    rows = [("a", 600_000, 2, 0), ("b", 500_000, 1, 0), ("c", 49_999, 1, 0), ("d", 1, 1, 0)]
    rows += [("refunded", -100, 0, 0)]
    levels = [{"name": "vip", "min": 5000}, {"name": "regular", "min": "10.00"}]
    got = tiered(spark, rows, method="thresholds", thresholds=levels)
    assert {c: s for c, (s, _) in got.items()} == {
        "a": "vip",
        "b": "vip",  # exactly 5000.00 reaches vip
        "c": "regular",
        "d": "below_thresholds",
        "refunded": "no_revenue",
    }
    # without a min on the last level it takes the rest
    levels[-1] = {"name": "regular"}
    assert tiered(spark, rows, method="thresholds", thresholds=levels)["d"][0] == "regular"


def test_pareto_by_revenue(spark: SparkSession) -> None:
    # Highest first, a customer joins the first class whose share the ones before it have
    # not reached: w (0% before) A, x (70% before) A, y (90%) B, z (96%) C.
    rows = [("w", 70_000, 1, 0), ("x", 20_000, 1, 0), ("y", 6_000, 1, 0), ("z", 4_000, 1, 0)]
    got = tiered(spark, rows, method="pareto")
    assert {c: s for c, (s, _) in got.items()} == {"w": "A", "x": "A", "y": "B", "z": "C"}


def test_metrics_orders_aov_and_margin(spark: SparkSession) -> None:
    rows = [("many", 10_000, 10, 9_000), ("big", 50_000, 1, 10_000), ("mid", 20_000, 4, 20_500)]
    levels = [{"name": "top", "fraction": 0.34}, {"name": "rest", "fraction": 1.0}]
    by = {m: tiered(spark, rows, metric=m, levels=levels) for m in ("orders", "avg_order_value")}
    assert by["orders"]["many"][0] == "top" and by["orders"]["big"][0] == "rest"
    assert by["avg_order_value"]["big"][0] == "top" and by["avg_order_value"]["many"][0] == "rest"
    # margin: big 40_000, many 1_000, mid -500 (a negative margin ranks last, still tiered)
    margin = tiered(spark, rows, metric="margin", levels=levels)
    assert margin["big"][0] == "top" and margin["mid"][0] == "rest"
    assert margin["mid"][1] < margin["many"][1] < margin["big"][1] == 100.0


def test_value_percentile_ties_and_one_customer(spark: SparkSession) -> None:
    rows = [(f"c{i}", 100 * i, 1, 0) for i in range(1, 101)]
    got = tiered(spark, rows)
    assert got["c100"][1] == 100.0 and got["c1"][1] == 1.0 and got["c50"][1] == 50.0
    equal = tiered(spark, [(f"e{i}", 500, 1, 0) for i in range(5)] + [("none", 0, 0, 0)])
    assert {p for c, (_, p) in equal.items() if c != "none"} == {100.0}
    assert equal["none"] == ("no_revenue", None)
    assert tiered(spark, [("only", 1, 1, 0)]) == {"only": ("platinum", 100.0)}


# --- RFM: scores by middle rank, the score map, ties said out loud ----------------------

RFM_SCHEMA = f"{ROW_SCHEMA}, last_transaction_ts timestamp"


def rfm_tiered(
    spark: SparkSession, rows: list[tuple[str, int, int, int]], **settings: object
) -> tuple[dict[str, tuple[str, str | None]], tuple[dict[str, object], ...]]:
    """customer -> (segment, rfm_score) for rows (customer, revenue cents, orders, day of
    January of the last purchase), and the ties the run reports."""
    frame = spark.createDataFrame(
        [
            (c, 0, JAN, revenue, orders, 0, 0, datetime(2024, 1, day, 12))
            for c, revenue, orders, day in rows
        ],
        RFM_SCHEMA,
    )
    tiering = Tiering.of(Config.from_dict({"tiers": {"method": "rfm", **settings}}).tiers)
    periods = with_metric(frame, tiering.metric)
    cuts = period_cuts(spark, periods, MONTH, tiering)
    got = {
        r["customer_id"]: (r["segment"], r["rfm_score"])
        for r in segmented_rows(periods, cuts, tiering).collect()
    }
    return got, cuts.rfm_ties


def mid_rank_scores(values: list[int]) -> list[int]:
    """The documented rule, customer by customer: 1 + floor(5 * (below + equal / 2) / n)."""
    n = len(values)
    return [
        min(5, 1 + 5 * (2 * sum(w < v for w in values) + values.count(v)) // (2 * n))
        for v in values
    ]


def test_rfm_against_the_rule_on_random_customers(spark: SparkSession) -> None:
    rng = random.Random(5)
    n = 300
    # revenue on a 3% ladder, so that with relative_error 0.01 each amount is a bucket of
    # its own; many customers share a day or an order count, some an amount
    revenues = [int(1000 * 1.03 ** rng.randrange(120)) for _ in range(n)]
    orders = [rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 9]) for _ in range(n)]
    days = [rng.randint(1, 31) for _ in range(n)]
    rows = [(f"c{i}", revenues[i], orders[i], days[i]) for i in range(n)]
    got, _ = rfm_tiered(spark, rows)
    r, f, m = mid_rank_scores(days), mid_rank_scores(orders), mid_rank_scores(revenues)
    rfm = RfmConfig()
    for i in range(n):
        expected = (rfm.segment_of(r[i], f[i], m[i]), f"{r[i]}{f[i]}{m[i]}")
        assert got[f"c{i}"] == expected, (i, days[i], orders[i], revenues[i])
    assert len({score for _, score in got.values()}) > 30


def test_rfm_one_customer_and_everyone_equal(spark: SparkSession) -> None:
    got, ties = rfm_tiered(spark, [("only", 5_000, 2, 10)])
    assert got == {"only": ("need_attention", "333")}
    assert {t["measure"] for t in ties} == {"recency", "frequency", "monetary"}
    same, ties = rfm_tiered(spark, [(f"c{i}", 700, 1, 3) for i in range(8)])
    assert set(same.values()) == {("need_attention", "333")}
    assert [(t["measure"], t["scores"]) for t in ties] == [
        ("recency", [3]),
        ("frequency", [3]),
        ("monetary", [3]),
    ]
    assert ties[0]["period"] == "2024-01" and ties[0]["period_grain"] == "month"


def test_rfm_negative_revenue_takes_no_part(spark: SparkSession) -> None:
    rows = [(f"c{i}", 1000 * (i + 1), i + 1, i + 1) for i in range(5)]
    got, _ = rfm_tiered(spark, [*rows, ("refund", -2_000, 1, 31)])
    assert got["refund"] == ("no_revenue", None)
    # the refund's late day does not push the others down: five customers, five scores
    assert [got[f"c{i}"][1] for i in range(5)] == ["111", "222", "333", "444", "555"]
    assert got["c4"][0] == "champions" and got["c0"][0] == "lost"


def test_rfm_ties_across_a_fifth_leave_scores_unused(spark: SparkSession) -> None:
    # 70 customers with one order, 20 with two, 10 with three: middle ranks 35%, 80% and
    # 95% give frequency scores 2, 5 and 5, and the summary must say so
    counts = [1] * 70 + [2] * 20 + [3] * 10
    rows = [(f"c{i}", int(1000 * 1.03**i), k, 1 + i % 28) for i, k in enumerate(counts)]
    got, ties = rfm_tiered(spark, rows)
    assert {got[f"c{i}"][1][1] for i in range(100)} == {"2", "5"}
    assert [(t["measure"], t["scores"]) for t in ties] == [("frequency", [2, 5])]


def test_rfm_score_map_from_the_config(spark: SparkSession) -> None:
    segments = [
        {"name": "recent", "recency": [4, 5]},
        {"name": "big_spender", "monetary": [5]},
        {"name": "others"},
    ]
    rows = [(f"c{i}", 1000 * (i + 1), 1, i + 1) for i in range(4)]
    rows.append(("old_big", 99_000, 1, 1))
    got, _ = rfm_tiered(spark, rows, rfm={"segments": segments})
    # recency: old_big and c0 share day 1 (middle rank 20%: score 2); one order each: 3
    assert got["c3"] == ("recent", "534")
    assert got["old_big"] == ("big_spender", "235")
    assert got["c0"][0] == "others"


def test_score_floors_rule() -> None:
    # (bucket, customers, least value): three values held by 1, 1 and 8 customers of 10
    floors, used = score_floors([(3, 8, 30), (1, 1, 10), (2, 1, 20)])
    # middle ranks: 5% -> 1, 15% -> 1, 60% -> 4: score 4 and below it nothing else
    assert used == (1, 4)
    assert floors == [30, 30, 30, None]
    assert score_floors([(7, 4, 70)]) == ([70, 70, None, None], (3,))
    floors, used = score_floors([(i, 1, i) for i in range(10)])
    assert used == (1, 2, 3, 4, 5) and floors == [2, 4, 6, 8]
