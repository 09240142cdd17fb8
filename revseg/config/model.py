"""The configuration's frozen dataclasses, its constants, and its fingerprint.

Nothing here reads files or validates: `revseg.config.load` builds these classes from YAML
or a dict, and `revseg.config.rules` checks them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

SOURCE_FORMATS = ("parquet", "delta", "csv", "json")
NO_REVENUE_SEGMENT = "no_revenue"
# Customers with revenue whose tier metric is unknown (no margin without cost, no CLV row).
NO_METRIC_SEGMENT = "no_metric"
# Customers with revenue below the lowest of `tiers.thresholds` (when it has a `min`).
BELOW_THRESHOLDS_SEGMENT = "below_thresholds"
# tier_migrations' own segments: no row in the first period of a pair (no revenue in any
# period before, or some), and no row in the second.
NEW_SEGMENT = "new"
REACTIVATED_SEGMENT = "reactivated"
LAPSED_SEGMENT = "lapsed"
RESERVED_SEGMENTS = (
    NO_REVENUE_SEGMENT,
    NO_METRIC_SEGMENT,
    BELOW_THRESHOLDS_SEGMENT,
    NEW_SEGMENT,
    REACTIVATED_SEGMENT,
    LAPSED_SEGMENT,
)
MAX_ACCURACY = 1_000_000


_ADDED = "added_later"
# Metadata of a config key added after revseg 0.1.0: at its default it leaves the config's
# fingerprint as 0.1.0 computed it (run logs hold fingerprints; see `Config.fingerprint`).
ADDED_LATER = {_ADDED: True}
_UNFINGERPRINTED = "not_fingerprinted"
# Metadata of a config key that cannot change what a run computes (the `spark` settings):
# fingerprinted at its default whatever it holds, so that tuning memory does not make every
# period look stale.
NOT_FINGERPRINTED = {_UNFINGERPRINTED: True}
_OWN = "own_fingerprint"
# Metadata of a config section with a fingerprint of its own (`clv`): left out of the
# config's fingerprint, so that it does not make the stored segments look stale, and
# recorded with the tables it decides instead.
OWN_FINGERPRINT = {_OWN: True}


@dataclass(frozen=True)
class TierLevel:
    """A value tier: customers in the top `fraction` of a period's revenue reach it."""

    name: str
    fraction: float


DEFAULT_LEVELS = (
    TierLevel("platinum", 0.01),
    TierLevel("gold", 0.10),
    TierLevel("silver", 0.50),
    TierLevel("bronze", 1.0),
)


