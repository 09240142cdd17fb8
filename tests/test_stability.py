"""Stable tiers: the rules on designed series (hysteresis, confirmation, gaps, a jump over
a tier, a stored seed), a plain Python reading of the rules on noisy series, and runs: a
range run seeded from the stored periods gives the tiers of the full run."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.errors import ConfigError
from revseg.months import Month
from revseg.periods import make_grains
from revseg.pipeline import run_segmentation
from revseg.stability import Stability, stable_segments
from tests.lakes import config_for, read_delta, write_lake

SEGMENTED = (
    "customer_id string, grain_idx int, period_key int, segment string, metric_value long, "
    "revenue_cents long"
)
CUTS = "grain_idx int, period_key int, cut_points array<bigint>"
SEEDS = (
    "customer_id string, grain_idx int, period_key int, segment string, "
    "pending_segment string, pending_periods int"
)
GRAINS = make_grains(("month",))


def raw_tier(value: int, cuts: list[int], names: tuple[str, ...]) -> str:
    for name, cut in zip(names[:-1], cuts, strict=False):
        if value >= cut:
            return name
    return names[-1]


def run_fold(
    spark: SparkSession,
    series: dict[str, list[tuple[int, int]]],
    cuts: list[int],
    names: tuple[str, ...],
    stability: Stability,
    seeds: list[tuple[Any, ...]] | None = None,
) -> dict[str, list[str]]:
    """customer -> stable segments in period order, from (period_key, value) series whose
    periods all have the same cut points."""
    keys = sorted({key for points in series.values() for key, _ in points})
    rows = [
        (customer, 0, key, raw_tier(value, cuts, names), value, value)
        for customer, points in series.items()
        for key, value in points
    ]
    frame = stable_segments(
        spark.createDataFrame(rows, SEGMENTED),
        spark.createDataFrame([(0, key, cuts) for key in keys], CUTS),
        names,
        GRAINS,
        (),
        stability,
        spark.createDataFrame(seeds, SEEDS) if seeds else None,
    )
    found: dict[str, list[tuple[int, str]]] = {}
    for row in frame.collect():
        found.setdefault(row["customer_id"], []).append((row["period_key"], row["segment"]))
    return {customer: [s for _, s in sorted(points)] for customer, points in found.items()}


NOISY = [1200, 990, 1010, 950, 880, 1050, 1150, 1120]


def test_hysteresis_and_confirmation_on_a_designed_series(spark: SparkSession) -> None:
    names = ("vip", "rest")
    series = {"c": list(enumerate(NOISY))}
    v, r = "vip", "rest"
    assert run_fold(spark, series, [1000], names, Stability(0.0, 1)) == {
        "c": [v, r, v, r, r, v, v, v]  # the cut points alone: four flips
    }
    # hysteresis 10%: down only below 900, back up only from 1100
    assert run_fold(spark, series, [1000], names, Stability(0.1, 1)) == {
        "c": [v, v, v, v, r, r, v, v]
    }
    # two periods to confirm: one-period dips are held back
    assert run_fold(spark, series, [1000], names, Stability(0.0, 2)) == {
        "c": [v, v, v, v, r, r, v, v]
    }


def test_gaps_jumps_and_seeds(spark: SparkSession) -> None:
    names = ("gold", "silver", "bronze")
    cuts = [5000, 1000]
    # a gap: the period before is missing, so the cut points alone decide
    got = run_fold(
        spark, {"gap": [(0, 1200), (2, 990)]}, [1000], ("vip", "rest"), Stability(0.1, 1)
    )
    assert got == {"gap": ["vip", "rest"]}
    # from bronze, 5,200 reaches gold by the cut points but not by 10%: silver it is
    got = run_fold(
        spark, {"jump": [(0, 500), (1, 5200), (2, 5600)]}, cuts, names, Stability(0.1, 1)
    )
    assert got == {"jump": ["bronze", "silver", "gold"]}
    # a stored seed: vip with a move to rest pending for one period already
    seeds = [("s", 0, -1, "vip", "rest", 1), ("t", 0, -1, "vip", None, None)]
    got = run_fold(
        spark, {"s": [(0, 990)], "t": [(0, 990)]}, [1000], ("vip", "rest"), Stability(0.0, 2), seeds
    )
    assert got == {"s": ["rest"], "t": ["vip"]}


def reference(
    values: list[int], cuts: list[int], names: tuple[str, ...], h: float, k: int
) -> list[str]:
    """The rules, read plainly, over consecutive periods."""
    out, stable, pending, count = [], None, None, 0
    for value in values:
        raw = names.index(raw_tier(value, cuts, names))
        if stable is None:
            candidate = raw
        elif raw < stable:
            ups = [j for j in range(raw, stable) if value >= cuts[j] * (1 + h)]
            candidate = min(ups, default=stable)
        elif raw > stable:
            downs = [j for j in range(stable + 1, raw + 1) if value < cuts[j - 1] * (1 - h)]
            candidate = max(downs, default=stable)
        else:
            candidate = stable
        counted = count + 1 if candidate == pending else 1
        if stable is None or candidate == stable or counted >= k:
            stable, pending, count = candidate, None, 0
        else:
            pending, count = candidate, counted
        out.append(names[stable])
    return out


def flips(segments: list[str]) -> int:
    return sum(a != b for a, b in pairwise(segments))


def test_noisy_series_against_the_rules_read_plainly(spark: SparkSession) -> None:
    names, cuts = ("gold", "silver", "bronze"), [5000, 1000]
    rng = random.Random(7)
    series = {}
    for n in range(40):
        centre = rng.choice([1000, 5000, 3000])
        series[f"c{n}"] = [int(centre * rng.uniform(0.85, 1.15)) for _ in range(12)]
    far = {f"far{n}": [rng.choice([200, 2500, 9000])] * 12 for n in range(10)}
    points = {c: list(enumerate(v)) for c, v in {**series, **far}.items()}
    plain = run_fold(spark, points, cuts, names, Stability(0.0, 1))
    for h, k in ((0.1, 1), (0.0, 2), (0.1, 2), (0.05, 3)):
        got = run_fold(spark, points, cuts, names, Stability(h, k))
        for customer, values in {**series, **far}.items():
            assert got[customer] == reference(values, cuts, names, h, k), (customer, h, k)
        noisy = sum(flips(got[c]) for c in series)
        assert noisy < sum(flips(plain[c]) for c in series), (h, k)
        assert all(got[c] == plain[c] for c in far)  # far from every cut point: the same


def test_stability_needs_ordered_tiers() -> None:
    with pytest.raises(ConfigError, match=r"tiers\.stability"):
        config_for("/tmp/none", "/tmp/none", "tiers.method=rfm", "tiers.stability={}")
    with pytest.raises(ConfigError, match=r"tiers\.stability\.confirm_periods"):
        config_for("/tmp/none", "/tmp/none", "tiers.stability={confirm_periods: 0}")
    with pytest.raises(ConfigError, match=r"tiers\.stability\.hysteresis"):
        config_for("/tmp/none", "/tmp/none", "tiers.stability={hysteresis: 1.5}")


STABLE = (
    "tiers.method=thresholds",
    "tiers.thresholds=[{name: vip, min: 100}, {name: rest}]",
    "tiers.stability={hysteresis: 0.1, confirm_periods: 2}",
    "periods.grains=[month]",
)


@pytest.fixture(scope="module")
def noisy_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Six months of 60 customers, each buying once a month around 100 (the vip cut)."""
    rng = random.Random(3)
    rows = []
    for c in range(60):
        for m in range(6):
            day = date(2024, 1 + m, 1) + timedelta(days=rng.randrange(27))
            amount = Decimal(rng.randint(80, 120))
            rows.append((f"t{c}-{m}", f"c{c:02d}", datetime.combine(day, time(12)), amount))
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,4)",
    ).selectExpr("*", "'USD' as currency")
    return write_lake(frame, tmp_path_factory.mktemp("stable") / "transactions")


