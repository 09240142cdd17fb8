"""Validation: each row gets the first reason it cannot be counted, or none.

Reason codes are a contract: they name rows in the run summary (and in quarantine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from revseg.config import TransactionTypes
from revseg.conform import raw_name
from revseg.contract import MONEY
from revseg.money import currencies_by_minor_unit
from revseg.reasons import (
    AFTER_AS_OF_DATE,
    AMOUNT_OUT_OF_RANGE,
    BEFORE_MIN_DATE,
    EXCLUDED_TYPE,
    INVALID_AMOUNT,
    INVALID_COST,
    INVALID_TIMESTAMP,
    MALFORMED,
    MISSING_AMOUNT,
    MISSING_CURRENCY,
    MISSING_CUSTOMER_ID,
    MISSING_FX_RATE,
    MISSING_TIMESTAMP,
    MISSING_TRANSACTION_ID,
    ROW_REASONS,
    UNKNOWN_TRANSACTION_TYPE,
)


@dataclass(frozen=True)
class RowRules:
    """The configurable row rules, as plain values: instants already placed in the
    business's time zone by the caller (`quality.min_date`, the run's as-of date)."""

    not_before: datetime | None = None  # a row before this instant is before_min_date
    not_after: datetime | None = None  # a row at or after it is after_as_of_date
    max_abs_amount: Decimal | None = None  # in the reporting currency


def is_blank(column: str) -> Column:
    """Null, empty or only white space."""
    return F.col(column).isNull() | (F.trim(F.col(column)) == "")


def unparsed(canonical: str) -> Column:
    """The source had a value, but it did not cast to the canonical type."""
    return F.col(canonical).isNull() & F.col(raw_name(canonical)).isNotNull()


def rounded_by_cast(canonical: str) -> Column:
    """The source value has more decimals than the canonical type holds: the cast rounded
    it (`12.34567`)."""
    exact = F.col(raw_name(canonical)).try_cast("decimal(38,10)")
    return F.col(canonical).isNotNull() & exact.isNotNull() & (exact != F.col(canonical))


def beyond_minor_unit(money: str) -> Column:
    """More decimals than the row's currency has (ISO 4217): `12.345` USD, `100.50` JPY;
    `12.345` KWD is fine. A currency revseg does not know has two."""
    value, currency = F.col(money), normalised_currency()
    check = value != F.bround(value, 2)
    for unit, codes in sorted(currencies_by_minor_unit().items()):
        if unit != 2:
            check = F.when(currency.isin(codes), value != F.bround(value, unit)).otherwise(check)
    return value.isNotNull() & check


def invalid_money(canonical: str) -> Column:
    """Present, but not a number, or with more decimals than revseg may keep (the canonical
    type's or the currency's): revseg does not round source money."""
    return unparsed(canonical) | rounded_by_cast(canonical) | beyond_minor_unit(canonical)


def normalised_type() -> Column:
    return F.lower(F.trim(F.col("transaction_type")))


def transaction_kind(types: TransactionTypes) -> Column:
    """sale | refund | ignore | unknown, from `transaction_type` (none or blank: a sale).

    Computed once per row; the rules and the refund flag read this column.
    """
    value = normalised_type()
    raw = F.col("transaction_type")
    return (
        F.when(raw.isNull(), F.lit("sale"))
        # Values spelled as configured match without trimming and lower-casing every row.
        .when(raw.isin(list(types.sale)), F.lit("sale"))
        .when(raw.isin(list(types.refund)), F.lit("refund"))
        .when(is_blank("transaction_type"), F.lit("sale"))
        .when(value.isin(list(types.normalised("sale"))), F.lit("sale"))
        .when(value.isin(list(types.normalised("refund"))), F.lit("refund"))
        .when(value.isin(list(types.normalised("ignore"))), F.lit("ignore"))
        .otherwise(F.lit("unknown"))
    )


def is_refund() -> Column:
    """A refund, return or chargeback: it reduces revenue by its absolute amount."""
    return F.col("kind") == F.lit("refund")


def normalised_currency(column: str = "currency") -> Column:
    """An ISO code as written, trimmed and in upper case: currencies match in any case."""
    return F.upper(F.trim(F.col(column)))


def domestic_only(reporting_currency: str) -> dict[str, Column]:
    """`reporting_amount` and `fx_problem` when there is no rates table: only rows in the
    reporting currency count; every other currency lacks a rate (never a silent 1)."""
    domestic = normalised_currency() == F.lit(reporting_currency)
    return {
        "reporting_amount": F.when(domestic, F.col("amount").try_cast(MONEY)),
        "reporting_cost": F.when(domestic, F.col("cost").try_cast(MONEY)),
        "fx_problem": F.when(~domestic, F.lit(MISSING_FX_RATE)),
    }


def rejection_reason(row_rules: RowRules | None = None) -> Column:
    """The first rule a conformed row breaks, as a reason code; null for a countable row.

    Reads `kind` (`transaction_kind`), `fx_problem` and `reporting_amount` (the currency
    conversion, `revseg.fx`), and `_malformed` (the reader's corrupt-record text) if present.
    """
    limits = row_rules or RowRules()
    ts = F.col("transaction_ts")
    rules: list[tuple[Column, Column]] = [
        (F.col("_malformed").isNotNull(), F.lit(MALFORMED)),
        (is_blank("transaction_id"), F.lit(MISSING_TRANSACTION_ID)),
        (is_blank("customer_id"), F.lit(MISSING_CUSTOMER_ID)),
        (invalid_money("amount"), F.lit(INVALID_AMOUNT)),
        (F.col("amount").isNull(), F.lit(MISSING_AMOUNT)),
        (invalid_money("cost"), F.lit(INVALID_COST)),
        (unparsed("transaction_ts"), F.lit(INVALID_TIMESTAMP)),
        (F.col("transaction_ts").isNull(), F.lit(MISSING_TIMESTAMP)),
        *(
            [(ts < F.lit(limits.not_before), F.lit(BEFORE_MIN_DATE))]
            if limits.not_before is not None
            else []
        ),
        *(
            [(ts >= F.lit(limits.not_after), F.lit(AFTER_AS_OF_DATE))]
            if limits.not_after is not None
            else []
        ),
        (is_blank("currency"), F.lit(MISSING_CURRENCY)),
        (F.col("kind") == F.lit("ignore"), F.lit(EXCLUDED_TYPE)),
        (F.col("kind") == F.lit("unknown"), F.lit(UNKNOWN_TRANSACTION_TYPE)),
        (F.col("fx_problem").isNotNull(), F.col("fx_problem")),
        # converted beyond decimal(18,2): no real amount does that
        (F.col("reporting_amount").isNull(), F.lit(INVALID_AMOUNT)),
        *(
            [
                (
                    F.abs(F.col("reporting_amount")) > F.lit(limits.max_abs_amount),
                    F.lit(AMOUNT_OUT_OF_RANGE),
                )
            ]
            if limits.max_abs_amount is not None
            else []
        ),
    ]
    reason = F.lit(None).cast("string")
    for condition, code in reversed(rules):
        reason = F.when(condition, code).otherwise(reason)
    return reason


def with_rejection_reason(
    transactions: DataFrame,
    reporting_currency: str,
    types: TransactionTypes | None = None,
    row_rules: RowRules | None = None,
) -> DataFrame:
    """Adds `kind` (see `transaction_kind`) and `reason` (null: the row is counted).

    Without the conversion's columns (`revseg.fx.convert`), only the reporting currency
    counts.
    """
    with_kind = transactions.withColumn("kind", transaction_kind(types or TransactionTypes()))
    if "fx_problem" not in with_kind.columns:
        with_kind = with_kind.withColumns(domestic_only(reporting_currency))
    if "_malformed" not in with_kind.columns:
        with_kind = with_kind.withColumn("_malformed", F.lit(None).cast("string"))
    return with_kind.withColumn("reason", rejection_reason(row_rules))


def reason_counts(reason: Column | str = "reason") -> list[Column]:
    """Aggregates for `DataFrame.observe`: rows in all, and rows per reason code."""
    reason_col = F.col(reason) if isinstance(reason, str) else reason
    return [F.count(F.lit(1)).alias("input_rows")] + [
        F.count(F.when(reason_col == code, 1)).alias(code) for code in ROW_REASONS
    ]