class InputTable(typing.Protocol):
    """A table revseg reads: the transaction source or the FX rates."""

    @property
    def path(self) -> str | None: ...

    @property
    def table(self) -> str | None: ...

    @property
    def location(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def columns(self) -> Mapping[str, str]: ...

    @property
    def options(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class SourceConfig:
    """Where the transactions are (a path, or a catalog table: exactly one) and how their
    columns map to the canonical contract."""

    path: str | None = "data/transactions"
    format: str = "parquet"
    columns: Mapping[str, str] = field(default_factory=dict)
    date_partition: str | None = "transaction_date"
    options: Mapping[str, str] = field(default_factory=dict)
    table: str | None = field(default=None, metadata=ADDED_LATER)

    @property
    def location(self) -> str:
        """The path or the table name: for messages."""
        return self.path if self.path is not None else self.table or ""


@dataclass(frozen=True)
class OutputConfig:
    """Where the Delta output tables live: under `path`, or as catalog tables in `schema`
    (of `catalog`, if given): `<catalog>.<schema>.customer_segments` and so on."""

    path: str | None = "data/output"
    catalog: str | None = field(default=None, metadata=ADDED_LATER)
    schema: str | None = field(default=None, metadata=ADDED_LATER)

    @property
    def location(self) -> str:
        """The schema's name (`catalog.schema`) or the path: for messages and the run log."""
        if self.schema is not None:
            return f"{self.catalog}.{self.schema}" if self.catalog else self.schema
        return self.path or ""


@dataclass(frozen=True)
class PeriodsConfig:
    """Which period grains to compute and in which time zone periods are cut."""

    grains: tuple[str, ...] = ("month", "quarter", "year")
    timezone: str = "UTC"
    fiscal_year_start_month: int = 1

    def meaning(self) -> dict[str, str]:
        """The settings that decide what a period label means (which rows `2024-03` or
        `FY2025` holds), by config key: the tables record them and refuse others."""
        found = {"periods.timezone": self.timezone}
        if any(grain.startswith("fiscal_") for grain in self.grains):
            found["periods.fiscal_year_start_month"] = str(self.fiscal_year_start_month)
        return found


# What a tier ranks customers by, within each period (x group).
TIER_METRICS = ("revenue", "avg_order_value", "orders", "margin", "predicted_clv")
# How tiers are cut: quantile (`levels`), pareto (`pareto`), thresholds (`thresholds`), rfm.
TIER_METHODS = ("quantile", "pareto", "thresholds", "rfm")


@dataclass(frozen=True)
class ParetoClass:
    """An ABC class: the customers that, highest first, bring the period's metric up to
    `share` of its total (after the classes before)."""

    name: str
    share: float


DEFAULT_PARETO = (ParetoClass("A", 0.8), ParetoClass("B", 0.95), ParetoClass("C", 1.0))

# The RFM measures, in the order of the digits of `rfm_score`, and the scores each takes.
RFM_MEASURES = ("recency", "frequency", "monetary")
RFM_SCORES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class RfmSegment:
    """A named RFM segment: the recency, frequency and monetary scores (1-5) it takes, an
    empty list taking any score. A customer gets the first segment of the list it matches."""

    name: str
    recency: tuple[int, ...] = ()
    frequency: tuple[int, ...] = ()
    monetary: tuple[int, ...] = ()

    def scores(self, measure: str) -> tuple[int, ...]:
        """The scores of `measure` this segment takes (all five when it names none)."""
        allowed: tuple[int, ...] = getattr(self, measure)
        return allowed or RFM_SCORES

    def matches(self, recency: int, frequency: int, monetary: int) -> bool:
        found = zip(RFM_MEASURES, (recency, frequency, monetary), strict=True)
        return all(score in self.scores(measure) for measure, score in found)


# The score map, best first: recency and frequency place a customer on the usual 5 x 5
# grid; monetary splits the recent and frequent (champions, loyal) and the lapsing
# frequent (cannot_lose_them, at_risk). The last segment takes what is left.
DEFAULT_RFM_SEGMENTS = (
    RfmSegment("champions", (4, 5), (4, 5), (4, 5)),
    RfmSegment("loyal", (3, 4, 5), (4, 5)),
    RfmSegment("potential_loyalists", (4, 5), (2, 3)),
    RfmSegment("new_customers", (5,), (1,)),
    RfmSegment("promising", (4,), (1,)),
    RfmSegment("need_attention", (3,), (3,)),
    RfmSegment("about_to_sleep", (3,), (1, 2)),
    RfmSegment("cannot_lose_them", (1, 2), (4, 5), (4, 5)),
    RfmSegment("at_risk", (1, 2), (3, 4, 5)),
    RfmSegment("hibernating", (2,), (1, 2)),
    RfmSegment("lost"),
)


@dataclass(frozen=True)
class RfmConfig:
    """RFM tiers: the score map from scores to named segments (first match wins)."""

    segments: tuple[RfmSegment, ...] = DEFAULT_RFM_SEGMENTS

    def segment_of(self, recency: int, frequency: int, monetary: int) -> str | None:
        """The segment of one score triple, by the map; None if no segment takes it."""
        for segment in self.segments:
            if segment.matches(recency, frequency, monetary):
                return segment.name
        return None


@dataclass(frozen=True)
class ThresholdLevel:
    """A fixed tier: customers whose metric is at least `min` (an amount in the reporting
    currency, or a count of orders); the last level may leave `min` out to take the rest."""

    name: str
    min: Decimal | None = None


@dataclass(frozen=True)
class StabilityConfig:
    """Tiers that do not flip on noise around a cut point: a customer leaves its previous
    tier only when its metric passes the other tier's cut point by `hysteresis` (a
    fraction of that cut point), and only after `confirm_periods` consecutive periods
    in the new tier."""

    hysteresis: float = 0.0
    confirm_periods: int = 1


@dataclass(frozen=True)
class TiersConfig:
    """What tiers rank by (`metric`) and how they are cut (`method`): quantile levels
    (highest first, from percentile_approx at `accuracy`), Pareto classes, fixed
    thresholds, or RFM scores and their named segments (`rfm`); `relative_error` bounds
    the value histogram behind `value_percentile`, the Pareto classes and the
    concentration figures."""

    levels: tuple[TierLevel, ...] = DEFAULT_LEVELS
    accuracy: int = 10000
    by: tuple[str, ...] = ()
    metric: str = field(default="revenue", metadata=ADDED_LATER)
    method: str = field(default="quantile", metadata=ADDED_LATER)
    pareto: tuple[ParetoClass, ...] = field(default=DEFAULT_PARETO, metadata=ADDED_LATER)
    thresholds: tuple[ThresholdLevel, ...] = field(default=(), metadata=ADDED_LATER)
    relative_error: float = field(default=0.01, metadata=ADDED_LATER)
    rfm: RfmConfig = field(default_factory=RfmConfig, metadata=ADDED_LATER)
    stability: StabilityConfig | None = field(default=None, metadata=ADDED_LATER)

    def segment_names(self) -> tuple[str, ...]:
        """The tiers of the configured method, highest first."""
        if self.method == "pareto":
            return tuple(c.name for c in self.pareto)
        if self.method == "thresholds":
            return tuple(t.name for t in self.thresholds)
        if self.method == "rfm":
            return tuple(s.name for s in self.rfm.segments)
        return tuple(level.name for level in self.levels)


# The summary tables a run can write beside customer_segments and tier_boundaries.
INSIGHT_TABLES = ("segment_summary", "tier_migrations", "concentration")


@dataclass(frozen=True)
class InsightsConfig:
    """Which summary tables a run writes (each is replaced per period with the segments).
    segment_summary, tier_migrations and customer_current_segment are opt-in: at 20M rows
    each adds more than the defaults may (see the performance page)."""

    segment_summary: bool = False
    tier_migrations: bool = False
    concentration: bool = True
    # not per period: the whole table for each grain a run writes
    customer_current_segment: bool = False

    def tables(self) -> tuple[str, ...]:
        """The summary tables turned on, in the order a run writes them."""
        return tuple(name for name in INSIGHT_TABLES if getattr(self, name))


@dataclass(frozen=True)
class TransactionTypes:
    """Which `transaction_type` values are sales, refunds (returns, chargebacks) or ignored.

    Matched case-insensitively after trimming; a row without a type is a sale.
    """

    sale: tuple[str, ...] = ("sale", "purchase", "order")
    refund: tuple[str, ...] = ("refund", "return", "chargeback")
    ignore: tuple[str, ...] = ("test", "void")

    def normalised(self, kind: str) -> tuple[str, ...]:
        return tuple(value.strip().lower() for value in getattr(self, kind))


REFUND_ATTRIBUTIONS = ("transaction", "original")
FX_COLUMNS = ("currency", "rate_date", "rate")


@dataclass(frozen=True)
class FxRatesConfig:
    """The exchange-rate table (a path, or a catalog table: exactly one): one rate to the
    reporting currency per currency and date."""

    path: str | None = None
    format: str = "parquet"
    columns: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    table: str | None = field(default=None, metadata=ADDED_LATER)

    @property
    def location(self) -> str:
        """The path or the table name: for messages."""
        return self.path if self.path is not None else self.table or ""


@dataclass(frozen=True)
class RevenueConfig:
    """How money is counted: net of refunds, in one reporting currency."""

    reporting_currency: str = "USD"
    types: TransactionTypes = field(default_factory=TransactionTypes)
    refund_attribution: str = "transaction"
    max_refund_delay_days: int = 120
    fx_rates: FxRatesConfig | None = None
    fx_max_staleness_days: int = 3
    fail_on_missing_fx: bool = False


# Optional metrics and the source column each one needs.
METRIC_SOURCE_COLUMNS = {
    "quantity": "quantity",
    "margin": "cost",
    "top_channel": "channel",
    "top_category": "product_category",
}
OPTIONAL_METRICS = tuple(METRIC_SOURCE_COLUMNS)
# The top_* metrics are asked for by name: they aggregate revenue per dimension value and
# carry the values through de-duplication, which doubles the aggregation's cost.
DEFAULT_METRICS = ("quantity", "margin")


@dataclass(frozen=True)
class MetricsConfig:
    """Optional per-customer metrics: each costs work per transaction and needs its source
    column (quantity: `quantity`; margin: `cost`; top_channel: `channel`; top_category:
    `product_category`)."""

    include: tuple[str, ...] = DEFAULT_METRICS


@dataclass(frozen=True)
class QualityConfig:
    """Which rows are quarantined instead of counted, and when a run refuses to write.

    `min_date` is a day (an ISO date in YAML); `max_abs_amount` an amount in the reporting
    currency (text or a number in YAML); both optional.
    """

    guest_customer_id: str | None = None
    min_date: date | None = None
    max_abs_amount: Decimal | None = None
    quarantine_excluded: bool = False
    max_quarantine_fraction: float = 0.05
    allow_empty_periods: bool = False
    duplicate_reach_days: int = field(default=1, metadata=ADDED_LATER)


CLV_MODELS = ("bgnbd", "pareto_nbd", "gamma_gamma")
CLV_PURCHASE_MODELS = ("bgnbd", "pareto_nbd")
# Days per time unit: a month is a twelfth of the Julian year, never 30 days.
CLV_TIME_UNITS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}


@dataclass(frozen=True)
class ClvConfig:
    """Predictive customer lifetime value: which models, over which calibration window
    (ending on `calibration_end`, inclusive) and horizon, in which time unit.

    `calibration_end` and `holdout_end` are days (ISO dates in YAML); without
    `calibration_end` a run uses `--calibration-end`, the run's as-of date, or the last day
    with data, never the wall clock. `discount_rate` is an annual rate.
    """

    enabled: bool = False
    models: tuple[str, ...] = ("bgnbd", "gamma_gamma")
    calibration_end: date | None = None
    holdout_end: date | None = None
    time_unit: str = "week"
    horizon: int = 52
    discount_rate: float = 0.10

    @property
    def unit_days(self) -> float:
        """Days in one `time_unit`."""
        return CLV_TIME_UNITS[self.time_unit]

    @property
    def purchase_model(self) -> str:
        """The model of the number of purchases that scores customers (the first listed)."""
        return next(m for m in self.models if m in CLV_PURCHASE_MODELS)

    def fingerprint(self) -> str:
        """A stable hash of the CLV settings, recorded with the fitted models."""
        canonical = json.dumps(to_plain(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration of a revseg run."""

    source: SourceConfig = field(default_factory=SourceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    periods: PeriodsConfig = field(default_factory=PeriodsConfig)
    tiers: TiersConfig = field(default_factory=TiersConfig)
    revenue: RevenueConfig = field(default_factory=RevenueConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    spark: Mapping[str, str] = field(default_factory=dict, metadata=NOT_FINGERPRINTED)
    clv: ClvConfig = field(default_factory=ClvConfig, metadata=OWN_FINGERPRINT)
    # Which summary tables are written does not change what customer_segments holds.
    insights: InsightsConfig = field(default_factory=InsightsConfig, metadata=OWN_FINGERPRINT)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Config:
        """Build and validate a config from nested plain values, as YAML would give them:
        `Config.from_dict({"periods": {"grains": ["month"]}})`. Raises `ConfigError`."""
        from revseg.config.load import config_from_dict  # load imports this module

        return config_from_dict(raw)

    def reach_days(self) -> int:
        """Days a range run reads beyond its months, and an incremental run widens each
        changed day by: copies of a transaction a full run de-duplicates
        (quality.duplicate_reach_days) and, with refunds booked to their sale, the sales and
        refunds naming each other (revenue.max_refund_delay_days)."""
        revenue = self.revenue
        refunds = revenue.max_refund_delay_days if revenue.refund_attribution == "original" else 0
        return max(refunds, self.quality.duplicate_reach_days)

    def fingerprint(self) -> str:
        """A stable hash of the effective config, for the run log and idempotent writes."""
        plain = to_plain(self)
        for f in dataclasses.fields(self):
            if f.metadata.get(_UNFINGERPRINTED):  # as 0.1.0 fingerprinted it when unset
                plain[f.name] = to_plain(f.default_factory())  # type: ignore[operator]
            if f.metadata.get(_OWN):
                del plain[f.name]
        canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default value, made by its factory if it has one."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def to_plain(value: Any) -> Any:
    """Turn a config (or part of one) back into plain dicts, lists and scalars.

    A date becomes its ISO text and a Decimal its `str`: what revseg 0.1.0 held in those
    fields as text, and a key added since (`ADDED_LATER`) is left out while it has its
    default, so that fingerprints stay the same across versions.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get(_ADDED) and getattr(value, f.name) == _default_of(f))
        }
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
