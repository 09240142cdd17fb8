"""Typed, frozen configuration loaded from YAML, with errors that name the key path.

The config is read once at the edge (the CLI, a job or a notebook), validated whole, and
passed down as plain values. Every mistake is reported as a `ConfigError` whose message
starts with the dotted key path, so a user can find it in the file at once.

`model` holds the dataclasses, `load` builds them (YAML, overrides, dicts) and `rules`
validates them. Nothing here imports pyspark.
"""

from __future__ import annotations

from revseg.config.load import config_from_dict, load_config
from revseg.config.model import (
    CLV_MODELS,
    CLV_PURCHASE_MODELS,
    CLV_TIME_UNITS,
    DEFAULT_LEVELS,
    DEFAULT_METRICS,
    FX_COLUMNS,
    MAX_ACCURACY,
    METRIC_SOURCE_COLUMNS,
    NO_REVENUE_SEGMENT,
    OPTIONAL_METRICS,
    REFUND_ATTRIBUTIONS,
    SOURCE_FORMATS,
    ClvConfig,
    Config,
    FxRatesConfig,
    InputTable,
    MetricsConfig,
    OutputConfig,
    PeriodsConfig,
    QualityConfig,
    RevenueConfig,
    SourceConfig,
    TierLevel,
    TiersConfig,
    TransactionTypes,
    to_plain,
)
from revseg.config.rules import validate

__all__ = [
    "CLV_MODELS",
    "CLV_PURCHASE_MODELS",
    "CLV_TIME_UNITS",
    "DEFAULT_LEVELS",
    "DEFAULT_METRICS",
    "FX_COLUMNS",
    "MAX_ACCURACY",
    "METRIC_SOURCE_COLUMNS",
    "NO_REVENUE_SEGMENT",
    "OPTIONAL_METRICS",
    "REFUND_ATTRIBUTIONS",
    "SOURCE_FORMATS",
    "ClvConfig",
    "Config",
    "FxRatesConfig",
    "InputTable",
    "MetricsConfig",
    "OutputConfig",
    "PeriodsConfig",
    "QualityConfig",
    "RevenueConfig",
    "SourceConfig",
    "TierLevel",
    "TiersConfig",
    "TransactionTypes",
    "config_from_dict",
    "load_config",
    "to_plain",
    "validate",
]
