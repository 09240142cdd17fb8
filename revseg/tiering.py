"""How a run tiers (`tiers.*` of the config) as plain values for the transforms below the
pipeline: the metric, the method and its settings in the metric's units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from revseg.config import RfmSegment, TierLevel, TiersConfig
from revseg.stability import Stability
from revseg.tiers import MONEY_METRICS


@dataclass(frozen=True)
class Tiering:
    """How a run tiers, as plain values: the metric and method, the segment names (highest
    first), each method's settings in the metric's units, and what the histogram feeds."""

    metric: str
    method: str
    names: tuple[str, ...]
    groups: tuple[str, ...]
    accuracy: int = 10000
    relative_error: float = 0.01
    levels: tuple[TierLevel, ...] = ()
    shares: tuple[float, ...] = ()
    minimums: tuple[int | None, ...] = ()
    concentration: bool = True
    rfm: tuple[RfmSegment, ...] = ()
    timezone: str = "UTC"
    stability: Stability | None = None
    summary: bool = True  # segment_summary is written: its medians are computed

    @classmethod
    def of(
        cls,
        tiers: TiersConfig,
        concentration: bool = True,
        timezone: str = "UTC",
        summary: bool = True,
    ) -> Tiering:
        stable = tiers.stability
        return cls(
            metric=tiers.metric,
            method=tiers.method,
            names=tiers.segment_names(),
            groups=tiers.by,
            accuracy=tiers.accuracy,
            relative_error=tiers.relative_error,
            levels=tiers.levels,
            shares=tuple(c.share for c in tiers.pareto),
            minimums=tuple(metric_units(t.min, tiers.metric) for t in tiers.thresholds),
            concentration=concentration,
            rfm=tiers.rfm.segments,
            timezone=timezone,
            stability=(
                Stability(stable.hysteresis, stable.confirm_periods) if stable is not None else None
            ),
            summary=summary,
        )

    @property
    def floor(self) -> bool:
        """Whether the last level has a cut point of its own (thresholds with a min)."""
        return self.method == "thresholds" and self.minimums[-1] is not None

    def concentration_measure(self) -> str:
        """The histogram measure concentration reads: revenue, which is the metric's own
        when the tiers rank by revenue."""
        return "metric" if self.metric == "revenue" else "revenue"


def metric_units(amount: Decimal | None, metric: str) -> int | None:
    """A threshold in the metric's units: cents for money, whole orders (rounded up: 2.5
    orders is reached by 3)."""
    if amount is None:
        return None
    if metric in MONEY_METRICS:
        return int(amount * 100)
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def tier_keys(groups: Sequence[str]) -> tuple[str, ...]:
    """The columns a tier is cut within: the period (as integer keys) and the groups."""
    return ("grain_idx", "period_key", *groups)
