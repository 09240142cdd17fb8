"""The summary tables of a run (segment_summary, concentration) and value_percentile, read
back with delta-rs and checked against exact computations over customer_segments."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, read_delta
from tests.test_histogram import exact_gini, exact_lorenz


def by_period(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[(row["period_grain"], row["period"])].append(row)
    return found


def test_segment_summary_adds_up_to_the_segments(full_run: Any) -> None:
    config, result = full_run
    out = Path(config.output.path)
    assert contract.SEGMENT_SUMMARY in result.table_versions
    summary = read_delta(out / contract.SEGMENT_SUMMARY)
    segments = by_period(read_delta(out / contract.CUSTOMER_SEGMENTS))
    boundaries = {
        (r["period"], r["segment"]): r for r in read_delta(out / contract.TIER_BOUNDARIES)
    }
    assert {r["period"] for r in summary} == {p for _, p in segments}
    for row in summary:
        members = [
            r
            for r in segments[(row["period_grain"], row["period"])]
            if r["segment"] == row["segment"]
        ]
        assert (
            row["customers"]
            == len(members)
            == boundaries[(row["period"], row["segment"])]["customers"]
        )
        assert row["revenue"] == sum((r["revenue"] for r in members), Decimal(0))
        assert row["orders"] == sum(r["orders"] for r in members)
        assert row["metric"] == "revenue"
        if members:
            mean = sum((r["revenue"] for r in members), Decimal(0)) / len(members)
            assert row["mean_metric"] == mean.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
            revenues = sorted(r["revenue"] for r in members)
            # approximate median: a value of the segment within its middle 2%
            assert row["median_metric"] in revenues
            rank = revenues.index(row["median_metric"])
            assert abs(rank - len(revenues) / 2) <= 0.01 * len(revenues) + 1
    for key, rows in by_period(summary).items():
        assert sum(r["customer_share"] for r in rows) == pytest.approx(1.0)
        assert sum(r["customers"] for r in rows) == len(segments[key])


def test_concentration_against_the_exact_figures(full_run: Any) -> None:
    config, _ = full_run
    out = Path(config.output.path)
    segments = by_period(read_delta(out / contract.CUSTOMER_SEGMENTS))
    rows = read_delta(out / contract.CONCENTRATION)
    assert {(r["period_grain"], r["period"]) for r in rows} == set(segments)
    for row in rows:
        cents = [int(r["revenue"] * 100) for r in segments[(row["period_grain"], row["period"])]]
        positive = [c for c in cents if c > 0]
        error = row["relative_error"]
        assert row["customers"] == len(positive)
        assert row["revenue"] == Decimal(sum(positive)) / 100
        gini = exact_gini(positive)
        assert gini - error / 2 <= row["gini"] <= gini + 1e-9
        for q in (1, 10, 20):
            exact = 1 - exact_lorenz(positive, 1 - q / 100)
            got = row[f"top_{q}pct_share"]
            assert exact - error * exact - 1e-9 <= got <= exact + 1e-9
        assert len(row["lorenz"]) == 101
        for point in row["lorenz"]:
            exact = exact_lorenz(positive, point["customer_share"])
            assert exact - 1e-9 <= point["revenue_share"] <= exact + error * (1 - exact) + 1e-9


def test_value_percentile_is_the_share_at_or_below(full_run: Any) -> None:
    config, _ = full_run
    error = config.tiers.relative_error
    segments = by_period(read_delta(Path(config.output.path) / contract.CUSTOMER_SEGMENTS))
    for rows in segments.values():
        ranked = sorted(r["revenue"] for r in rows if r["revenue"] > 0)
        for row in rows:
            if row["revenue"] <= 0:
                assert row["value_percentile"] is None
                continue
            # values within a factor (1 + e) may count as equal: between the exact share
            # at or below v / (1 + e) and at or below v (1 + e)
            low = sum(v <= row["revenue"] / Decimal(1 + error) for v in ranked)
            high = sum(v <= row["revenue"] * Decimal(1 + error) for v in ranked)
            # (stored rounded to 4 decimals)
            assert 100 * low / len(ranked) - 1e-4 <= row["value_percentile"]
            assert row["value_percentile"] <= 100 * high / len(ranked) + 1e-4


def test_pareto_run_without_summaries(spark: SparkSession, lake: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = config_for(
        lake,
        out,
        "periods.grains=[year]",
        "tiers.method=pareto",
        "insights.segment_summary=false",
        "insights.concentration=false",
    )
    result = run_segmentation(spark, config)
    assert set(result.table_versions) >= {contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES}
    assert not (out / contract.SEGMENT_SUMMARY).exists()
    assert not (out / contract.CONCENTRATION).exists()
    for rows in by_period(read_delta(out / contract.CUSTOMER_SEGMENTS)).values():
        positive = [r for r in rows if r["revenue"] > 0]
        total = sum(r["revenue"] for r in positive)
        a_share = sum(r["revenue"] for r in positive if r["segment"] == "A") / total
        a_least = min(r["revenue"] for r in positive if r["segment"] == "A")
        # A brings about 80%: at least 80%, and without its least customer(s) of one
        # histogram bucket it would be below 80%
        assert a_share >= Decimal("0.8")
        near = [
            r["revenue"]
            for r in positive
            if r["segment"] == "A" and r["revenue"] <= a_least * Decimal("1.01")
        ]
        assert a_share - sum(near) / total < Decimal("0.8")
        assert {r["segment"] for r in rows} <= {"A", "B", "C", "no_revenue"}
    boundaries = read_delta(out / contract.TIER_BOUNDARIES)
    assert {r["segment"] for r in boundaries} >= {"A", "B", "C"}
    assert all(r["metric"] == "revenue" for r in boundaries)


def mid_rank(values: list[int]) -> dict[int, int]:
    """value -> its RFM score by the documented rule (middle rank, equal values together)."""
    n = len(values)
    below = 0
    scores = {}
    for value in sorted(set(values)):
        equal = values.count(value)
        scores[value] = min(5, 1 + 5 * (2 * below + equal) // (2 * n))
        below += equal
    return scores


def test_rfm_run(spark: SparkSession, lake: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = config_for(
        lake, out, "periods.grains=[quarter]", "tiers.method=rfm", "insights.segment_summary=true"
    )
    result = run_segmentation(spark, config)
    names = set(config.tiers.segment_names())
    periods = by_period(read_delta(out / contract.CUSTOMER_SEGMENTS))
    assert periods
    for rows in periods.values():
        ranked = [r for r in rows if r["revenue"] > 0]
        # recency is exact: fewer days since the last purchase scores higher; so is
        # frequency
        recency = mid_rank([-r["recency_days"] for r in ranked])
        frequency = mid_rank([r["orders"] for r in ranked])
        for row in rows:
            if row["revenue"] <= 0:
                assert (row["segment"], row["rfm_score"]) == ("no_revenue", None)
                continue
            r, f, m = (int(digit) for digit in row["rfm_score"])
            assert (r, f) == (recency[-row["recency_days"]], frequency[row["orders"]])
            assert row["segment"] == config.tiers.rfm.segment_of(r, f, m)
        assert {r["segment"] for r in ranked} <= names
        # monetary by the histogram: a higher revenue never scores lower
        by_revenue = sorted(ranked, key=lambda r: r["revenue"])
        digits = [int(r["rfm_score"][2]) for r in by_revenue]
        assert digits == sorted(digits) and len(set(digits)) == 5
    summary = {r["segment"] for r in read_delta(out / contract.SEGMENT_SUMMARY)}
    assert summary <= names | {"no_revenue"}
    reported = {(t["period"], t["measure"]) for t in result.rfm_ties}
    for (_, period), rows in periods.items():
        ranked = [r for r in rows if r["revenue"] > 0]
        used = set(mid_rank([r["orders"] for r in ranked]).values())
        assert ((period, "frequency") in reported) == (len(used) < 5)
