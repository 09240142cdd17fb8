"""Validation of a whole `Config`: every error names the dotted key path it is about."""

from __future__ import annotations

import itertools
import re
import zoneinfo
from decimal import Decimal

from revseg.config.model import (
    CLV_MODELS,
    CLV_PURCHASE_MODELS,
    CLV_TIME_UNITS,
    FX_COLUMNS,
    MAX_ACCURACY,
    OPTIONAL_METRICS,
    REFUND_ATTRIBUTIONS,
    RESERVED_SEGMENTS,
    RFM_MEASURES,
    RFM_SCORES,
    SOURCE_FORMATS,
    TIER_METHODS,
    TIER_METRICS,
    ClvConfig,
    Config,
    InputTable,
    OutputConfig,
    PeriodsConfig,
    QualityConfig,
    RevenueConfig,
    RfmConfig,
    SourceConfig,
    TiersConfig,
    TransactionTypes,
)
from revseg.errors import ConfigError
from revseg.money import MINOR_UNITS
from revseg.names import CANONICAL_COLUMNS, GROUP_COLUMNS, SUPPORTED_GRAINS, name_parts

MAX_HORIZON = 5000  # time units: 13 years of days, 96 of weeks
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEGMENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_NOT_JAVA_ZONE_PREFIXES = ("posix/", "right/", "SystemV/")
_NOT_JAVA_ZONES = ("localtime", "Factory", "posixrules")


def validate(config: Config) -> None:
    """Check the whole config; raises `ConfigError` naming the first wrong key."""
    _validate_source(config.source)
    _validate_output(config.output)
    _validate_periods(config.periods)
    _validate_tiers(config.tiers)
    if config.tiers.metric == "margin" and "margin" not in config.metrics.include:
        raise ConfigError(
            "config key 'tiers.metric': margin needs the margin metric; add margin to "
            "metrics.include (and map a cost column)"
        )
    if not _CURRENCY.match(config.revenue.reporting_currency):
        raise ConfigError(
            "config key 'revenue.reporting_currency': expected an ISO 4217 code such as USD, "
            f"got {config.revenue.reporting_currency!r}"
        )
    _validate_types(config.revenue.types)
    _validate_fx(config.revenue)
    for i, metric in enumerate(config.metrics.include):
        if metric not in OPTIONAL_METRICS:
            raise ConfigError(
                f"config key 'metrics.include[{i}]': {metric!r} is not an optional metric; "
                f"expected one of {', '.join(OPTIONAL_METRICS)}"
            )
    if config.revenue.refund_attribution not in REFUND_ATTRIBUTIONS:
        raise ConfigError(
            "config key 'revenue.refund_attribution': expected one of "
            f"{', '.join(REFUND_ATTRIBUTIONS)}, got {config.revenue.refund_attribution!r}"
        )
    if not 0 <= config.revenue.max_refund_delay_days <= 3660:
        raise ConfigError(
            "config key 'revenue.max_refund_delay_days': expected 0 to 3660 days, got "
            f"{config.revenue.max_refund_delay_days}"
        )
    if not 0 <= config.quality.duplicate_reach_days <= 3660:
        raise ConfigError(
            "config key 'quality.duplicate_reach_days': expected 0 to 3660 days, got "
            f"{config.quality.duplicate_reach_days}"
        )
    _validate_quality(config.quality)
    validate_clv(config.clv)
    for key in config.spark:
        if not key.startswith("spark."):
            raise ConfigError(f"config key 'spark.{key}': Spark settings start with 'spark.'")


def _validate_quality(quality: QualityConfig) -> None:
    # min_date is a date once built (text that is no date fails in revseg.config.load).
    if quality.guest_customer_id is not None and not quality.guest_customer_id.strip():
        raise ConfigError("config key 'quality.guest_customer_id': must not be blank")
    amount = quality.max_abs_amount
    if amount is not None and (not amount.is_finite() or amount <= 0):
        raise ConfigError(
            "config key 'quality.max_abs_amount': expected a positive amount such as "
            f"1000000, got {str(amount)!r}"
        )
    if not 0 <= quality.max_quarantine_fraction <= 1:
        raise ConfigError(
            "config key 'quality.max_quarantine_fraction': expected a fraction from 0 to 1, "
            f"got {quality.max_quarantine_fraction}"
        )


def _validate_fx(revenue: RevenueConfig) -> None:
    unit = MINOR_UNITS.get(revenue.reporting_currency, 2)
    if unit > 2:
        raise ConfigError(
            f"config key 'revenue.reporting_currency': {revenue.reporting_currency} has {unit} "
            "decimal places; revseg reports money with at most 2"
        )
    if not 0 <= revenue.fx_max_staleness_days <= 366:
        raise ConfigError(
            "config key 'revenue.fx_max_staleness_days': expected 0 to 366 days, got "
            f"{revenue.fx_max_staleness_days}"
        )
    if revenue.fx_rates is not None:
        _validate_table("revenue.fx_rates", revenue.fx_rates, FX_COLUMNS)


