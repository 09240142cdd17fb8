"""The canonical transaction contract (input) and the output table schemas."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from revseg.names import CANONICAL_COLUMNS
from revseg.names import GROUP_COLUMNS as GROUP_COLUMNS

MONEY = DecimalType(18, 2)  # money revseg writes: the reporting currency's minor unit
# Source amounts, in any currency: 4 decimals hold every ISO 4217 minor unit (KWD 3, CLF 4).
# Each is checked against its own currency's minor unit; none is rounded.
SOURCE_MONEY = DecimalType(18, 4)

REQUIRED_COLUMNS: dict[str, DataType] = {
    "transaction_id": StringType(),
    "customer_id": StringType(),
    "transaction_ts": TimestampType(),
    "amount": SOURCE_MONEY,
    "currency": StringType(),
}
OPTIONAL_COLUMNS: dict[str, DataType] = {
    "transaction_type": StringType(),
    "original_transaction_id": StringType(),
    "channel": StringType(),
    "market": StringType(),
    "product_category": StringType(),
    "quantity": LongType(),
    "cost": SOURCE_MONEY,
}
# CANONICAL_COLUMNS comes from revseg.names (the config needs it without Spark).
if (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) != CANONICAL_COLUMNS:
    raise AssertionError("revseg.names.CANONICAL_COLUMNS differs from the contract's columns")
CANONICAL_TYPES: dict[str, DataType] = {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}

CUSTOMER_SEGMENTS = "customer_segments"
TIER_BOUNDARIES = "tier_boundaries"

CUSTOMER_SEGMENTS_SCHEMA = StructType(
    [
        StructField("customer_id", StringType(), False),
        StructField("period", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("segment", StringType(), False),
        StructField("revenue", MONEY, False),
        StructField("gross_revenue", MONEY, False),
        StructField("refunds", MONEY, False),
        StructField("orders", LongType(), False),
        StructField("avg_order_value", MONEY, True),
        StructField("first_transaction_ts", TimestampType(), True),
        StructField("last_transaction_ts", TimestampType(), True),
        StructField("active_days", IntegerType(), False),
        StructField("active_months", IntegerType(), False),
        StructField("recency_days", IntegerType(), False),
        StructField("tenure_days", IntegerType(), False),
        StructField("quantity", LongType(), True),
        StructField("margin", MONEY, True),
        StructField("top_channel", StringType(), True),
        StructField("top_channel_share", DoubleType(), True),
        StructField("top_category", StringType(), True),
        StructField("top_category_share", DoubleType(), True),
        # added in 0.3: tables made before get them (null in the periods written then)
        StructField("value_percentile", DoubleType(), True),
        StructField("rfm_score", StringType(), True),
        # stable tiers (tiers.stability): the segment by the cut points alone, and the tier
        # a customer is confirming a move to, for how many periods so far
        StructField("cut_segment", StringType(), True),
        StructField("pending_segment", StringType(), True),
        StructField("pending_periods", IntegerType(), True),
    ]
)
CUSTOMER_SEGMENTS_PARTITIONS = ("segment", "period")
# Delta collects min/max statistics of these columns only (for data skipping on customer
# look-ups and revenue filters); statistics of every column cost a pass over each value.
CUSTOMER_SEGMENTS_PROPERTIES = {"delta.dataSkippingStatsColumns": "customer_id,revenue,orders"}

TIER_BOUNDARIES_SCHEMA = StructType(
    [
        StructField("period", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("segment", StringType(), False),
        StructField("min_revenue", MONEY, True),
        StructField("customers", LongType(), False),
        StructField("revenue", MONEY, False),
        StructField("revenue_share", DoubleType(), True),
        # added in 0.3 (null in the periods written before)
        StructField("metric", StringType(), True),
        StructField("min_metric", MONEY, True),
    ]
)
TIER_BOUNDARIES_PARTITIONS = ("period",)

SEGMENT_SUMMARY = "segment_summary"
SEGMENT_SUMMARY_SCHEMA = StructType(
    [
        StructField("period", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("segment", StringType(), False),
        StructField("metric", StringType(), False),
        StructField("customers", LongType(), False),
        StructField("revenue", MONEY, False),
        StructField("customer_share", DoubleType(), True),
        StructField("revenue_share", DoubleType(), True),
        StructField("mean_metric", MONEY, True),
        StructField("median_metric", MONEY, True),
        StructField("orders", LongType(), False),
        StructField("avg_order_value", MONEY, True),
    ]
)
CONCENTRATION = "concentration"
LORENZ_POINT = StructType(
    [
        StructField("customer_share", DoubleType(), False),
        StructField("revenue_share", DoubleType(), False),
    ]
)
CONCENTRATION_SCHEMA = StructType(
    [
        StructField("period", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("customers", LongType(), False),
        StructField("revenue", MONEY, False),
        StructField("gini", DoubleType(), True),
        StructField("top_1pct_share", DoubleType(), True),
        StructField("top_10pct_share", DoubleType(), True),
        StructField("top_20pct_share", DoubleType(), True),
        StructField("lorenz", ArrayType(LORENZ_POINT, False), False),
        StructField("relative_error", DoubleType(), False),
    ]
)
TIER_MIGRATIONS = "tier_migrations"
# Per pair of consecutive periods of a grain (x group): `period` is the pair's second
# period, `to_period` (the partition a run replaces).
TIER_MIGRATIONS_SCHEMA = StructType(
    [
        StructField("period", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("from_period", StringType(), False),
        StructField("to_period", StringType(), False),
        StructField("from_segment", StringType(), False),
        StructField("to_segment", StringType(), False),
        StructField("customers", LongType(), False),
        StructField("from_revenue", MONEY, False),
        StructField("to_revenue", MONEY, False),
    ]
)
CUSTOMER_CURRENT_SEGMENT = "customer_current_segment"
# One row per customer and grain (x group): its latest period with revenue, for a CRM.
CUSTOMER_CURRENT_SEGMENT_SCHEMA = StructType(
    [
        StructField("customer_id", StringType(), False),
        StructField("period_grain", StringType(), False),
        StructField("period", StringType(), False),
        StructField("segment", StringType(), False),
        StructField("revenue", MONEY, False),
        StructField("value_percentile", DoubleType(), True),
        StructField("segment_since", StringType(), False),
        StructField("clv", MONEY, True),
        StructField("p_alive", DoubleType(), True),
        StructField("clv_segment", StringType(), True),
        StructField("calibration_end", DateType(), True),
    ]
)
CUSTOMER_CURRENT_SEGMENT_PARTITIONS = ("period_grain",)
# The small tables a run writes per period from rows it collected, by name: schema.
PERIOD_SUMMARY_SCHEMAS = {
    TIER_BOUNDARIES: TIER_BOUNDARIES_SCHEMA,
    SEGMENT_SUMMARY: SEGMENT_SUMMARY_SCHEMA,
    TIER_MIGRATIONS: TIER_MIGRATIONS_SCHEMA,
    CONCENTRATION: CONCENTRATION_SCHEMA,
}
PERIOD_PARTITIONS = ("period",)
# The summary tables (`insights.*`) a run may write beside those two, in commit order.
SUMMARY_TABLES = (SEGMENT_SUMMARY, TIER_MIGRATIONS, CONCENTRATION)

QUARANTINED_TRANSACTIONS = "quarantined_transactions"
QUARANTINE_SCHEMA = StructType(
    [
        StructField("run_date", DateType(), False),
        StructField("run_id", StringType(), False),
        StructField("reason", StringType(), False),
        StructField("transaction_id", StringType(), True),
        StructField("customer_id", StringType(), True),
        StructField("transaction_ts", StringType(), True),
        StructField("amount", StringType(), True),
        StructField("currency", StringType(), True),
        StructField("transaction_type", StringType(), True),
        StructField("source_file", StringType(), True),
        StructField("source_record", StringType(), True),
    ]
)
QUARANTINE_PARTITIONS = ("run_date",)

RUNS = "runs"
_COUNTS = MapType(StringType(), LongType())
RUNS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("status", StringType(), False),
        StructField("started_at", TimestampType(), False),
        StructField("finished_at", TimestampType(), False),
        StructField("revseg_version", StringType(), False),
        StructField("config_hash", StringType(), False),
        StructField("work_key", StringType(), False),
        StructField("requested", StringType(), False),
        StructField("periods_written", ArrayType(StringType()), True),
        StructField("source_read", StringType(), True),
        StructField("input_rows", LongType(), True),
        StructField("valid_rows", LongType(), True),
        StructField("quarantined_rows", LongType(), True),
        StructField("duplicate_rows", LongType(), True),
        StructField("valid_revenue", MapType(StringType(), MONEY), True),
        StructField("written_revenue", MapType(StringType(), MONEY), True),
        StructField("row_counts", _COUNTS, True),
        StructField("table_versions", _COUNTS, True),
        StructField("error", StringType(), True),
    ]
)

CLV_MODELS = "clv_models"
CUSTOMER_CLV = "customer_clv"
CLV_VALIDATION = "clv_validation"
_PARAMETERS = MapType(StringType(), DoubleType())
CLV_MODELS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("model", StringType(), False),
        StructField("calibration_end", DateType(), False),
        StructField("holdout_end", DateType(), True),
        StructField("time_unit", StringType(), False),
        StructField("customers", LongType(), False),
        StructField("log_likelihood", DoubleType(), False),
        StructField("converged", BooleanType(), False),
        StructField("parameters", _PARAMETERS, False),
        StructField("std_errors", _PARAMETERS, False),
        StructField("method", StringType(), False),
        StructField("summary_rows", LongType(), False),
        StructField("clv_config_hash", StringType(), False),
        StructField("fitted_at", TimestampType(), False),
    ]
)
CUSTOMER_CLV_SCHEMA = StructType(
    [
        StructField("customer_id", StringType(), False),
        StructField("calibration_end", DateType(), False),
        StructField("first_purchase_date", DateType(), False),
        StructField("frequency", IntegerType(), False),
        StructField("recency", DoubleType(), False),
        StructField("T", DoubleType(), False),
        StructField("monetary_value", MONEY, True),
        StructField("calibration_revenue", MONEY, False),
        StructField("p_alive", DoubleType(), False),
        StructField("expected_purchases", DoubleType(), False),
        StructField("expected_avg_spend", MONEY, False),
        StructField("clv", MONEY, False),
        StructField("clv_segment", StringType(), False),
        StructField("holdout_purchases", IntegerType(), True),
        StructField("holdout_revenue", MONEY, True),
        StructField("expected_holdout_purchases", DoubleType(), True),
        StructField("run_id", StringType(), False),
    ]
)
CLV_VALIDATION_SCHEMA = StructType(
    [
        StructField("calibration_end", DateType(), False),
        StructField("holdout_end", DateType(), False),
        StructField("model", StringType(), False),
        StructField("kind", StringType(), False),
        StructField("name", StringType(), False),
        StructField("time_index", IntegerType(), True),
        StructField("customers", LongType(), True),
        StructField("actual", DoubleType(), True),
        StructField("predicted", DoubleType(), True),
        StructField("value", DoubleType(), True),
        StructField("run_id", StringType(), False),
    ]
)
CLV_PARTITIONS = ("calibration_end",)
CLV_TABLES = (CUSTOMER_CLV, CLV_VALIDATION, CLV_MODELS)  # in the order a CLV run writes them

# Every table revseg writes under output.path.
ALL_TABLES = (
    CUSTOMER_SEGMENTS,
    TIER_BOUNDARIES,
    SEGMENT_SUMMARY,
    TIER_MIGRATIONS,
    CONCENTRATION,
    CUSTOMER_CURRENT_SEGMENT,
    QUARANTINED_TRANSACTIONS,
    RUNS,
    *CLV_TABLES,
)

# Columns every period row carries besides the metrics; used to order and key joins.
PERIOD_KEYS = ("period_grain", "period")

# Canonical columns that `tiers.by` may name (GROUP_COLUMNS, from revseg.names): tiers are
# then cut within each group.
UNKNOWN_GROUP = "unknown"


def with_groups(schema: StructType, groups: tuple[str, ...]) -> StructType:
    """The schema with the `tiers.by` columns inserted after `period_grain`."""
    fields = list(schema.fields)
    at = [f.name for f in fields].index("period_grain") + 1
    extra = [StructField(name, StringType(), False) for name in groups]
    return StructType(fields[:at] + extra + fields[at:])


__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_TYPES",
    "CLV_MODELS",
    "CLV_MODELS_SCHEMA",
    "CLV_PARTITIONS",
    "CLV_TABLES",
    "CLV_VALIDATION",
    "CLV_VALIDATION_SCHEMA",
    "CONCENTRATION",
    "CONCENTRATION_SCHEMA",
    "CUSTOMER_CLV",
    "CUSTOMER_CLV_SCHEMA",
    "CUSTOMER_CURRENT_SEGMENT",
    "CUSTOMER_CURRENT_SEGMENT_PARTITIONS",
    "CUSTOMER_CURRENT_SEGMENT_SCHEMA",
    "CUSTOMER_SEGMENTS",
    "CUSTOMER_SEGMENTS_PARTITIONS",
    "CUSTOMER_SEGMENTS_PROPERTIES",
    "CUSTOMER_SEGMENTS_SCHEMA",
    "MONEY",
    "OPTIONAL_COLUMNS",
    "PERIOD_KEYS",
    "PERIOD_PARTITIONS",
    "PERIOD_SUMMARY_SCHEMAS",
    "QUARANTINED_TRANSACTIONS",
    "QUARANTINE_PARTITIONS",
    "QUARANTINE_SCHEMA",
    "REQUIRED_COLUMNS",
    "RUNS",
    "RUNS_SCHEMA",
    "SEGMENT_SUMMARY",
    "SEGMENT_SUMMARY_SCHEMA",
    "SUMMARY_TABLES",
    "TIER_BOUNDARIES",
    "TIER_BOUNDARIES_PARTITIONS",
    "TIER_BOUNDARIES_SCHEMA",
    "TIER_MIGRATIONS",
    "TIER_MIGRATIONS_SCHEMA",
]
