"""Names shared by the config and the Spark code (standard library only: no Spark here).

The config validates column and grain names against these tuples, and `revseg.contract`
and `revseg.periods` build their schemas and grains from them, so that loading a config
never imports pyspark.
"""

from __future__ import annotations

import re

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


# A part of a catalog table name: what Unity Catalog allows unquoted, and hyphens (which
# revseg quotes).
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_NAME_SHAPES = {1: "name", 2: "catalog.schema", 3: "catalog.schema.table"}


def name_parts(name: str, key: str, most: int = 3) -> list[str]:
    """The parts of a catalog name (`catalog.schema.table`, `schema.table`, `table`), or a
    ValueError naming the config `key` that holds it."""
    parts = name.strip().split(".")
    if not 1 <= len(parts) <= most or not all(_NAME_PART.match(part) for part in parts):
        raise ValueError(
            f"config key '{key}': {name!r} is not a name of the form {_NAME_SHAPES[most]} "
            "(letters, digits, underscores and hyphens in each part; no quotes or spaces)"
        )
    return parts
