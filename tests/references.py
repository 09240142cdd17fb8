"""Plain Python readings of customer_segments that the derived tables must equal:
tier_migrations' pairs and customer_current_segment's rows, by the documented rules."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from revseg.periods import key_step, keys_of_labels, make_grains


def expected_pairs(rows: list[dict[str, Any]], grain: str) -> Counter[tuple[str, str, str, str]]:
    """(from_period, to_period, from_segment, to_segment) -> customers, by the rules, from
    the customer_segments rows of one grain (consecutive labels taken from the stored
    periods, which have no gaps on the sample)."""
    labels = sorted({r["period"] for r in rows if r["period_grain"] == grain})
    seen: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["period_grain"] == grain:
            seen[r["customer_id"]][r["period"]] = r
    found: Counter[tuple[str, str, str, str]] = Counter()
    for first, second in pairwise(labels):
        for periods in seen.values():
            before, after = periods.get(first), periods.get(second)
            if before is None and after is None:
                continue
            if before is None:
                earlier = [p for label, p in periods.items() if label < first]
                source = "reactivated" if any(p["revenue"] > 0 for p in earlier) else "new"
            else:
                source = before["segment"]
            target = after["segment"] if after is not None else "lapsed"
            found[(first, second, source, target)] += 1
    return found


def table_pairs(rows: list[dict[str, Any]], grain: str) -> Counter[tuple[str, str, str, str]]:
    found: Counter[tuple[str, str, str, str]] = Counter()
    for r in rows:
        if r["period_grain"] == grain:
            key = (r["from_period"], r["to_period"], r["from_segment"], r["to_segment"])
            found[key] += r["customers"]
    return found


def expected_current(rows: list[dict[str, Any]], grain_name: str) -> dict[str, tuple[Any, ...]]:
    """customer -> (period, segment, segment_since, revenue, value_percentile), by the rule,
    from the customer_segments rows of one grain."""
    (grain,) = make_grains((grain_name,))
    mine = [r for r in rows if r["period_grain"] == grain_name]
    keys = keys_of_labels(grain, {r["period"] for r in mine})
    by_customer: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in mine:
        by_customer[r["customer_id"]][keys[r["period"]]] = r
    found = {}
    for customer, periods in by_customer.items():
        paid = [k for k, r in periods.items() if r["revenue"] > 0]
        if not paid:
            continue
        latest = max(paid)
        row = periods[latest]
        since = latest
        while (since - key_step(grain)) in periods and (
            periods[since - key_step(grain)]["segment"] == row["segment"]
        ):
            since -= key_step(grain)
        found[customer] = (
            row["period"],
            row["segment"],
            grain.label(since),
            row["revenue"],
            row["value_percentile"],
        )
    return found
