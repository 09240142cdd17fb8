"""Measure the errors of revseg's approximate figures against exact ones, on a run's own
tables (read with delta-rs): concentration (Gini, top shares, the Lorenz curve),
value_percentile and, for a run with `tiers.method: pareto`, the Pareto classes.

    python scripts/approx_errors.py data/output            # any run's output
    python scripts/approx_errors.py out --pareto A=0.8,B=0.95,C=1.0

Exact figures are computed here in numpy from each period's customer rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from deltalake import DeltaTable


def exact_lorenz(ordered: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The exact revenue share of the lowest `shares` of customers (interpolated)."""
    n, total = len(ordered), float(ordered.sum())
    cumulative = np.concatenate([[0.0], np.cumsum(ordered, dtype=np.float64)])
    position = shares * n
    whole = np.floor(position).astype(int)
    part = position - whole
    nxt = np.where(whole < n, ordered[np.minimum(whole, n - 1)], 0)
    return (cumulative[whole] + part * nxt) / total


def exact_gini(ordered: np.ndarray) -> float:
    n = len(ordered)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * ordered).sum() / (n * ordered.sum()))


def pareto_classes(cents: np.ndarray, classes: list[tuple[str, float]]) -> np.ndarray:
    """Each customer's exact class: the customers that together bring the first `share`
    of revenue, highest first (a customer is in the first class whose share its
    cumulative revenue before it has not reached)."""
    order = np.argsort(-cents, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(cents[order], dtype=np.float64)[:-1]])
    share_before = before / float(cents.sum())
    names = np.empty(len(cents), dtype=object)
    limits = [share for _, share in classes]
    index = np.searchsorted(limits, share_before, side="right")
    index = np.minimum(index, len(classes) - 1)
    names[order] = np.array([name for name, _ in classes], dtype=object)[index]
    return names


def pareto_gaps(
    values: np.ndarray, exact: np.ndarray, got: np.ndarray, names: list[str]
) -> tuple[float, int]:
    """For the customers whose class differs from the exact one: the largest relative
    gap between a customer's value and the least value of the class it was given (the
    boundary it was let over), and how many were not given the class just above."""
    rank = {name: i for i, name in enumerate(names)}
    moved = exact != got
    if not moved.any():
        return 0.0, 0
    exact_rank = np.array([rank[n] for n in exact])
    got_rank = np.array([rank.get(n, -1) for n in got])
    outside = int((moved & (got_rank != exact_rank - 1)).sum())
    gap = 0.0
    for cls in set(got_rank[moved]):
        members = values[(exact_rank == cls)]
        if len(members) == 0:
            continue
        boundary = float(members.min())
        mine = values[moved & (got_rank == cls)]
        gap = max(gap, float(((boundary - mine) / boundary).max()))
    return gap, outside


def measure(out: Path, pareto: list[tuple[str, float]] | None) -> dict[str, Any]:
    columns = ["period_grain", "period", "customer_id", "revenue", "segment", "value_percentile"]
    segments = DeltaTable(str(out / "customer_segments")).to_pyarrow_table(columns=columns)
    frame = segments.to_pandas()
    frame["cents"] = (frame["revenue"].astype(float) * 100).round().astype(np.int64)
    concentration = {
        (r["period_grain"], r["period"]): r
        for r in DeltaTable(str(out / "concentration")).to_pyarrow_table().to_pylist()
    }
    worst: dict[str, float] = {
        "gini_below_exact": 0.0,
        "gini_above_exact": 0.0,
        "top_share_relative_below": 0.0,
        "lorenz_abs": 0.0,
        "value_percentile_abs": 0.0,
    }
    moved = customers = outside_bound = 0
    for (grain, period), rows in frame.groupby(["period_grain", "period"]):
        cents = rows["cents"].to_numpy()
        positive = np.sort(cents[cents > 0])
        if len(positive) == 0:
            continue
        row = concentration.get((grain, period))
        if row is not None:
            gini = exact_gini(positive)
            worst["gini_below_exact"] = max(worst["gini_below_exact"], gini - row["gini"])
            worst["gini_above_exact"] = max(worst["gini_above_exact"], row["gini"] - gini)
            for q in (1, 10, 20):
                exact = 1 - float(exact_lorenz(positive, np.array([1 - q / 100]))[0])
                got = row[f"top_{q}pct_share"]
                worst["top_share_relative_below"] = max(
                    worst["top_share_relative_below"], (exact - got) / exact
                )
            shares = np.array([p["customer_share"] for p in row["lorenz"]])
            got = np.array([p["revenue_share"] for p in row["lorenz"]])
            worst["lorenz_abs"] = max(
                worst["lorenz_abs"], float(np.abs(got - exact_lorenz(positive, shares)).max())
            )
        ranked = rows[rows["cents"] > 0]
        values = ranked["cents"].to_numpy()
        exact_pct = 100 * np.searchsorted(positive, values, side="right") / len(positive)
        got_pct = ranked["value_percentile"].to_numpy(dtype=np.float64)
        worst["value_percentile_abs"] = max(
            worst["value_percentile_abs"], float(np.abs(got_pct - exact_pct).max())
        )
        if pareto:
            exact_names = pareto_classes(values, pareto)
            got_names = ranked["segment"].to_numpy(dtype=object)
            moved += int((exact_names != got_names).sum())
            customers += len(values)
            gap, outside = pareto_gaps(values, exact_names, got_names, [n for n, _ in pareto])
            worst["pareto_gap_to_boundary"] = max(worst.get("pareto_gap_to_boundary", 0.0), gap)
            outside_bound += outside
    result: dict[str, Any] = {"periods": int(frame.groupby(["period_grain", "period"]).ngroups)}
    result.update({k: round(v, 6) for k, v in worst.items()})
    if pareto:
        result["pareto_customers_in_another_class"] = moved
        result["pareto_customers"] = customers
        result["pareto_moved_not_one_class_up"] = outside_bound
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a run's output.path")
    parser.add_argument("--pareto", help="the run's classes, e.g. A=0.8,B=0.95,C=1.0")
    args = parser.parse_args()
    pareto = None
    if args.pareto:
        pareto = [(n, float(s)) for n, s in (item.split("=") for item in args.pareto.split(","))]
    print(json.dumps(measure(args.out, pareto), indent=2))


if __name__ == "__main__":
    main()
