"""Typed, frozen configuration loaded from YAML, with errors that name the key path.

The config is read once at the edge (the CLI or a job), validated whole, and passed
down as plain values. Every mistake is reported as a `ConfigError` whose message
starts with the dotted key path, so a user can find it in the file at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union

import yaml

from revseg.contract import CANONICAL_COLUMNS, GROUP_COLUMNS
from revseg.errors import ConfigError
from revseg.money import MINOR_UNITS
from revseg.periods import SUPPORTED_GRAINS

SOURCE_FORMATS = ("parquet", "delta", "csv", "json")
NO_REVENUE_SEGMENT = "no_revenue"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_NOT_JAVA_ZONE_PREFIXES = ("posix/", "right/", "SystemV/")
_NOT_JAVA_ZONES = ("localtime", "Factory", "posixrules")
MAX_ACCURACY = 1_000_000


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
    def path(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def columns(self) -> Mapping[str, str]: ...

    @property
    def options(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class SourceConfig:
    """Where the transactions are and how their columns map to the canonical contract."""

    path: str = "data/transactions"
    format: str = "parquet"
    columns: Mapping[str, str] = field(default_factory=dict)
    date_partition: str | None = "transaction_date"
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputConfig:
    """Where the Delta output tables live."""

    path: str = "data/output"


@dataclass(frozen=True)
class PeriodsConfig:
    """Which period grains to compute and in which time zone periods are cut."""

    grains: tuple[str, ...] = ("month", "quarter", "year")
    timezone: str = "UTC"
    fiscal_year_start_month: int = 1


@dataclass(frozen=True)
class TiersConfig:
    """Tier levels (highest first) and the accuracy passed to percentile_approx."""

    levels: tuple[TierLevel, ...] = DEFAULT_LEVELS
    accuracy: int = 10000
    by: tuple[str, ...] = ()


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
    """The exchange-rate table: one rate to the reporting currency per currency and date."""

    path: str
    format: str = "parquet"
    columns: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


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

    `min_date` is an ISO date; `max_abs_amount` a decimal in the reporting currency (text
    or a number in YAML); both optional.
    """

    guest_customer_id: str | None = None
    min_date: str | None = None
    max_abs_amount: str | None = None
    quarantine_excluded: bool = False
    max_quarantine_fraction: float = 0.05
    allow_empty_periods: bool = False

    def min_day(self) -> date | None:
        return date.fromisoformat(self.min_date) if self.min_date else None

    def max_amount(self) -> Decimal | None:
        return Decimal(self.max_abs_amount) if self.max_abs_amount is not None else None


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
    spark: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A stable hash of the effective config, for the run log and idempotent writes."""
        canonical = json.dumps(to_plain(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def to_plain(value: Any) -> Any:
    """Turn a config (or part of one) back into plain dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    return value


# --- loading -----------------------------------------------------------------------------


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load a YAML config file (or the defaults), apply `KEY=VALUE` overrides, validate."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        raw = _read_yaml(Path(path))
    for override in overrides:
        _apply_override(raw, override)
    try:
        config = _build(Config, raw, "")
        _validate(config)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_kind(data)}")
    return data


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set one dotted key (`a.b.c=value`, value parsed as YAML) in the raw config."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. output.path=/data/out")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value is not valid YAML: {err}") from None
    parts = _split_key(key)
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {key}: '{where}' is not a mapping")
        node = child
    node[parts[-1]] = value


def _split_key(key: str) -> list[str]:
    """Split a dotted key; the keys of free-form maps (spark.*, source.columns) stay whole."""
    parts = key.split(".")
    cls: Any = Config
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        hint = hints.get(part)
        if hint is None:
            return parts
        if _is_mapping(hint):
            return [*parts[: i + 1], ".".join(parts[i + 1 :])] if i + 1 < len(parts) else parts
        cls = _strip_optional(hint)
    return parts


