"""Quarantine: the rows a run could not count, as read, each with its reason code.

Built in a second pass over the same source files, and only when the first pass counted
something to quarantine: rejected rows are a filter; the extra copies of duplicated
transactions are found among the few rows whose key the first pass reported (a hash of
customer and transaction id), ordered by the same rule de-duplication keeps the earliest by.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from revseg.conform import raw_name
from revseg.contract import QUARANTINE_SCHEMA
from revseg.metrics import copy_order, to_cents
from revseg.quality import is_refund
from revseg.reasons import DUPLICATE, EXCLUDED_TYPE


def transaction_key(customer: str = "customer_id", transaction: str = "transaction_id") -> Column:
    """A 64-bit hash of (customer, transaction): how the first pass names duplicated keys."""
    return F.xxhash64(F.col(customer), F.col(transaction))


def is_quarantined(quarantine_excluded: bool) -> Column:
    """Rejected rows go to quarantine; excluded types (test orders) only when asked."""
    reason = F.col("reason")
    if quarantine_excluded:
        return reason.isNotNull()
    return reason.isNotNull() & (reason != F.lit(EXCLUDED_TYPE))


def extra_copies(valid: DataFrame, duplicated_keys: DataFrame) -> DataFrame:
    """Every copy but the kept one of each duplicated transaction, with reason `duplicate`.

    The kept copy is the earliest by (timestamp, amount, refund flag), as in
    `revseg.metrics.deduplicate`.
    """
    refund = is_refund()
    cents = F.when(refund, -F.abs(to_cents("reporting_amount"))).otherwise(
        to_cents("reporting_amount")
    )
    candidates = valid.withColumn("_key", transaction_key()).join(
        F.broadcast(duplicated_keys), "_key", "left_semi"
    )
    order = copy_order(F.col("transaction_ts"), cents, refund)
    rank = F.row_number().over(Window.partitionBy("customer_id", "transaction_id").orderBy(order))
    return (
        candidates.withColumn("_copy", rank)
        .where(F.col("_copy") > 1)
        .withColumn("reason", F.lit(DUPLICATE))
        .drop("_key", "_copy")
    )


def quarantine_records(rows: DataFrame, run_id: str, run_date: date) -> DataFrame:
    """Rows (conformed with `keep_source`, with `reason`) in the quarantine table's shape:
    the canonical fields as text (the source's own text where it did not parse), the file,
    and the whole row as read, as JSON."""

    def as_text(canonical: str) -> Column:
        raw = F.col(raw_name(canonical))
        return F.coalesce(raw, F.col(canonical).cast("string"))

    return rows.select(
        F.lit(run_date).alias("run_date"),
        F.lit(run_id).alias("run_id"),
        F.col("reason"),
        F.col("transaction_id"),
        F.col("customer_id"),
        as_text("transaction_ts").alias("transaction_ts"),
        as_text("amount").alias("amount"),
        F.col("currency"),
        F.col("transaction_type"),
        F.col("_source_file").alias("source_file"),
        F.coalesce(F.col("_malformed"), F.to_json(F.col("_source"))).alias("source_record"),
    ).select([F.col(f.name).cast(f.dataType) for f in QUARANTINE_SCHEMA.fields])