def _validate_types(types: TransactionTypes) -> None:
    seen: dict[str, str] = {}
    for kind in ("sale", "refund", "ignore"):
        for i, value in enumerate(types.normalised(kind)):
            if not value:
                raise ConfigError(f"config key 'revenue.types.{kind}[{i}]': must not be blank")
            if value in seen:
                raise ConfigError(
                    f"config key 'revenue.types.{kind}[{i}]': {value!r} is already listed "
                    f"under revenue.types.{seen[value]}"
                )
            seen[value] = kind


def _validate_output(output: OutputConfig) -> None:
    """Output tables under a path, or named in a catalog schema: exactly one."""
    if (output.path is None) == (output.schema is None):
        raise ConfigError(
            "config key 'output': set output.path (a directory for the tables) or "
            "output.schema (with output.catalog: catalog tables), exactly one"
            + ("" if output.path is None else f"; output.path is {output.path!r}")
        )
    if output.path is not None and not output.path.strip():
        raise ConfigError("config key 'output.path': must not be empty")
    if output.catalog is not None and output.schema is None:
        raise ConfigError("config key 'output.catalog': needs output.schema too")
    for key, name in (("output.catalog", output.catalog), ("output.schema", output.schema)):
        if name is not None:
            _name(name, key, most=1)


def _name(name: str, key: str, most: int = 3) -> None:
    try:
        name_parts(name, key, most)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _validate_table(key: str, table: InputTable, known_columns: tuple[str, ...]) -> None:
    """An input table's path or name, format and column mapping (the source, the FX rates)."""
    if (table.path is None) == (table.table is None):
        raise ConfigError(
            f"config key '{key}': set {key}.path or {key}.table (a catalog table), exactly one"
        )
    if table.path is not None and not table.path.strip():
        raise ConfigError(f"config key '{key}.path': must not be empty")
    if table.table is not None:
        _name(table.table, f"{key}.table")
    if table.format not in SOURCE_FORMATS:
        raise ConfigError(
            f"config key '{key}.format': expected one of {', '.join(SOURCE_FORMATS)}, "
            f"got {table.format!r}"
        )
    for name, column in table.columns.items():
        if name not in known_columns:
            raise ConfigError(
                f"config key '{key}.columns.{name}': not a canonical column; "
                f"expected one of {', '.join(known_columns)}"
            )
        if not _IDENTIFIER.match(column):
            raise ConfigError(
                f"config key '{key}.columns.{name}': {column!r} is not a plain column "
                "name (letters, digits and underscores, not starting with a digit)"
            )


def _validate_source(source: SourceConfig) -> None:
    _validate_table("source", source, CANONICAL_COLUMNS)
    if source.date_partition is not None and not _IDENTIFIER.match(source.date_partition):
        raise ConfigError(
            f"config key 'source.date_partition': {source.date_partition!r} is not a plain "
            "column name"
        )


def _validate_periods(periods: PeriodsConfig) -> None:
    if not periods.grains:
        raise ConfigError("config key 'periods.grains': needs at least one grain")
    for i, grain in enumerate(periods.grains):
        if grain not in SUPPORTED_GRAINS:
            raise ConfigError(
                f"config key 'periods.grains[{i}]': unknown grain {grain!r}; expected one of "
                f"{', '.join(SUPPORTED_GRAINS)}"
            )
    if not 1 <= periods.fiscal_year_start_month <= 12:
        raise ConfigError(
            "config key 'periods.fiscal_year_start_month': expected a month number 1-12, "
            f"got {periods.fiscal_year_start_month}"
        )
    if len(set(periods.grains)) != len(periods.grains):
        raise ConfigError("config key 'periods.grains': lists a grain twice")
    try:
        zoneinfo.ZoneInfo(periods.timezone)
        if periods.timezone.startswith(_NOT_JAVA_ZONE_PREFIXES) or periods.timezone in (
            _NOT_JAVA_ZONES
        ):
            raise ValueError(periods.timezone)  # a file of the system's zone database only
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"config key 'periods.timezone': {periods.timezone!r} is not an IANA time zone "
            "name such as UTC or Europe/Berlin"
        ) from None