def segments_of(out: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        (r["customer_id"], r["period"]): (
            r["segment"],
            r["cut_segment"],
            r["pending_segment"],
            r["pending_periods"],
        )
        for r in read_delta(out / contract.CUSTOMER_SEGMENTS)
    }


def test_a_range_run_carries_the_stored_state(
    spark: SparkSession, noisy_lake: str, tmp_path: Path
) -> None:
    full, ranged = tmp_path / "full", tmp_path / "ranged"
    result = run_segmentation(spark, config_for(noisy_lake, str(full), *STABLE))
    assert result.held_back and all(row["customers"] > 0 for row in result.held_back)
    whole = segments_of(full)
    held = {key for key, (segment, cut, _, _) in whole.items() if segment != cut}
    assert sum(r["customers"] for r in result.held_back) == len(held)
    config = config_for(noisy_lake, str(ranged), *STABLE)
    run_segmentation(spark, config, Month.parse("2024-01"), Month.parse("2024-03"))
    run_segmentation(spark, config, Month.parse("2024-04"), Month.parse("2024-06"))
    assert segments_of(ranged) == whole
    # without its seed the range would start from the cut points: a real difference here
    alone = tmp_path / "alone"
    run_segmentation(
        spark,
        config_for(noisy_lake, str(alone), *STABLE),
        Month.parse("2024-04"),
        Month.parse("2024-06"),
    )
    later = {k: v for k, v in whole.items() if k[1] >= "2024-04"}
    assert segments_of(alone) != later
