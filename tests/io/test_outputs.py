"""The output tables (`revseg.io.outputs`): standard Delta tables that delta-rs reads back
as Spark does, one file per partition, the run id in each commit, and an output path that
holds something else refused."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from revseg import contract
from revseg.config import OutputConfig
from revseg.errors import TableError
from revseg.io.delta_tables import ensure_table
from revseg.io.table_ref import Outputs
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, naive, read_delta


def test_tables_are_standard_delta_read_back_by_delta_rs(
    spark: SparkSession, full_run: Any
) -> None:
    _, result = full_run
    segments_path = result.table_path(contract.CUSTOMER_SEGMENTS)
    boundaries_path = result.table_path(contract.TIER_BOUNDARIES)

    segments = DeltaTable(segments_path)
    assert segments.metadata().partition_columns == ["segment", "period"]
    assert DeltaTable(boundaries_path).metadata().partition_columns == ["period"]
    arrow_schema = segments.to_pyarrow_table().schema
    assert arrow_schema.names == [f.name for f in contract.CUSTOMER_SEGMENTS_SCHEMA.fields]
    assert str(arrow_schema.field("revenue").type) == "decimal128(18, 2)"
    assert str(arrow_schema.field("orders").type) == "int64"

    for path, schema in (
        (segments_path, contract.CUSTOMER_SEGMENTS_SCHEMA),
        (boundaries_path, contract.TIER_BOUNDARIES_SCHEMA),
    ):
        names = schema.fieldNames()
        by_spark = sorted(
            tuple(r) for r in spark.read.format("delta").load(path).select(*names).collect()
        )
        by_delta_rs = sorted(tuple(r[n] for n in names) for r in read_delta(path))
        assert len(by_spark) > 0
        assert by_spark == [tuple(naive(v) for v in row) for row in by_delta_rs]


def test_one_file_per_partition_and_run_id_in_commit(full_run: Any) -> None:
    _, result = full_run
    path = result.table_path(contract.CUSTOMER_SEGMENTS)
    files = pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist()
    per_partition = defaultdict(int)
    for action in files:
        per_partition[(action["partition.segment"], action["partition.period"])] += 1
    assert per_partition and max(per_partition.values()) == 1
    for table in (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES):
        last = DeltaTable(result.table_path(table)).history(1)[0]
        assert last["userMetadata"] == result.run_id
        assert last["operation"] == "WRITE"
        assert "`period` IN ('2024" in last["operationParameters"]["predicate"]


def test_output_path_with_foreign_files_is_refused(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    foreign = tmp_path / "out" / "customer_segments"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("not a table")
    with pytest.raises(TableError, match=r"(holds files that are not a Delta table|cannot create)"):
        run_segmentation(spark, config_for(lake, tmp_path / "out", "periods.grains=[year]"))
    assert (foreign / "notes.txt").read_text() == "not a table"


def test_tables_of_an_earlier_version_get_the_added_columns(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    # customer_segments and tier_boundaries as revseg 0.2 made them: without the columns
    # added since. A run adds them (null in the rows before), refuses nothing, and writes.
    out = tmp_path / "out"
    old = {
        contract.CUSTOMER_SEGMENTS: (
            contract.CUSTOMER_SEGMENTS_SCHEMA,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
            ("value_percentile",),
        ),
        contract.TIER_BOUNDARIES: (
            contract.TIER_BOUNDARIES_SCHEMA,
            contract.TIER_BOUNDARIES_PARTITIONS,
            ("metric", "min_metric"),
        ),
    }
    for name, (schema, partitions, added) in old.items():
        table = Outputs.of(OutputConfig(path=str(out))).table(name)
        before = StructType([f for f in schema.fields if f.name not in added])
        ensure_table(spark, table, before, partitions)
        assert set(added).isdisjoint(DeltaTable(str(out / name)).schema().to_arrow().names)
    run_segmentation(spark, config_for(lake, out, "periods.grains=[year]"))
    for name, (_, _, added) in old.items():
        rows = read_delta(out / name)
        assert all(column in rows[0] for column in added)
        assert any(row[added[0]] is not None for row in rows)
