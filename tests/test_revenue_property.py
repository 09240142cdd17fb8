"""Property: for random transactions, revenue per period equals converted sales minus refunds.

The expected side is plain Python (Decimal, zoneinfo) written from the documented rules, not
from revseg's code: types, duplicates, time zones, the FX rate of the row's own day or the
latest one within the staleness limit, half-even rounding per transaction, and every grain.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from revseg.columns import resolve_columns
from revseg.config import load_config
from revseg.customer_periods import customer_period_rows
from revseg.io.inputs import read_rates
from revseg.metrics import with_period_labels
from revseg.periods import Month, make_grains
from revseg.pipeline import pass_options

GRAINS = ("week", "month", "quarter", "year", "fiscal_year", "fiscal_quarter", "rolling_3m")
STALENESS = 3
RATES = {  # currency -> {date: rate to USD}; EUR on Mondays and Thursdays, JPY weekly
    "EUR": {
        date(2023, 12, 28) + timedelta(days=d): Decimal("1.07") + Decimal(d) / Decimal(10000)
        for d in range(0, 200)
        if (date(2023, 12, 28) + timedelta(days=d)).weekday() in (0, 3)
    },
    "JPY": {
        date(2023, 12, 25) + timedelta(days=7 * w): Decimal("0.00671234") + Decimal(w) / 10**7
        for w in range(30)
    },
}
TX_SCHEMA = (
    "transaction_id string, customer_id string, transaction_ts timestamp, "
    "amount decimal(18,2), currency string, transaction_type string"
)
SIGN = {None: 1, "sale": 1, " Sale": 1, "refund": -1, "CHARGEBACK": -1, "test": 0}

transaction = st.tuples(
    st.sampled_from(["c1", "c2", "c3", "c4"]),
    st.integers(0, 182 * 86_400 - 1),  # seconds into 2024-01-01 .. 2024-06-30 (UTC)
    st.integers(-20_000, 200_000),  # cents
    st.sampled_from(["USD", "USD", "eur", "JPY", "GBP"]),
    st.sampled_from(list(SIGN)),
    st.booleans(),  # delivered twice
)


def usd(amount: Decimal, currency: str, day: date) -> Decimal | None:
    """The documented conversion, in Decimal: None when no usable rate exists."""
    if currency == "USD":
        return amount
    rates = RATES.get(currency, {})
    known = [d for d in rates if d <= day]
    if not known or (day - max(known)).days > STALENESS:
        return None
    return (amount * rates[max(known)]).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def periods_of(day: date) -> list[tuple[str, str]]:
    """Every (grain, period) a day counts in, fiscal years starting in April."""
    month = Month.of(day.year, day.month)
    fiscal_start = month.index - (month.index - 3) % 12
    fiscal_year = (fiscal_start + 11) // 12
    found = [
        ("month", str(month)),
        ("quarter", f"{day.year}-Q{(day.month - 1) // 3 + 1}"),
        ("year", str(day.year)),
        ("fiscal_year", f"FY{fiscal_year}"),
        ("fiscal_quarter", f"FY{fiscal_year}-Q{(month.index - fiscal_start) // 3 + 1}"),
    ]
    found += [("rolling_3m", f"L3M-{month + i}") for i in range(3)]
    iso_year, iso_week, _ = day.isocalendar()
    found.append(("week", f"{iso_year}-W{iso_week:02d}"))
    return found


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(transaction, min_size=1, max_size=25),
    zone=st.sampled_from(["UTC", "Asia/Tokyo", "America/Los_Angeles"]),
)
def test_net_revenue_per_period_equals_converted_sales_minus_refunds(
    spark: SparkSession, tmp_path: Path, rows: list[tuple], zone: str
) -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    records = []
    for i, (customer, seconds, cents, currency, kind, twice) in enumerate(rows):
        if currency == "JPY":
            cents -= cents % 100  # whole yen
        moment = start + timedelta(seconds=seconds)
        amount = Decimal(cents) / 100
        record = (f"t{i}", customer, moment, amount, currency, kind)
        records += [record, record] if twice else [record]
        day = moment.astimezone(ZoneInfo(zone)).date()
        converted = usd(amount, currency.upper(), day)
        if SIGN[kind] == 0 or converted is None:
            continue
        value = converted if SIGN[kind] > 0 else -abs(converted)
        for key in periods_of(day):
            expected[key] += value

    rates_path = tmp_path / "rates"
    spark.createDataFrame(
        [(c, d, r) for c, by_day in RATES.items() for d, r in by_day.items()],
        "currency string, rate_date date, rate decimal(19,8)",
    ).write.mode("overwrite").parquet(str(rates_path))
    config = load_config(
        None,
        [
            f"periods.grains=[{', '.join(GRAINS)}]",
            f"periods.timezone={zone}",
            "periods.fiscal_year_start_month=4",
            f"revenue.fx_rates.path={rates_path}",
            f"revenue.fx_max_staleness_days={STALENESS}",
        ],
    )
    grains = make_grains(GRAINS, 4)
    source = spark.createDataFrame(records, TX_SCHEMA)
    assert config.revenue.fx_rates is not None
    options = pass_options(config, read_rates(spark, config.revenue.fx_rates), None)
    columns = resolve_columns(source.columns, {}, "memory")
    frame = customer_period_rows(source, columns, options, grains).rows
    periods = with_period_labels(frame.where(frame.grain_idx < len(grains)), grains)
    got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in periods.collect():
        got[(row["period_grain"], row["period"])] += Decimal(row["revenue_cents"]) / 100
    assert dict(got) == dict(expected)
