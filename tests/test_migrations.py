"""Tier migrations: the pair rules on a designed history, the run's table against a plain
Python count over customer_segments, and a range run rewriting what follows its months."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.checks import unbalanced_pairs
from revseg.migrations import migration_counts_of, migration_targets
from revseg.months import Month
from revseg.names import SUPPORTED_GRAINS
from revseg.periods import keys_of_labels, make_grains
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, read_delta
from tests.references import expected_pairs, table_pairs

MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04")
INPUT = "customer_id string, period_grain string, period string, segment string, revenue_cents long"


def test_keys_of_labels_every_grain() -> None:
    for grain in make_grains(SUPPORTED_GRAINS, 4):
        keys = sorted(
            {
                k
                for i in range(Month.of(2023, 1).index, Month.of(2026, 1).index)
                for k in grain.keys_of(Month(i))
            }
        )
        found = keys_of_labels(grain, [grain.label(k) for k in keys] + ["nonsense"])
        assert found == {grain.label(k): k for k in keys}, grain.name


def test_targets_rewrite_what_follows_the_first_written_period() -> None:
    (month,) = make_grains(("month",))
    jan, feb, mar, apr = (Month.parse(m).index for m in MONTHS)
    # a run writing February, with January, March and April stored: the pairs into
    # February, March and April change; January's is not there (nothing before it)
    assert migration_targets(month, [feb], [jan, mar, apr]) == ([feb, mar, apr], [feb, mar, apr])
    # the first period of the data: replaced, no pair into it
    assert migration_targets(month, [jan, feb], []) == ([feb], [jan, feb])
    assert migration_targets(month, [], [jan]) == ([], [])


def test_pairs_on_a_designed_history(spark: SparkSession) -> None:
    history = {
        "stays": ["gold", "gold", "silver", None],  # ... then lapses in April
        "once": ["silver", None, None, None],  # lapses in February
        "returns": ["gold", None, "silver", "silver"],  # reactivated in March
        "late": [None, "silver", "silver", "silver"],  # new in February
        "refund_first": ["no_revenue", None, "gold", "gold"],  # no revenue before: new
    }
    revenue = {"gold": 900, "silver": 100, "no_revenue": -50}
    rows = [
        (customer, "month", month, segment, revenue[segment])
        for customer, segments in history.items()
        for month, segment in zip(MONTHS, segments, strict=True)
        if segment is not None
    ]
    grains = make_grains(("month",))
    got, replaced = migration_counts_of(
        spark, spark.createDataFrame(rows, INPUT), grains, {"month": set(MONTHS)}, {}
    )
    assert sorted(replaced) == list(MONTHS)
    pairs = {
        (r["to_period"], r["from_segment"], r["to_segment"]): (
            r["customers"],
            r["from_revenue"],
            r["to_revenue"],
        )
        for r in got
    }
    d = Decimal
    assert pairs == {
        ("2024-02", "gold", "gold"): (1, d("9.00"), d("9.00")),
        ("2024-02", "silver", "lapsed"): (1, d("1.00"), d("0.00")),
        ("2024-02", "gold", "lapsed"): (1, d("9.00"), d("0.00")),
        ("2024-02", "new", "silver"): (1, d("0.00"), d("1.00")),
        ("2024-02", "no_revenue", "lapsed"): (1, d("-0.50"), d("0.00")),
        ("2024-03", "gold", "silver"): (1, d("9.00"), d("1.00")),
        ("2024-03", "reactivated", "silver"): (1, d("0.00"), d("1.00")),
        ("2024-03", "silver", "silver"): (1, d("1.00"), d("1.00")),
        ("2024-03", "new", "gold"): (1, d("0.00"), d("9.00")),
        ("2024-04", "silver", "lapsed"): (1, d("1.00"), d("0.00")),
        ("2024-04", "silver", "silver"): (2, d("2.00"), d("2.00")),
        ("2024-04", "gold", "gold"): (1, d("9.00"), d("9.00")),
    }
    assert all(r["from_period"] == str(Month(Month.parse(r["to_period"]).index - 1)) for r in got)
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for _, grain, period, _, cents in rows:
        customers, total = totals.get((grain, period), (0, 0))
        totals[(grain, period)] = (customers + 1, total + cents)
    assert unbalanced_pairs(got, totals) == []
    # a lost customer shows
    assert unbalanced_pairs([r for r in got if r["to_segment"] != "lapsed"], totals)


def test_tier_migrations_of_a_run(full_run: Any) -> None:
    config, result = full_run
    out = Path(config.output.path)
    assert contract.TIER_MIGRATIONS in result.table_versions
    segments = read_delta(out / contract.CUSTOMER_SEGMENTS)
    migrations = read_delta(out / contract.TIER_MIGRATIONS)
    for grain in config.periods.grains:
        assert table_pairs(migrations, grain) == expected_pairs(segments, grain), grain
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in segments:
        revenue[(r["period_grain"], r["period"])] += r["revenue"]
    by_pair: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    for r in migrations:
        assert r["period"] == r["to_period"]
        sums = by_pair[(r["period_grain"], r["from_period"], r["to_period"])]
        sums[0] += r["from_revenue"]
        sums[1] += r["to_revenue"]
    assert by_pair
    for (grain, first, second), (from_revenue, to_revenue) in by_pair.items():
        assert from_revenue == revenue[(grain, first)]
        assert to_revenue == revenue[(grain, second)]


def test_a_range_run_rewrites_the_pairs_after_it(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = config_for(lake, out, "periods.grains=[month]", "insights.tier_migrations=true")
    run_segmentation(spark, config)
    full = read_delta(out / contract.TIER_MIGRATIONS)
    months = sorted({r["to_period"] for r in full})
    assert len(months) >= 4
    # the same months again, one in the middle: the table ends as the full run left it
    middle = Month.parse(months[len(months) // 2])
    result = run_segmentation(spark, config, middle, middle)
    assert result.periods == {"month": (str(middle),)}
    again = read_delta(out / contract.TIER_MIGRATIONS)
    key = "period_grain", "from_period", "to_period", "from_segment", "to_segment"

    def rows(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (*(r[k] for k in key), r["customers"], r["from_revenue"], r["to_revenue"])
            for r in found
        )

    assert rows(again) == rows(full)
    segments = read_delta(out / contract.CUSTOMER_SEGMENTS)
    assert table_pairs(again, "month") == expected_pairs(segments, "month")


@pytest.mark.parametrize(
    "setting", ["insights.tier_migrations=false", "insights.concentration=true"]
)
def test_migrations_can_be_turned_off(
    spark: SparkSession, lake: str, tmp_path: Path, setting: str
) -> None:
    out = tmp_path / "out"
    result = run_segmentation(spark, config_for(lake, out, "periods.grains=[year]", setting))
    assert contract.TIER_MIGRATIONS not in result.table_versions
    assert not (out / contract.TIER_MIGRATIONS).exists()
