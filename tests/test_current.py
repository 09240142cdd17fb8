"""customer_current_segment: the rule on a designed history, the run's table against a
plain Python reading of customer_segments, the CLV columns after a CLV run, and the export."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.cli import main
from revseg.current import current_segments
from revseg.months import Month
from tests.lakes import config_for, read_delta
from tests.references import expected_current

INPUT = (
    "customer_id string, period_grain string, period string, period_key int, step int, "
    "segment string, revenue_cents long, value_percentile double"
)


def test_current_segment_on_a_designed_history(spark: SparkSession) -> None:
    history = {
        "back_to_gold": ["gold", "gold", "silver", "gold", "gold"],
        "gap": ["gold", None, "gold", None, None],  # a month without a row breaks the run
        "refund_last": ["silver", "silver", "no_revenue", None, None],
        "never_paid": ["no_revenue", None, None, None, None],
        "steady": ["bronze"] * 5,
    }
    months = [Month.of(2024, m) for m in range(1, 6)]
    rows = [
        (c, "month", str(m), m.index, 1, s, -100 if s == "no_revenue" else 1000 * (i + 1), 50.0)
        for c, segments in history.items()
        for i, (m, s) in enumerate(zip(months, segments, strict=True))
        if s is not None
    ]
    got = {
        r["customer_id"]: (r["period"], r["segment"], r["segment_since"], r["revenue"])
        for r in current_segments(spark.createDataFrame(rows, INPUT)).collect()
    }
    assert got == {
        "back_to_gold": ("2024-05", "gold", "2024-04", Decimal("50.00")),
        "gap": ("2024-03", "gold", "2024-03", Decimal("30.00")),
        "refund_last": ("2024-02", "silver", "2024-01", Decimal("20.00")),
        "steady": ("2024-05", "bronze", "2024-01", Decimal("50.00")),
    }


def test_customer_current_segment_of_a_run(full_run: Any) -> None:
    config, result = full_run
    out = Path(config.output.path)
    assert contract.CUSTOMER_CURRENT_SEGMENT in result.table_versions
    segments = read_delta(out / contract.CUSTOMER_SEGMENTS)
    current = read_delta(out / contract.CUSTOMER_CURRENT_SEGMENT)
    for grain in config.periods.grains:
        got = {
            r["customer_id"]: (
                r["period"],
                r["segment"],
                r["segment_since"],
                r["revenue"],
                r["value_percentile"],
            )
            for r in current
            if r["period_grain"] == grain
        }
        assert got == expected_current(segments, grain), grain
    assert all(r["clv"] is None and r["clv_segment"] is None for r in current)


@pytest.mark.usefixtures("spark")
def test_export_current_as_csv_and_parquet(full_run: Any, tmp_path: Path) -> None:
    config, _ = full_run
    out = Path(config.output.path)
    table = read_delta(out / contract.CUSTOMER_CURRENT_SEGMENT)
    target = tmp_path / "crm"
    args = ["export", "current", "--set", f"output.path={out}", "--out", str(target)]
    assert main([*args, "--format", "csv", "--grain", "month"]) == 0
    (part,) = target.glob("part-*.csv")
    with part.open(newline="") as handle:
        exported = list(csv.DictReader(handle))
    months = [r for r in table if r["period_grain"] == "month"]
    assert len(exported) == len(months) > 0
    by_id = {r["customer_id"]: r for r in months}
    for row in exported:
        stored = by_id[row["customer_id"]]
        assert (row["segment"], Decimal(row["revenue"])) == (stored["segment"], stored["revenue"])
    # a second export to the same place needs --overwrite
    assert main([*args, "--format", "csv"]) == 2
    assert main([*args, "--format", "parquet", "--overwrite"]) == 0
    from pyarrow import parquet

    assert parquet.read_table(str(target)).num_rows == len(table)


def test_clv_run_refreshes_the_current_segments(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    pytest.importorskip("scipy")
    from revseg.clv_pipeline import run_clv

    out = tmp_path / "out"
    config = config_for(
        lake, out, "periods.grains=[quarter]", "insights.customer_current_segment=true"
    )
    from revseg.pipeline import run_segmentation

    run_segmentation(spark, config)
    # April's end: before it customers still drop out, so BG/NBD is identified
    result = run_clv(spark, config, date(2024, 4, 30))
    assert contract.CUSTOMER_CURRENT_SEGMENT in result.table_versions
    scores = {
        r["customer_id"]: r
        for r in read_delta(out / contract.CUSTOMER_CLV)
        if r["calibration_end"] == result.calibration_end
    }
    current = read_delta(out / contract.CUSTOMER_CURRENT_SEGMENT)
    assert current
    for row in current:
        score = scores.get(row["customer_id"])
        if score is None:
            assert row["clv"] is None
            continue
        assert (row["clv"], row["p_alive"], row["clv_segment"]) == (
            score["clv"],
            score["p_alive"],
            score["clv_segment"],
        )
        assert row["calibration_end"] == result.calibration_end
    assert sum(row["clv"] is not None for row in current) > len(current) / 2
    # predicted_clv: each period ranked by the score of the latest calibration date at or
    # before its last day; the periods before it have none (no_metric)
    ranked = config_for(
        lake,
        out,
        "periods.grains=[quarter]",
        "tiers.metric=predicted_clv",
        "insights.customer_current_segment=true",
    )
    run_segmentation(spark, ranked)
    last_day = {"2024-Q1": date(2024, 3, 31), "2024-Q2": date(2024, 6, 30)}
    by_segment: dict[str, list[Decimal]] = defaultdict(list)
    rows = read_delta(out / contract.CUSTOMER_SEGMENTS)
    assert {r["period"] for r in rows} == set(last_day)
    for row in rows:
        score = scores.get(row["customer_id"])
        served = result.calibration_end <= last_day[row["period"]]
        if row["revenue"] <= 0:
            assert row["segment"] == "no_revenue"
        elif score is None or not served:
            assert row["segment"] == "no_metric", row
        else:
            by_segment[row["segment"]].append(score["clv"])
    assert set(by_segment) == {"platinum", "gold", "silver", "bronze"}
    levels = ["platinum", "gold", "silver", "bronze"]
    for higher, lower in pairwise(levels):
        assert min(by_segment[higher]) >= max(by_segment[lower]), (higher, lower)
    bounds = {
        (r["period"], r["segment"]): r["min_metric"]
        for r in read_delta(out / contract.TIER_BOUNDARIES)
    }
    assert all(r["metric"] == "predicted_clv" for r in read_delta(out / contract.TIER_BOUNDARIES))
    assert bounds[("2024-Q2", "bronze")] == min(by_segment["bronze"])
