"""customer_current_segment: rebuilt for the grains a run wrote, from the committed
customer_segments and the latest customer_clv, in one commit, and counted back."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.current import current_segments, with_clv
from revseg.errors import TableError
from revseg.io.delta_history import committed_version, latest_version
from revseg.io.delta_tables import is_delta_table, replace_where
from revseg.io.derived import write_derived
from revseg.io.table_ref import Outputs
from revseg.names import SUPPORTED_GRAINS
from revseg.period_keys import period_key_map
from revseg.periods import Grain


def write_current_segments(
    spark: SparkSession,
    outputs: Outputs,
    grains: Sequence[Grain],
    groups: Sequence[str],
    segments_version: int,
    run_id: str,
) -> int:
    """Replace the rows of these grains with each customer's current segment, from
    customer_segments at `segments_version` (every stored period of the grains), and check
    the commit holds one row per customer (x group) that ever had revenue there."""
    names = [grain.name for grain in grains]
    segments = (
        outputs.table(contract.CUSTOMER_SEGMENTS)
        .read(spark, segments_version)
        .where(F.col("period_grain").isin(names))
    )
    labels: dict[str, set[str]] = {}
    for row in segments.select("period_grain", "period").distinct().collect():
        labels.setdefault(row["period_grain"], set()).add(row["period"])
    key_map = period_key_map(spark, grains, labels)
    rows = segments.join(F.broadcast(key_map), ["period_grain", "period"]).select(
        "customer_id",
        "period_grain",
        "period",
        "period_key",
        "step",
        *groups,
        "segment",
        (F.col("revenue") * 100).cast("long").alias("revenue_cents"),
        "value_percentile",
    )
    current = with_clv(current_segments(rows, groups), latest_clv(spark, outputs))
    schema = contract.with_groups(contract.CUSTOMER_CURRENT_SEGMENT_SCHEMA, tuple(groups))
    table = outputs.table(contract.CUSTOMER_CURRENT_SEGMENT)
    predicate = grain_predicate(names)
    replace_where(
        current.select(*schema.fieldNames()),
        table,
        predicate,
        f"grain(s) {', '.join(names)}",
        contract.CUSTOMER_CURRENT_SEGMENT_PARTITIONS,
        run_id,
    )
    version = committed_version(spark, table, run_id)
    _check_counts(spark, table.read(spark, version), segments, names, groups, version)
    return version


def refresh_current_segments(
    spark: SparkSession,
    outputs: Outputs,
    grains: Sequence[Grain],
    groups: Sequence[str],
    run_id: str,
) -> int | None:
    """After a CLV run: rebuild customer_current_segment, where a segment run made it, for
    the grains it holds, so that it carries the new scores; its version (None: no table)."""
    table = outputs.table(contract.CUSTOMER_CURRENT_SEGMENT)
    segments = outputs.table(contract.CUSTOMER_SEGMENTS)
    if not is_delta_table(spark, table) or not is_delta_table(spark, segments):
        return None
    held = {
        row["period_grain"] for row in table.read(spark).select("period_grain").distinct().collect()
    }
    mine = [grain for grain in grains if grain.name in held]
    if not mine:
        return None
    return write_derived(
        spark,
        outputs,
        contract.CUSTOMER_CURRENT_SEGMENT,
        latest_version(spark, segments),
        lambda version: write_current_segments(spark, outputs, mine, groups, version, run_id),
        run_id,
        also=clv_tables_of(spark, outputs),
    )


def clv_tables_of(spark: SparkSession, outputs: Outputs) -> tuple[str, ...]:
    """customer_clv where it exists: the current segments carry its latest scores, so a
    CLV run committing while they are derived means deriving them again."""
    return (
        (contract.CUSTOMER_CLV,)
        if is_delta_table(spark, outputs.table(contract.CUSTOMER_CLV))
        else ()
    )


def grain_predicate(names: Sequence[str]) -> str:
    """`period_grain IN (...)` for replaceWhere, from grain names revseg knows."""
    unknown = [name for name in names if name not in SUPPORTED_GRAINS]
    if unknown:
        raise ValueError(f"not a grain: {unknown[0]!r}")
    return "`period_grain` IN (" + ", ".join(f"'{name}'" for name in sorted(names)) + ")"


def latest_clv(spark: SparkSession, outputs: Outputs) -> DataFrame | None:
    """The customer_clv rows of its latest calibration date; None without the table."""
    table = outputs.table(contract.CUSTOMER_CLV)
    if not is_delta_table(spark, table):
        return None
    frame = table.read(spark)
    latest = frame.agg(F.max("calibration_end").alias("latest")).first()
    if latest is None or latest["latest"] is None:
        return None
    return frame.where(F.col("calibration_end") == F.lit(latest["latest"]))


def _check_counts(
    spark: SparkSession,
    committed: DataFrame,
    segments: DataFrame,
    names: Sequence[str],
    groups: Sequence[str],
    version: int,
) -> None:
    """One row per grain, customer (and group) with revenue in some stored period."""
    keys = ["period_grain", "customer_id", *groups]
    want = {
        row["period_grain"]: row["n"]
        for row in segments.where(F.col("revenue") > 0)
        .select(*keys)
        .distinct()
        .groupBy("period_grain")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    got = {
        row["period_grain"]: row["n"]
        for row in committed.where(F.col("period_grain").isin(list(names)))
        .groupBy("period_grain")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    if want != got:
        raise TableError(
            f"reconciliation of {contract.CUSTOMER_CURRENT_SEGMENT} (version {version}) "
            f"failed: it holds {got} rows per grain, customer_segments has {want} customers "
            "with revenue; the run is not logged as succeeded. Run it again."
        )
