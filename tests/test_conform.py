"""Conform (`revseg.conform`, `revseg.columns`): source columns resolved to the contract by
name, quoted whatever they hold, and cast so that what does not parse is flagged."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pyspark.sql import SparkSession

from revseg.columns import find_column, resolve_columns
from revseg.errors import SourceError


def test_conform_flags_sub_cent_amounts_and_blank_types_are_sales(spark: SparkSession) -> None:
    from revseg.columns import resolve_columns
    from revseg.conform import conform_transactions
    from revseg.quality import with_rejection_reason

    rows = [
        ("t1", "a", "2024-01-05T10:00:00Z", "12.34", "USD", ""),
        ("t2", "a", "2024-01-05T10:00:00Z", "12.345", "USD", "sale"),
        ("t3", "a", "2024-01-05T10:00:00Z", "twelve", "USD", "sale"),
        ("t4", "a", "not a time", "1.00", "USD", None),
        ("t5", "a", "2024-01-05T10:00:00Z", "1.00", "usd ", "REFUND"),
    ]
    source = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts string, amount string, "
        "currency string, transaction_type string",
    )
    conformed = conform_transactions(source, resolve_columns(source.columns, {}, "test"))
    reasons = [r["reason"] for r in with_rejection_reason(conformed, "USD").collect()]
    assert reasons == [None, "invalid_amount", "invalid_amount", "invalid_timestamp", None]


def test_money_that_a_cast_would_round_or_overflow_is_invalid(spark: SparkSession) -> None:
    """Typed decimal(18,2) money keeps no raw text for valid rows, yet a value too large for
    the contract is `invalid_amount`, not `missing_amount`; text with more decimals than the
    contract holds, and a cost that is not a number, are caught too."""
    from revseg.conform import conform_transactions, raw_name
    from revseg.quality import with_rejection_reason

    ts = datetime(2024, 1, 5)
    typed = spark.createDataFrame(
        [("t1", "a", ts, Decimal("12.34"), "USD"), ("t2", "a", ts, Decimal("1e15"), "USD")],
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount decimal(18,2), currency string",
    )
    conformed = conform_transactions(typed, resolve_columns(typed.columns, {}, "test"))
    rows = with_rejection_reason(conformed, "USD").collect()
    assert [r["reason"] for r in rows] == [None, "invalid_amount"]
    assert rows[0][raw_name("amount")] is None  # nothing kept where the cast was exact

    text = spark.createDataFrame(
        [
            ("t1", "a", ts, "12.34567", "KWD", None),
            ("t2", "a", ts, "12.345", "kwd", "abc"),
            ("t3", "a", ts, "12.345", "KWD", "0.125"),
            ("t4", "a", ts, "7", "JPY", "0.5"),
            ("t5", "a", ts, "7", "JPY", "1"),
        ],
        "transaction_id string, customer_id string, transaction_ts timestamp, "
        "amount string, currency string, cost string",
    )
    conformed = conform_transactions(text, resolve_columns(text.columns, {}, "test"))
    reasons = [r["reason"] for r in with_rejection_reason(conformed, "KWD").collect()]
    assert reasons == ["invalid_amount", "invalid_cost", None, "invalid_cost", "missing_fx_rate"]


def test_source_column_names_are_quoted_whatever_they_hold(spark: SparkSession) -> None:
    from revseg.columns import resolve_columns
    from revseg.conform import conform_transactions

    frame = spark.createDataFrame(
        [("t1", "a", datetime(2024, 1, 5), "12.50", "USD")],
        "`tx.id` string, `cust``no` string, ts timestamp, `net amount` string, ccy string",
    )
    mapping = {
        "transaction_id": "tx.id",
        "customer_id": "cust`no",
        "transaction_ts": "ts",
        "amount": "net amount",
        "currency": "ccy",
    }
    columns = resolve_columns(frame.columns, mapping, "memory")
    row = conform_transactions(frame, columns).first()
    assert row is not None
    assert (row["transaction_id"], row["customer_id"], row["amount"]) == (
        "t1",
        "a",
        Decimal("12.50"),
    )


def test_find_column_prefers_the_exact_name_then_any_case() -> None:
    assert find_column(["Amount", "amount"], "amount") == "amount"
    assert find_column(["Amount", "amount"], "Amount") == "Amount"
    assert find_column(["Customer_ID", "amount"], "customer_id") == "Customer_ID"
    assert find_column(["customer_id"], "CUSTOMER_ID") == "customer_id"
    assert find_column(["customer_id"], "customer") is None
    assert find_column([], "amount") is None


def test_resolve_columns_by_name_mapping_and_case() -> None:
    available = ["transaction_id", "Customer_Id", "transaction_ts", "AMOUNT", "ccy", "channel"]
    resolved = resolve_columns(available, {"currency": "CCY"}, "/lake")
    assert resolved == {
        "transaction_id": "transaction_id",  # an exact match
        "customer_id": "Customer_Id",  # in another case
        "transaction_ts": "transaction_ts",
        "amount": "AMOUNT",
        "currency": "ccy",  # mapped, in another case
        "channel": "channel",  # an optional column present; the absent ones are left out
    }


def test_resolve_columns_names_what_is_missing_and_the_key() -> None:
    available = ["transaction_id", "customer_id", "transaction_ts", "currency"]
    with pytest.raises(SourceError) as missing:
        resolve_columns(available, {}, "/lake")
    message = str(missing.value)
    assert "required column 'amount' not found" in message and "/lake" in message
    assert "set source.columns.amount" in message
    assert "currency, customer_id, transaction_id, transaction_ts" in message  # what there is

    with pytest.raises(SourceError) as mapped:
        resolve_columns(available, {"amount": "net_amount"}, "/lake")
    message = str(mapped.value)
    assert "'amount'" in message and "'net_amount'" in message
    assert "mapped by source.columns.amount" in message

    # An optional column is left out when absent, unless the config maps it.
    with_amount = [*available, "amount"]
    assert "channel" not in resolve_columns(with_amount, {}, "/lake")
    with pytest.raises(SourceError) as optional:
        resolve_columns(with_amount, {"channel": "sales_channel"}, "/lake")
    message = str(optional.value)
    assert "'sales_channel'" in message and "source.columns.channel" in message
    assert "/lake" in message
