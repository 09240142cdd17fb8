"""Quarantine (`revseg.quarantine`): every row a run cannot count lands in
`quarantined_transactions` with its reason, as read; the extra copies of a duplicated
transaction are every copy but the earliest."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.columns import resolve_columns
from revseg.config import load_config
from revseg.customer_periods import checked_transactions
from revseg.pipeline import pass_options, run_segmentation
from revseg.quarantine import extra_copies, quarantine_records, transaction_key
from tests.lakes import month_config, read_delta, segments

# transaction_id in bad_rows.csv -> the reason revseg must give it
EXPECTED_REASONS = {
    "k-missing-customer": "missing_customer_id",
    None: "missing_transaction_id",
    "k-invalid-amount": "invalid_amount",
    "k-sub-cent": "invalid_amount",
    "k-missing-amount": "missing_amount",
    "k-missing-ts": "missing_timestamp",
    "k-invalid-ts": "invalid_timestamp",
    "k-before-min": "before_min_date",
    "k-after-as-of": "after_as_of_date",
    "k-too-large": "amount_out_of_range",
    "k-unknown-ccy": "missing_fx_rate",
    "k-missing-ccy": "missing_currency",
    "k-test-order": "excluded_type",
    "k-unknown-type": "unknown_transaction_type",
    "v1": "duplicate",
    "k-too-many-fields": "malformed",
    "k-too-few-fields": "malformed",
}


@pytest.mark.parametrize("transaction_id", list(EXPECTED_REASONS), ids=str)
def test_each_bad_row_is_quarantined_with_its_reason(bad_run: Any, transaction_id: str) -> None:
    result, out = bad_run
    rows = [
        r
        for r in read_delta(out / contract.QUARANTINED_TRANSACTIONS)
        if r["transaction_id"] == transaction_id
    ]
    assert [r["reason"] for r in rows] == [EXPECTED_REASONS[transaction_id]]
    (row,) = rows
    assert row["run_id"] == result.run_id and row["run_date"] is not None
    assert row["source_file"].endswith("part-0.csv")
    if row["reason"] != "malformed":  # the row as read, every column, as JSON
        record = json.loads(row["source_record"])
        assert record.get("transaction_id") == transaction_id
        assert record["transaction_date"] == "2024-01-15"
    else:  # the line as it was in the file
        assert row["source_record"].startswith(transaction_id)


def test_malformed_json_lines_are_quarantined(spark: SparkSession, tmp_path: Path) -> None:
    day = tmp_path / "lake" / "transaction_date=2024-01-15"
    day.mkdir(parents=True)
    good = (
        '{"transaction_id": "j1", "customer_id": "a", "transaction_ts": '
        '"2024-01-15T10:00:00Z", "amount": 12.5, "currency": "USD"}'
    )
    (day / "part-0.json").write_text(good + "\n" + '{"transaction_id": "j2", "customer_' + "\n")
    out = tmp_path / "out"
    run_segmentation(
        spark,
        month_config(str(tmp_path / "lake"), out, "quality.max_quarantine_fraction=1", fmt="json"),
    )
    assert segments(out) == {("a", "2024-01"): Decimal("12.50")}
    (row,) = read_delta(out / contract.QUARANTINED_TRANSACTIONS)
    assert row["reason"] == "malformed" and row["source_record"].startswith(
        '{"transaction_id": "j2"'
    )


def test_extra_copies_are_every_copy_but_the_earliest_in_the_quarantine_shape(
    spark: SparkSession,
) -> None:
    rows = [
        ("t1", "a", "2024-01-05T10:00:00Z", "10.00", "USD"),
        ("t1", "a", "2024-01-05T09:00:00Z", "10.00", "USD"),  # the earliest copy: kept
        ("t1", "a", "2024-01-06T10:00:00Z", "10.00", "USD"),
        ("t1", "b", "2024-01-05T08:00:00Z", "20.00", "USD"),  # the same id, another customer
        ("t2", "a", "2024-01-05T08:00:00Z", "30.00", "USD"),
    ]
    source = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts string, amount string, "
        "currency string",
    )
    options = pass_options(load_config(None), None, None)
    columns = resolve_columns(source.columns, {}, "memory")
    checked = checked_transactions(source, columns, options, keep_source=True)
    valid = checked.where(F.col("reason").isNull())
    assert valid.count() == len(rows)  # copies are valid rows until de-duplication
    copies_of_t1 = valid.where((F.col("customer_id") == "a") & (F.col("transaction_id") == "t1"))
    keys = {r[0] for r in copies_of_t1.select(transaction_key()).collect()}
    assert len(keys) == 1  # one key for the three copies
    assert len({r[0] for r in valid.select(transaction_key()).collect()} - keys) == 2
    duplicated_keys = spark.createDataFrame([(k,) for k in keys], "_key long")

    copies = extra_copies(valid, duplicated_keys)
    records = quarantine_records(copies, "run-1", date(2024, 2, 1))
    expected_fields = [(f.name, f.dataType) for f in contract.QUARANTINE_SCHEMA.fields]
    assert [(f.name, f.dataType) for f in records.schema.fields] == expected_fields
    got = sorted(records.collect(), key=lambda r: r["transaction_ts"])
    assert [(r["customer_id"], r["transaction_id"], r["transaction_ts"]) for r in got] == [
        ("a", "t1", "2024-01-05T10:00:00Z"),
        ("a", "t1", "2024-01-06T10:00:00Z"),
    ]
    for row in got:
        assert row["reason"] == "duplicate"
        assert (row["run_id"], row["run_date"]) == ("run-1", date(2024, 2, 1))
        assert (row["amount"], row["currency"]) == ("10.00", "USD")  # the text as read
        assert json.loads(row["source_record"]) == {
            "transaction_id": "t1",
            "customer_id": "a",
            "transaction_ts": row["transaction_ts"],
            "amount": "10.00",
            "currency": "USD",
        }
