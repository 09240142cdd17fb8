"""Config: defaults, the shipped files, overrides, and errors that name the key path."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from revseg.config import (
    DEFAULT_LEVELS,
    Config,
    QualityConfig,
    TierLevel,
    config_from_dict,
    load_config,
    to_plain,
)
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
        ("revenue: {fx_rates: {format: delta}}", "revenue.fx_rates.path or revenue.fx_rates.table"),
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
        ("tiers: {metric: profit}", "config key 'tiers.metric': 'profit' is not a tier metric"),
        ("tiers: {method: kmeans}", "config key 'tiers.method': 'kmeans' is not a tier method"),
        ("tiers: {relative_error: 0.5}", "config key 'tiers.relative_error': must be between"),
        (
            "tiers: {method: pareto, pareto: [{name: A, share: 0.9}, {name: B, share: 0.8}]}",
            "config key 'tiers.pareto[1].share': shares must increase",
        ),
        (
            "tiers: {method: pareto, pareto: [{name: A, share: 0.8}, {name: B, share: 0.95}]}",
            "config key 'tiers.pareto[1].share': the last class must have share 1.0",
        ),
        ("tiers: {method: thresholds}", "config key 'tiers.thresholds': method thresholds needs"),
        (
            "tiers: {method: thresholds, thresholds: [{name: vip, min: 50}, {name: x, min: 80}]}",
            "config key 'tiers.thresholds[1].min': minimums must decrease",
        ),
        (
            "tiers: {method: thresholds, thresholds: [{name: vip}, {name: rest}]}",
            "config key 'tiers.thresholds[0].min': only the last level may leave out min",
        ),
        (
            "tiers: {method: thresholds, thresholds: [{name: vip, min: 9.999}]}",
            "config key 'tiers.thresholds[0].min': 9.999 has more than two decimals",
        ),
        (
            "tiers: {method: rfm, rfm: {segments: [{name: top, recency: [6]}, {name: rest}]}}",
            "config key 'tiers.rfm.segments[0].recency': scores are 1 to 5, got 6",
        ),
        (
            "tiers: {method: rfm, rfm: {segments: [{name: top, recency: [5]}]}}",
            "config key 'tiers.rfm.segments': score 111 (recency, frequency, monetary) matches "
            "no segment",
        ),
        (
            "tiers: {method: rfm, rfm: {segments: [{name: all}, {name: top, monetary: [5]}]}}",
            "config key 'tiers.rfm.segments[1]': 'top' is never reached",
        ),
        (
            "tiers: {levels: [{name: new, fraction: 0.1}, {name: rest, fraction: 1.0}]}",
            "config key 'tiers.levels[0].name': 'new' is reserved or repeated",
        ),
        (
            "tiers: {method: rfm, rfm: {segments: [{name: no_revenue}]}}",
            "config key 'tiers.rfm.segments[0].name': 'no_revenue' is reserved or repeated",
        ),
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


# Run logs hold these fingerprints: a change would make every incremental run after an
# upgrade recompute everything, so they must not change by accident. The built-in
# defaults and cluster.yaml keep revseg 0.1.0's values. revseg 0.2.0 changed the others
# once, on purpose: the `spark` map no longer counts (driver memory does not change a
# result) and conf/local.yaml no longer names the bundled sample's FX table, which made
# it the built-in defaults.
LOCAL = str(REPO / "conf" / "local.yaml")
DEFAULTS = "52d9e118446a8062"
PINNED_FINGERPRINTS = [
    (LOCAL, (), DEFAULTS),
    (
        LOCAL,
        ("quality.min_date=2020-01-01", "quality.max_abs_amount=1000000"),
        "735cc959d9ccd668",
    ),
    (LOCAL, ("quality.max_abs_amount='2500.50'",), "b17a2690f1e779b8"),
    (LOCAL, ("quality.max_abs_amount=2500.5",), "a37b1752304c84a2"),
    (LOCAL, ("quality.min_date='2021-03-04'",), "ddaa060f92804bdd"),
    (None, (), DEFAULTS),
    (str(REPO / "conf" / "bench.yaml"), (), "e53ecba6e8ee2fea"),
    (str(REPO / "conf" / "cluster.yaml"), (), "46cf76bab65359f0"),
]


@pytest.mark.parametrize(("path", "overrides", "fingerprint"), PINNED_FINGERPRINTS)
def test_fingerprints_are_pinned(
    path: str | None, overrides: tuple[str, ...], fingerprint: str
) -> None:
    assert load_config(path, overrides).fingerprint() == fingerprint


def test_spark_settings_do_not_change_the_fingerprint() -> None:
    """Raising driver memory must not make the next --incremental run recompute."""
    tuned = load_config(None, ["spark.spark.driver.memory=16g", "spark.spark.master=local[2]"])
    assert tuned.spark["spark.driver.memory"] == "16g"
    assert tuned.fingerprint() == DEFAULTS


def test_typed_fingerprint_values_match_the_text_ones() -> None:
    typed = load_config(
        LOCAL, {"quality.min_date": date(2020, 1, 1), "quality.max_abs_amount": 1000000}
    )
    assert typed.fingerprint() == "735cc959d9ccd668"
    assert load_config(LOCAL, {"quality.max_abs_amount": Decimal("2500.50")}).fingerprint() == (
        "b17a2690f1e779b8"
    )


def test_loading_a_config_does_not_import_pyspark() -> None:
    code = (
        "import sys, revseg.config; revseg.config.load_config('conf/local.yaml'); "
        "print('pyspark' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# --- typed quality limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quality: {min_date: 2020-01-01}", date(2020, 1, 1)),
        ("quality: {min_date: '2020-01-01'}", date(2020, 1, 1)),
        ("quality: {min_date: null}", None),
        ("quality: {}", None),
    ],
)
def test_min_date_is_a_date(tmp_path: Path, text: str, expected: date | None) -> None:
    min_date = load_config(write(tmp_path, text)).quality.min_date
    assert min_date == expected
    assert type(min_date) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quality: {max_abs_amount: 1000000}", Decimal("1000000")),
        ("quality: {max_abs_amount: 2500.5}", Decimal("2500.5")),
        ("quality: {max_abs_amount: 0.1}", Decimal("0.1")),
        ("quality: {max_abs_amount: '2500.50'}", Decimal("2500.50")),
        ("quality: {max_abs_amount: null}", None),
    ],
)
def test_max_abs_amount_is_a_decimal(tmp_path: Path, text: str, expected: Decimal | None) -> None:
    amount = load_config(write(tmp_path, text)).quality.max_abs_amount
    assert amount == expected
    assert type(amount) is type(expected)
    if expected is not None:
        assert str(amount) == str(expected)  # 2500.50 keeps its digits; 0.1 is not binary


MIN_DATE_ERROR = "config key 'quality.min_date': expected a date such as 2020-01-01, got "
AMOUNT_ERROR = (
    "config key 'quality.max_abs_amount': expected a positive amount such as 1000000, got "
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quality: {min_date: true}", MIN_DATE_ERROR + "a boolean (true)"),
        ("quality: {min_date: soon}", MIN_DATE_ERROR + "'soon'"),
        ("quality: {min_date: '2020-13-01'}", MIN_DATE_ERROR + "'2020-13-01'"),
        ("quality: {min_date: 2020}", MIN_DATE_ERROR + "int 2020"),
        ("quality: {min_date: 2020-01-01 10:00:00}", MIN_DATE_ERROR + "'2020-01-01T10:00:00'"),
        ("quality: {min_date: [2020-01-01]}", MIN_DATE_ERROR + "a list"),
        ("quality: {max_abs_amount: true}", AMOUNT_ERROR + "a boolean (true)"),
        ("quality: {max_abs_amount: lots}", AMOUNT_ERROR + "'lots'"),
        ("quality: {max_abs_amount: .nan}", AMOUNT_ERROR + "'nan'"),
        ("quality: {max_abs_amount: Infinity}", AMOUNT_ERROR + "'Infinity'"),
        ("quality: {max_abs_amount: 0}", AMOUNT_ERROR + "'0'"),
        ("quality: {max_abs_amount: '-5.00'}", AMOUNT_ERROR + "'-5.00'"),
        ("quality: {max_abs_amount: {a: 1}}", AMOUNT_ERROR + "a mapping"),
        ("quality: {min_date: 2020-02-30}", "not valid YAML: day is out of range for month"),
    ],
)
def test_bad_quality_limits(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert str(info.value).endswith(message)


# --- Config.from_dict ----------------------------------------------------------------------


def test_from_dict_builds_and_validates() -> None:
    raw = {
        "source": {"path": "/lake/tx", "columns": {"customer_id": "cust_no"}},
        "periods": {"grains": ["month", "year"], "timezone": "Europe/Berlin"},
        "tiers": {"levels": [{"name": "top", "fraction": 0.2}, {"name": "rest", "fraction": 1}]},
        "quality": {"min_date": "2020-01-01", "max_abs_amount": 1000},
        "spark": {"spark.sql.shuffle.partitions": 4},
    }
    config = Config.from_dict(raw)
    assert config == config_from_dict(raw)
    assert config.source.columns == {"customer_id": "cust_no"}
    assert config.periods.grains == ("month", "year")
    assert config.tiers.levels == (TierLevel("top", 0.2), TierLevel("rest", 1.0))
    assert config.quality == QualityConfig(min_date=date(2020, 1, 1), max_abs_amount=Decimal(1000))
    assert config.spark == {"spark.sql.shuffle.partitions": "4"}
    assert Config.from_dict({}) == Config() == load_config(None)


def test_from_dict_equals_the_yaml_file() -> None:
    import yaml

    raw = yaml.safe_load((REPO / "conf" / "local.yaml").read_text())
    config = Config.from_dict(raw)
    assert config == load_config(LOCAL)
    assert config.fingerprint() == DEFAULTS


def test_from_dict_takes_python_values() -> None:
    config = Config.from_dict(
        {
            "periods": {"grains": ("month",)},
            "tiers": {"levels": [TierLevel("all", 1.0)]},
            "quality": QualityConfig(min_date=date(2021, 3, 4), max_abs_amount=Decimal("2.5")),
        }
    )
    assert config.tiers.levels == (TierLevel("all", 1.0),)
    assert config.quality.min_date == date(2021, 3, 4)
    assert config.quality.max_abs_amount == Decimal("2.5")


def test_from_dict_round_trips_to_plain() -> None:
    config = load_config(LOCAL, ["quality.min_date=2020-01-01", "quality.max_abs_amount=2500.50"])
    assert Config.from_dict(to_plain(config)) == config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sourc": {}}, "config: unknown config key 'sourc'; did you mean 'source'?"),
        ({"tiers": {"accuracy": 0}}, "config: config key 'tiers.accuracy': must be at least 1"),
        ({"periods": {"grains": "month"}}, "config: config key 'periods.grains': expected a list"),
        ({"quality": {"min_date": datetime(2020, 1, 1, 10)}}, "config: " + MIN_DATE_ERROR),
        ({"quality": {"max_abs_amount": Decimal("-1")}}, "config: " + AMOUNT_ERROR + "'-1'"),
        ([1, 2], "config: config key '(top level)': expected a mapping, got a list"),
    ],
)
def test_from_dict_errors_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(raw)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


# --- mapping overrides ---------------------------------------------------------------------


def test_mapping_overrides_set_values_as_they_are(tmp_path: Path) -> None:
    path = write(tmp_path, "source: {path: /a}\noutput: {path: /out}\n")
    config = load_config(
        path,
        {
            "periods.grains": ["month"],
            "output.path": "2024-01-01",  # text stays text: not parsed as a YAML date
            "source.path": "[not, a, list]",
            "spark.spark.sql.shuffle.partitions": 16,
            "source.columns.customer_id": "cust_no",
            "quality.min_date": date(2020, 1, 1),
            "quality.max_abs_amount": "2500.50",
        },
    )
    assert config.periods.grains == ("month",)
    assert config.output.path == "2024-01-01"
    assert config.source.path == "[not, a, list]"
    assert config.spark == {"spark.sql.shuffle.partitions": "16"}
    assert config.source.columns == {"customer_id": "cust_no"}
    assert config.quality.min_date == date(2020, 1, 1)
    assert config.quality.max_abs_amount == Decimal("2500.50")


def test_mapping_overrides_equal_the_string_form() -> None:
    strings = load_config(LOCAL, ["periods.grains=[month, year]", "tiers.accuracy=500"])
    mapping = load_config(LOCAL, {"periods.grains": ["month", "year"], "tiers.accuracy": 500})
    assert mapping == strings
    assert mapping.fingerprint() == strings.fingerprint()


def test_mapping_overrides_do_not_change_the_callers_values() -> None:
    fx = {"path": "/fx"}
    config = load_config(None, {"revenue.fx_rates": fx, "revenue.fx_rates.format": "delta"})
    assert config.revenue.fx_rates is not None
    assert (config.revenue.fx_rates.path, config.revenue.fx_rates.format) == ("/fx", "delta")
    assert fx == {"path": "/fx"}


def test_bad_mapping_overrides() -> None:
    prefix = "^the built-in defaults with the overrides: "
    with pytest.raises(ConfigError, match=prefix + r"config key 'tiers.accuracy': expected a"):
        load_config(None, {"tiers.accuracy": "500"})  # a mapping's values are not YAML
    with pytest.raises(ConfigError, match=r"override periods.grains.x: 'periods.grains' is not"):
        load_config(None, {"periods.grains": ["month"], "periods.grains.x": 1})
    with pytest.raises(ConfigError, match="expected a dotted config key"):
        load_config(None, {"": 1})