def _validate_tiers(tiers: TiersConfig) -> None:
    if tiers.metric not in TIER_METRICS:
        raise ConfigError(
            f"config key 'tiers.metric': {tiers.metric!r} is not a tier metric; expected one "
            f"of {', '.join(TIER_METRICS)}"
        )
    if tiers.method not in TIER_METHODS:
        raise ConfigError(
            f"config key 'tiers.method': {tiers.method!r} is not a tier method; expected one "
            f"of {', '.join(TIER_METHODS)}"
        )
    if not 0.0001 <= tiers.relative_error <= 0.1:
        raise ConfigError(
            "config key 'tiers.relative_error': must be between 0.0001 and 0.1 (the value "
            f"histogram grows as it shrinks), got {tiers.relative_error}"
        )
    if tiers.method == "pareto":
        _validate_pareto(tiers)
    if tiers.method == "thresholds":
        _validate_thresholds(tiers)
    if tiers.method == "rfm":
        _validate_rfm(tiers.rfm)
    _validate_levels(tiers)
    if tiers.stability is not None:
        _validate_stability(tiers)


def _validate_stability(tiers: TiersConfig) -> None:
    stability = tiers.stability
    assert stability is not None
    if tiers.method == "rfm":
        raise ConfigError(
            "config key 'tiers.stability': stable tiers need tiers in an order, cut by "
            "points of the metric (methods quantile, pareto and thresholds); rfm segments "
            "are not"
        )
    if not 0.0 <= stability.hysteresis < 1.0:
        raise ConfigError(
            "config key 'tiers.stability.hysteresis': a fraction of the cut point, from 0 "
            f"(none) to below 1, got {stability.hysteresis}"
        )
    if not 1 <= stability.confirm_periods <= 12:
        raise ConfigError(
            "config key 'tiers.stability.confirm_periods': the consecutive periods a new "
            f"tier must hold before a customer moves, from 1 (at once) to 12, got "
            f"{stability.confirm_periods}"
        )


def _check_segment_name(name: str, key: str, seen: set[str]) -> None:
    """A segment name names a partition: letters, digits and underscores, unique whatever
    the case (a case-insensitive file system would merge `A` and `a`), not a reserved one."""
    if not _SEGMENT_NAME.match(name):
        raise ConfigError(
            f"config key '{key}.name': {name!r} must be letters, digits and underscores, "
            "starting with a letter (it names a table partition)"
        )
    if name.lower() in RESERVED_SEGMENTS or name.lower() in seen:
        raise ConfigError(f"config key '{key}.name': {name!r} is reserved or repeated")
    seen.add(name.lower())


def _validate_pareto(tiers: TiersConfig) -> None:
    if not tiers.pareto:
        raise ConfigError("config key 'tiers.pareto': needs at least one class")
    seen: set[str] = set()
    previous = 0.0
    for i, cls in enumerate(tiers.pareto):
        key = f"tiers.pareto[{i}]"
        _check_segment_name(cls.name, key, seen)
        if not previous < cls.share <= 1.0:
            raise ConfigError(
                f"config key '{key}.share': shares must increase, each above 0 and at most 1 "
                f"({cls.share} follows {previous})"
            )
        previous = cls.share
    if tiers.pareto[-1].share != 1.0:
        raise ConfigError(
            f"config key 'tiers.pareto[{len(tiers.pareto) - 1}].share': the last class must "
            f"have share 1.0 so that every customer with revenue gets a class, got {previous}"
        )


def _validate_thresholds(tiers: TiersConfig) -> None:
    if not tiers.thresholds:
        raise ConfigError(
            "config key 'tiers.thresholds': method thresholds needs levels, e.g. "
            "[{name: vip, min: 5000}, {name: regular}]"
        )
    seen: set[str] = set()
    previous = None
    for i, level in enumerate(tiers.thresholds):
        key = f"tiers.thresholds[{i}]"
        _check_segment_name(level.name, key, seen)
        last = i == len(tiers.thresholds) - 1
        if level.min is None and not last:
            raise ConfigError(f"config key '{key}.min': only the last level may leave out min")
        if level.min is not None and previous is not None and level.min >= previous:
            raise ConfigError(
                f"config key '{key}.min': minimums must decrease from the top level down "
                f"({level.min} follows {previous})"
            )
        if level.min is not None and level.min != level.min.quantize(Decimal("0.01")):
            raise ConfigError(
                f"config key '{key}.min': {level.min} has more than two decimals; minimums "
                "are amounts in the reporting currency (or counts of orders)"
            )
        previous = level.min


