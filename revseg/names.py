"""Names shared by the config and the Spark code (standard library only: no Spark here).

The config validates column and grain names against these tuples, and `revseg.contract`
and `revseg.periods` build their schemas and grains from them, so that loading a config
never imports pyspark.
"""

from __future__ import annotations

# The canonical transaction columns: the required ones, then the optional ones.
CANONICAL_COLUMNS: tuple[str, ...] = (
    # required
    "transaction_id",
    "customer_id",
    "transaction_ts",
    "amount",
    "currency",
    # optional
    "transaction_type",
    "original_transaction_id",
    "channel",
    "market",
    "product_category",
    "quantity",
    "cost",
)

# Canonical columns that `tiers.by` may name: tiers are then cut within each group.
GROUP_COLUMNS: tuple[str, ...] = ("market", "channel", "product_category")

# The period grains `periods.grains` may list.
SUPPORTED_GRAINS: tuple[str, ...] = (
    "week",
    "month",
    "quarter",
    "year",
    "fiscal_quarter",
    "fiscal_year",
    "rolling_3m",
    "rolling_12m",
)

__all__ = ["CANONICAL_COLUMNS", "GROUP_COLUMNS", "SUPPORTED_GRAINS"]