def _build(cls: Any, raw: Any, path: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"config key '{path.rstrip('.') or '(top level)'}': expected a mapping, "
            f"got {_kind(raw)}"
        )
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f"; did you mean '{path}{hint[0]}'?" if hint else ""
            raise ConfigError(
                f"unknown config key '{path}{key}'{suggestion} (known keys under "
                f"'{path.rstrip('.') or 'the top level'}': {', '.join(known)})"
            )
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise ConfigError(f"config key '{path}{f.name}': is required")
    values = {name: _coerce(hints[name], raw[name], f"{path}{name}") for name in raw}
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """Check one value against its declared type, converting where YAML is loose."""
    if _is_optional(hint):
        if value is None:
            return None
        hint = _strip_optional(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{path}.")
    if _is_mapping(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}': expected a mapping, got {_kind(value)}")
        return types.MappingProxyType(
            {str(k): _scalar_text(v, f"{path}.{k}") for k, v in value.items()}
        )
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{path}': expected a list, got {_kind(value)}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}': expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key '{path}': expected a number, got {_kind(value)}")
        return float(value)
    if hint is str and path.endswith("max_abs_amount") and isinstance(value, int | float):
        if isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected an amount, got {_kind(value)}")
        return str(value)
    if hint is str and isinstance(value, date):  # YAML reads 2024-01-01 as a date
        return value.isoformat()
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}': expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a bug in revseg


def _scalar_text(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"config key '{path}': expected a single value, got {_kind(value)}")


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(
        hint
    )


def _strip_optional(hint: Any) -> Any:
    if _is_optional(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner
    return hint


def _is_mapping(hint: Any) -> bool:
    return typing.get_origin(_strip_optional(hint)) is Mapping


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


# --- validation --------------------------------------------------------------------------


def _validate(config: Config) -> None:
    _validate_source(config.source)
    if not config.output.path.strip():
        raise ConfigError("config key 'output.path': must not be empty")
    _validate_periods(config.periods)
    _validate_tiers(config.tiers)
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
    _validate_quality(config.quality)
    for key in config.spark:
        if not key.startswith("spark."):
            raise ConfigError(f"config key 'spark.{key}': Spark settings start with 'spark.'")


def _validate_quality(quality: QualityConfig) -> None:
    if quality.guest_customer_id is not None and not quality.guest_customer_id.strip():
        raise ConfigError("config key 'quality.guest_customer_id': must not be blank")
    if quality.min_date is not None:
        try:
            date.fromisoformat(quality.min_date)
        except ValueError:
            raise ConfigError(
                "config key 'quality.min_date': expected a date such as 2020-01-01, got "
                f"{quality.min_date!r}"
            ) from None
    if quality.max_abs_amount is not None:
        try:
            amount = Decimal(quality.max_abs_amount)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount <= 0:
            raise ConfigError(
                "config key 'quality.max_abs_amount': expected a positive amount such as "
                f"1000000, got {quality.max_abs_amount!r}"
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


def _validate_table(key: str, table: InputTable, known_columns: tuple[str, ...]) -> None:
    """An input table's path, format and column mapping (the source, the FX rates)."""
    if not table.path.strip():
        raise ConfigError(f"config key '{key}.path': must not be empty")
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
    if not tiers.levels:
        raise ConfigError("config key 'tiers.levels': needs at least one level")
    seen: set[str] = set()
    previous = 0.0
    for i, level in enumerate(tiers.levels):
        key = f"tiers.levels[{i}]"
        if not _SEGMENT_NAME.match(level.name):
            raise ConfigError(
                f"config key '{key}.name': {level.name!r} must be lower case letters, digits "
                "and underscores (it names a table partition)"
            )
        if level.name == NO_REVENUE_SEGMENT or level.name in seen:
            raise ConfigError(f"config key '{key}.name': {level.name!r} is reserved or repeated")
        seen.add(level.name)
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