def _validate_rfm(rfm: RfmConfig) -> None:
    """Scores 1-5; every score triple reaches a segment, and every segment is reached (a
    segment whose scores all match an earlier one would be empty whatever the data)."""
    if not rfm.segments:
        raise ConfigError("config key 'tiers.rfm.segments': needs at least one segment")
    seen: set[str] = set()
    for i, segment in enumerate(rfm.segments):
        key = f"tiers.rfm.segments[{i}]"
        _check_segment_name(segment.name, key, seen)
        for measure in RFM_MEASURES:
            wrong = [s for s in getattr(segment, measure) if s not in RFM_SCORES]
            if wrong:
                raise ConfigError(
                    f"config key '{key}.{measure}': scores are 1 to 5, got {wrong[0]}"
                )
    triples = list(itertools.product(RFM_SCORES, repeat=3))
    reached = {rfm.segment_of(*triple) for triple in triples}
    for triple in triples:
        if rfm.segment_of(*triple) is None:
            raise ConfigError(
                "config key 'tiers.rfm.segments': score "
                + "".join(map(str, triple))
                + " (recency, frequency, monetary) matches no segment; end the list with a "
                "segment that names no scores to take the rest"
            )
    for i, segment in enumerate(rfm.segments):
        if segment.name not in reached:
            raise ConfigError(
                f"config key 'tiers.rfm.segments[{i}]': {segment.name!r} is never reached: "
                "every score it takes matches an earlier segment"
            )


def _validate_levels(tiers: TiersConfig) -> None:
    if not tiers.levels:
        raise ConfigError("config key 'tiers.levels': needs at least one level")
    seen: set[str] = set()
    previous = 0.0
    for i, level in enumerate(tiers.levels):
        key = f"tiers.levels[{i}]"
        _check_segment_name(level.name, key, seen)
        if not 0.0 < level.fraction <= 1.0:
            raise ConfigError(
                f"config key '{key}.fraction': must be above 0 and at most 1, got {level.fraction}"
            )
        if level.fraction <= previous:
            raise ConfigError(
                f"config key '{key}.fraction': fractions must increase from the top tier down "
                f"({level.fraction} follows {previous})"
            )
        previous = level.fraction
    if tiers.levels[-1].fraction != 1.0:
        raise ConfigError(
            f"config key 'tiers.levels[{len(tiers.levels) - 1}].fraction': the last level must "
            f"have fraction 1.0 so that every customer with revenue gets a tier, got {previous}"
        )
    for i, column in enumerate(tiers.by):
        if column not in GROUP_COLUMNS:
            raise ConfigError(
                f"config key 'tiers.by[{i}]': {column!r} cannot group tiers; expected one of "
                f"{', '.join(GROUP_COLUMNS)}"
            )
    if len(set(tiers.by)) != len(tiers.by):
        raise ConfigError("config key 'tiers.by': lists a column twice")
    if not 1 <= tiers.accuracy <= MAX_ACCURACY:
        raise ConfigError(
            f"config key 'tiers.accuracy': must be at least 1 and at most {MAX_ACCURACY:,} "
            f"(memory grows with it), got {tiers.accuracy}"
        )


def validate_clv(clv: ClvConfig) -> None:
    """Check the `clv` section (also after `--calibration-end`/`--holdout-end` set it)."""
    for i, model in enumerate(clv.models):
        if model not in CLV_MODELS:
            raise ConfigError(
                f"config key 'clv.models[{i}]': unknown model {model!r}; expected one of "
                f"{', '.join(CLV_MODELS)}"
            )
    if len(set(clv.models)) != len(clv.models):
        raise ConfigError("config key 'clv.models': lists a model twice")
    if not any(m in CLV_PURCHASE_MODELS for m in clv.models):
        raise ConfigError(
            "config key 'clv.models': needs a model of the number of purchases ("
            f"{' or '.join(CLV_PURCHASE_MODELS)}); gamma_gamma models only their value"
        )
    if clv.time_unit not in CLV_TIME_UNITS:
        raise ConfigError(
            f"config key 'clv.time_unit': expected one of {', '.join(CLV_TIME_UNITS)}, got "
            f"{clv.time_unit!r}"
        )
    if not 1 <= clv.horizon <= MAX_HORIZON:
        raise ConfigError(
            f"config key 'clv.horizon': expected 1 to {MAX_HORIZON} time units "
            f"({clv.time_unit}s; the scores cost one closed form per unit), got {clv.horizon}"
        )
    if not 0 <= clv.discount_rate < 10:
        raise ConfigError(
            "config key 'clv.discount_rate': expected an annual rate such as 0.10 (10%), at "
            f"least 0, got {clv.discount_rate}"
        )
    end, holdout = clv.calibration_end, clv.holdout_end
    if holdout is not None and end is not None and holdout <= end:
        raise ConfigError(
            f"config key 'clv.holdout_end': {holdout} must be after clv.calibration_end ({end})"
        )


__all__ = ["validate", "validate_clv"]
