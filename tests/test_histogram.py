"""The value histogram's figures against exact computations in plain Python: Pareto
classes, Gini, top shares and the Lorenz curve, within the bounds the module states."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from revseg.histogram import Bucket, concentration, lorenz_at, pareto_cuts

SHARES = (0.8, 0.95, 1.0)


def buckets_of(values: list[int], error: float) -> list[Bucket]:
    """The histogram of `values` as the Spark aggregate builds it (same bucket rule)."""
    base = math.log1p(error)
    found: dict[int, list[int]] = defaultdict(list)
    for v in values:
        index = 0 if v == 0 else int(math.copysign(math.floor(math.log(abs(v)) / base) + 1, v))
        found[index].append(v)
    return [Bucket(k, len(vs), sum(vs), min(vs), max(vs)) for k, vs in found.items()]


def exact_classes(values: list[int], shares: tuple[float, ...]) -> dict[int, int]:
    """Exact ABC classes by value: sorted highest first, a value's class is the first whose
    share the strictly greater values have not reached (equal values share a class)."""
    total = sum(v for v in values if v > 0)
    classes, before = {}, 0
    for v in sorted(set(values), reverse=True):
        if v <= 0:
            classes[v] = len(shares) - 1
            continue
        classes[v] = next(
            i for i, s in enumerate(shares) if before < s * total or i == len(shares) - 1
        )
        before += v * values.count(v)
    return classes


def class_of(v: int, cuts: list[int | None]) -> int:
    return next((i for i, c in enumerate(cuts[:-1]) if c is not None and v >= c), len(cuts) - 1)


def exact_lorenz(values: list[int], p: float) -> float:
    ordered = sorted(values)
    n, total = len(ordered), sum(ordered)
    position = p * n
    whole = math.floor(position)
    held = sum(ordered[:whole]) + (position - whole) * (ordered[whole] if whole < n else 0)
    return held / total


def exact_gini(values: list[int]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return sum((2 * i - n - 1) * v for i, v in enumerate(ordered, 1)) / (n * sum(ordered))


def lognormal(seed: int, n: int, sigma: float = 1.6) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(8, sigma)) + 1 for _ in range(n)]


@pytest.mark.parametrize("error", [0.01, 0.001])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pareto_classes_within_the_bound(seed: int, error: float) -> None:
    values = lognormal(seed, 20000)
    cuts = pareto_cuts(buckets_of(values, error), SHARES)
    exact = exact_classes(values, SHARES)
    boundary = {  # the least value of each exact class but the last
        k: min(v for v, c in exact.items() if c == k) for k in range(len(SHARES) - 1)
    }
    differ = [v for v in values if class_of(v, cuts) != exact[v]]
    for v in differ:
        got, want = class_of(v, cuts), exact[v]
        assert got == want - 1  # one class up, never down
        edge = boundary[got]
        assert edge / (1 + error) <= v <= edge * (1 + error), (v, edge)
    assert len(differ) < len(values) * 0.02


def test_pareto_ties_negative_and_single() -> None:
    # ten customers of 10, one of 100: 100 is 50% of 200 -> A; the tens cross 80% together
    # (they are tied), so all of them are A as well: equal values share a class.
    values = [100] + [10] * 10
    assert [class_of(v, pareto_cuts(buckets_of(values, 0.01), SHARES)) for v in (100, 10)] == [0, 0]
    # one customer: A. A negative margin: the last class.
    assert pareto_cuts(buckets_of([500], 0.01), SHARES) == [500, 500, 500]
    # 1000 of 1110 (90%) -> A, 100 brings it to 99% -> B, the rest -> C
    values = [1000, 100, 10, -50, 0]
    cuts = pareto_cuts(buckets_of(values, 0.01), SHARES)
    assert [class_of(v, cuts) for v in values] == [0, 1, 2, 2, 2]
    # nothing above zero: no cut points, everyone in the last class
    assert pareto_cuts(buckets_of([-5, 0], 0.01), SHARES) == [None, None, None]


@pytest.mark.parametrize("error", [0.01, 0.001])
@pytest.mark.parametrize("sigma", [0.5, 1.6, 3.0])
def test_concentration_within_the_bounds(error: float, sigma: float) -> None:
    values = lognormal(7, 30000, sigma)
    got = concentration(buckets_of(values, error))
    gini = exact_gini(values)
    assert got.gini is not None and got.gini <= gini + 1e-12
    assert gini - got.gini <= error / 2
    for q, share in (
        (0.01, got.top_1pct_share),
        (0.1, got.top_10pct_share),
        (0.2, got.top_20pct_share),
    ):
        exact = 1 - exact_lorenz(values, 1 - q)
        assert share is not None and share <= exact + 1e-12
        assert exact - share <= error * exact + 1e-12, (q, share, exact)
    assert len(got.lorenz) == 101 and got.lorenz[0] == 0.0 and got.lorenz[-1] == 1.0
    for k, point in enumerate(got.lorenz):
        exact = exact_lorenz(values, k / 100)
        assert exact - 1e-12 <= point <= exact + error * (1 - exact) + 1e-12


def test_concentration_of_equal_values_and_one_customer() -> None:
    equal = concentration(buckets_of([500] * 40, 0.01))
    assert equal.gini == pytest.approx(0.0, abs=1e-12) and equal.top_10pct_share == pytest.approx(
        0.1
    )
    alone = concentration(buckets_of([7], 0.01))
    assert alone.customers == 1 and alone.gini == pytest.approx(0.0, abs=1e-12)
    assert concentration(buckets_of([-3, 0], 0.01)).customers == 0  # nobody above zero


def test_lorenz_of_exact_buckets_is_exact() -> None:
    # buckets of one value each (relative error far below the gaps): the exact curve
    values = [1, 2, 4, 8, 1000]
    points = [0.0, 0.2, 0.5, 0.9, 1.0]
    got = lorenz_at(sorted(buckets_of(values, 0.0001), key=lambda b: b.bucket), points)
    assert got == pytest.approx([exact_lorenz(values, p) for p in points])
