"""Tables addressed by name, as Unity Catalog workspaces address them: a source table
(`source.table`), output tables in a schema (`output.catalog` and `output.schema`), and
incremental runs on a named Delta source (its history, not its files). The session's own
catalog stands in for Unity Catalog: the same three-part names and SQL."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.config import Config, load_config
from revseg.errors import ConfigError, TableError
from revseg.pipeline import run_segmentation

ROWS = [
    ("t1", "a", datetime(2024, 1, 5, 10), Decimal("100.00")),
    ("t2", "b", datetime(2024, 1, 9, 10), Decimal("40.00")),
    ("t3", "a", datetime(2024, 2, 3, 10), Decimal("70.00")),
    ("t4", "c", datetime(2024, 2, 4, 10), Decimal("5.00")),
]


def transactions(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)",
    ).withColumns({"currency": F.lit("USD"), "transaction_date": F.to_date("transaction_ts")})


def schema_in(spark: SparkSession, name: str, root: Path) -> str:
    """A schema of the session catalog with its tables under `root` (not the warehouse)."""
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{name}` LOCATION '{root / name}'")
    return name


def named_config(source: str, catalog: str | None, schema: str, *overrides: str) -> Config:
    where = [f"output.catalog={catalog}"] if catalog else []
    return load_config(
        None,
        [
            f"source.table={source}",
            "source.format=delta",
            *where,
            f"output.schema={schema}",
            "periods.grains=[month]",
            "quality.max_quarantine_fraction=1",
            *overrides,
        ],
    )


def segments(spark: SparkSession, table: str) -> dict[tuple[str, str], Decimal]:
    return {
        (r["period"], r["customer_id"]): r["revenue"]
        for r in spark.table(table).select("period", "customer_id", "revenue").collect()
    }


def test_named_source_and_outputs_and_an_incremental_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    source_schema = schema_in(spark, "names_src", tmp_path)
    out_schema = schema_in(spark, "names_out", tmp_path)
    source = f"{source_schema}.transactions"  # two parts: the current catalog's
    transactions(spark, ROWS).write.format("delta").partitionBy("transaction_date").saveAsTable(
        source
    )
    config = named_config(source, "spark_catalog", out_schema)
    first = run_segmentation(spark, config)
    assert first.status == "succeeded"
    outputs = f"spark_catalog.{out_schema}"
    assert segments(spark, f"{outputs}.{contract.CUSTOMER_SEGMENTS}") == {
        ("2024-01", "a"): Decimal("100.00"),
        ("2024-01", "b"): Decimal("40.00"),
        ("2024-02", "a"): Decimal("70.00"),
        ("2024-02", "c"): Decimal("5.00"),
    }
    assert first.table_name(contract.CUSTOMER_SEGMENTS) == (
        f"{outputs}.{contract.CUSTOMER_SEGMENTS}"
    )
    for table in (contract.TIER_BOUNDARIES, contract.RUNS):
        assert spark.catalog.tableExists(f"{outputs}.{table}"), table
    run = spark.table(f"{outputs}.{contract.RUNS}").collect()[0]
    assert run["status"] == "succeeded"
    assert json.loads(run["source_read"])["table"] == source

    # A day of March arrives: the history of the named table says which, and only March
    # is recomputed.
    late = [("t5", "b", datetime(2024, 3, 15, 9), Decimal("12.50"))]
    transactions(spark, late).write.format("delta").mode("append").saveAsTable(source)
    second = run_segmentation(spark, config, incremental=True)
    assert second.status == "succeeded"
    assert second.periods == {"month": ("2024-03",)}
    assert second.note is not None and "2024-03-15" in second.note
    assert segments(spark, f"{outputs}.{contract.CUSTOMER_SEGMENTS}")[("2024-03", "b")] == (
        Decimal("12.50")
    )
    third = run_segmentation(spark, config, incremental=True)
    assert third.status == "skipped" and third.same_as == second.run_id


def test_a_missing_source_table_and_schema_are_named(spark: SparkSession, tmp_path: Path) -> None:
    out_schema = schema_in(spark, "names_missing", tmp_path)
    with pytest.raises(Exception) as info:
        run_segmentation(spark, named_config("names_missing.nothing", None, out_schema))
    assert "source.table" in str(info.value) and "names_missing.nothing" in str(info.value)

    source = f"{out_schema}.transactions"
    transactions(spark, ROWS).write.format("delta").saveAsTable(source)
    with pytest.raises(TableError) as missing:
        run_segmentation(spark, named_config(source, None, "no_such_schema"))
    assert "no_such_schema" in str(missing.value)


def test_a_table_that_is_not_delta_is_not_overwritten(spark: SparkSession, tmp_path: Path) -> None:
    out_schema = schema_in(spark, "names_foreign", tmp_path)
    source = f"{out_schema}.transactions"
    transactions(spark, ROWS).write.format("delta").saveAsTable(source)
    segments_table = f"{out_schema}.{contract.CUSTOMER_SEGMENTS}"
    spark.sql(f"CREATE TABLE {segments_table} (x string) USING parquet")
    with pytest.raises(TableError) as info:
        run_segmentation(spark, named_config(source, None, out_schema))
    assert "not a Delta table" in str(info.value)
    assert spark.table(segments_table).columns == ["x"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["output.catalog=main"], "output.catalog"),
        (["output.schema=a.b"], "output.schema"),
        (["source.table=a.b.c.d"], "source.table"),
        (["source.path=/lake", "source.table=a.b"], "exactly one"),
        (["output.path=/out", "output.schema=s"], "output"),
    ],
)
def test_bad_names_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)
