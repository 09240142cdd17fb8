"""Config: defaults, the shipped files, overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from revseg.config import DEFAULT_LEVELS, Config, TierLevel, load_config
from revseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_when_no_file() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.source.date_partition == "transaction_date"
    assert config.periods.grains == ("month", "quarter", "year")
    assert config.periods.timezone == "UTC"
    assert config.tiers.levels == DEFAULT_LEVELS
    assert [(lvl.name, lvl.fraction) for lvl in config.tiers.levels] == [
        ("platinum", 0.01),
        ("gold", 0.10),
        ("silver", 0.50),
        ("bronze", 1.0),
    ]
    assert config.tiers.accuracy == 10000


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "databricks.yaml", "bench.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "conf" / name)
    assert config.tiers.levels[-1].fraction == 1.0


def test_overrides_parse_values_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "source: {path: /a}\n")
    config = load_config(
        path,
        [
            "source.path=/data/tx",
            "output.path=/data/out",
            "periods.grains=[month, year]",
            "tiers.accuracy=500",
            "spark.spark.sql.shuffle.partitions=16",
            "source.columns.customer_id=cust_no",
        ],
    )
    assert config.source.path == "/data/tx"
    assert config.output.path == "/data/out"
    assert config.periods.grains == ("month", "year")
    assert config.tiers.accuracy == 500
    assert config.spark == {"spark.sql.shuffle.partitions": "16"}
    assert config.source.columns == {"customer_id": "cust_no"}


def test_levels_from_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tiers:\n  levels:\n    - {name: top, fraction: 0.2}\n    - {name: rest, fraction: 1}\n",
    )
    assert load_config(path).tiers.levels == (TierLevel("top", 0.2), TierLevel("rest", 1.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sourc: {path: x}", "unknown config key 'sourc'; did you mean 'source'?"),
        ("source: {pth: x}", "unknown config key 'source.pth'; did you mean 'source.path'?"),
        ("source: {format: avro}", "config key 'source.format': expected one of parquet"),
        ("tiers: {accuracy: 0}", "config key 'tiers.accuracy': must be at least 1"),
        ("tiers: {accuracy: lots}", "config key 'tiers.accuracy': expected a whole number"),
        ("periods: {grains: [month, decade]}", "config key 'periods.grains[1]': unknown grain"),
        ("periods: {timezone: Mars/Olympus}", "config key 'periods.timezone'"),
        ("revenue: {fx_rates: {format: delta}}", "config key 'revenue.fx_rates.path': is required"),
        (
            "revenue: {fx_rates: {path: r, columns: {ccy: c}}}",
            "config key 'revenue.fx_rates.columns.ccy': not a canonical column; expected one of "
            "currency, rate_date, rate",
        ),
        ("revenue: {reporting_currency: KWD}", "KWD has 3 decimal places"),
        ("revenue: {fx_max_staleness_days: -1}", "'revenue.fx_max_staleness_days': expected 0"),
        ("metrics: {include: [ltv]}", "'metrics.include[0]': 'ltv' is not an optional metric"),
        (
            "tiers: {levels: [{name: a, fraction: 0.5}, {name: b, fraction: 0.2}, "
            "{name: c, fraction: 1.0}]}",
            "config key 'tiers.levels[1].fraction': fractions must increase",
        ),
        (
            "tiers: {levels: [{name: a, fraction: 0.1}, {name: b, fraction: 0.9}]}",
            "config key 'tiers.levels[1].fraction': the last level must have fraction 1.0",
        ),
        ("tiers: {levels: [{name: a}]}", "config key 'tiers.levels[0].fraction': is required"),
        (
            "tiers: {levels: [{name: a, fraction: 1, colour: red}]}",
            "unknown config key 'tiers.levels[0].colour'",
        ),
        ("source: {columns: {amount: 'net amount'}}", "config key 'source.columns.amount'"),
        ("source: {columns: {amt: x}}", "config key 'source.columns.amt': not a canonical"),
        ("spark: {sql.shuffle.partitions: 4}", "config key 'spark.sql.shuffle.partitions'"),
        ("revenue: {reporting_currency: dollars}", "config key 'revenue.reporting_currency'"),
        ("tiers: {by: [customer_id]}", "config key 'tiers.by[0]': 'customer_id' cannot group"),
        ("periods: {fiscal_year_start_month: 13}", "'periods.fiscal_year_start_month'"),
        (
            "revenue: {types: {sale: [sale, Refund]}}",
            "config key 'revenue.types.refund[0]': 'refund' is already listed under "
            "revenue.types.sale",
        ),
        ("revenue: {types: {ignore: ['  ']}}", "'revenue.types.ignore[0]': must not be blank"),
        ("revenue: {types: {gift: [x]}}", "unknown config key 'revenue.types.gift'"),
        ("revenue: {refund_attribution: sale}", "expected one of transaction, original"),
        ("revenue: {max_refund_delay_days: -1}", "'revenue.max_refund_delay_days'"),
        ("periods: {timezone: posix/Europe/Berlin}", "is not an IANA time zone name"),
        ("periods: {timezone: localtime}", "is not an IANA time zone name"),
        ("tiers: {accuracy: 5000000000}", "at most 1,000,000"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("source: [1, 2]", "config key 'source': expected a mapping"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_bad_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"config key 'tiers.accuracy': must be at least 1"):
        load_config(None, ["tiers.accuracy=-3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["tiers.accuracy"])


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "source: {path: [unclosed"))


def test_fingerprint_changes_with_content() -> None:
    a = load_config(None)
    b = load_config(None, ["tiers.accuracy=100"])
    assert a.fingerprint() == load_config(None).fingerprint()
    assert a.fingerprint() != b.fingerprint()
