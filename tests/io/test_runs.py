"""The run log and the promises built on it: a repeated run is skipped, a retry after a
crash finishes without doubling, A-B-A leaves A's results, and readers see whole runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from revseg import contract
from revseg.cli import main
from revseg.config import Config, load_config
from revseg.io import delta_tables
from revseg.io.runs import latest_complete
from revseg.io.table_ref import Outputs, TableRef
from revseg.pipeline import run_segmentation
from revseg.run_log import RunLog
from tests.lakes import write_lake


def rows_lake(spark: SparkSession, path: Path, bad_row: bool = False) -> str:
    """Four good sales in two months (and, if asked, one row without a customer)."""
    rows = [
        ("t1", "a", datetime(2024, 1, 5, 10), Decimal("100.00")),
        ("t2", "b", datetime(2024, 1, 9, 10), Decimal("40.00")),
        ("t3", "a", datetime(2024, 2, 3, 10), Decimal("70.00")),
        ("t4", "c", datetime(2024, 2, 4, 10), Decimal("5.00")),
    ]
    if bad_row:
        rows.append(("t5", None, datetime(2024, 2, 6, 10), Decimal("9.00")))
    frame = spark.createDataFrame(
        rows,
        "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)",
    ).withColumn("currency", F.lit("USD"))
    return write_lake(frame, path)


def config(lake: str, out: Path, *overrides: str) -> Config:
    return load_config(
        None, [f"source.path={lake}", f"output.path={out}", "periods.grains=[month]", *overrides]
    )


def table(out: Path, name: str = contract.CUSTOMER_SEGMENTS) -> list[tuple[Any, ...]]:
    rows = DeltaTable(str(out / name)).to_pyarrow_table().to_pylist()
    return sorted((r["customer_id"], r["period"], r["segment"], r["revenue"]) for r in rows)


def version(out: Path, name: str = contract.CUSTOMER_SEGMENTS) -> int:
    return DeltaTable(str(out / name)).version()


def logged(out: Path) -> list[dict[str, Any]]:
    rows = DeltaTable(str(out / contract.RUNS)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: r["finished_at"])


def test_a_b_a_leaves_a_results(spark: SparkSession, tmp_path: Path) -> None:
    lake = rows_lake(spark, tmp_path / "lake")
    out = tmp_path / "out"
    a = config(lake, out)
    b = config(lake, out, "tiers.levels=[{name: top, fraction: 0.5}, {name: rest, fraction: 1.0}]")
    first = run_segmentation(spark, a)
    a_rows = table(out)
    run_segmentation(spark, b)
    assert table(out) != a_rows
    again = run_segmentation(spark, a)
    assert again.status == "succeeded" and again.run_id != first.run_id
    assert table(out) == a_rows
    log = logged(out)
    assert [r["status"] for r in log] == ["succeeded"] * 3
    assert log[0]["config_hash"] == log[2]["config_hash"] != log[1]["config_hash"]
    last = log[2]  # maps read back by delta-rs as lists of (key, value)
    assert dict(last["table_versions"])[contract.CUSTOMER_SEGMENTS] == version(out)
    assert last["input_rows"] == 4 and dict(last["valid_revenue"])["month"] == Decimal("215.00")
    assert dict(last["written_revenue"])["month"] == Decimal("215.00")
    assert sorted(last["periods_written"]) == ["2024-01", "2024-02"]


def test_retry_after_a_crash_between_commits_finishes_without_doubling(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = rows_lake(spark, tmp_path / "lake", bad_row=True)
    out = tmp_path / "out"
    cfg = config(lake, out, "quality.max_quarantine_fraction=1")
    real_replace = delta_tables.replace_periods
    calls: list[str] = []

    def dies_after_first_commit(frame: Any, path: str, *args: Any, **kwargs: Any) -> int:
        if calls:  # the second table: the process "dies" before committing it
            raise SystemExit("killed")
        calls.append(path)
        return real_replace(frame, path, *args, **kwargs)

    monkeypatch.setattr("revseg.io.outputs.replace_periods", dies_after_first_commit)
    monkeypatch.setattr(RunLog, "write_failure", lambda *a: None)  # a killed run logs nothing
    with pytest.raises(SystemExit):
        run_segmentation(spark, cfg)
    segments_version = version(out)
    assert segments_version == 1 and version(out, contract.TIER_BOUNDARIES) == 0
    assert not logged(out)  # a reader who trusts the log sees no run yet
    monkeypatch.undo()

    quarantine_version = version(out, contract.QUARANTINED_TRANSACTIONS)
    assert quarantine_version == 1  # landed before the crash
    retry = run_segmentation(spark, cfg)
    assert retry.status == "succeeded"
    assert version(out) == segments_version  # the committed tables were not written again
    assert version(out, contract.QUARANTINED_TRANSACTIONS) == quarantine_version
    quarantined = DeltaTable(str(out / contract.QUARANTINED_TRANSACTIONS)).to_pyarrow_table()
    assert quarantined.num_rows == 1  # the bad row once, not once per attempt
    assert version(out, contract.TIER_BOUNDARIES) == 1
    assert len(table(out)) == 4  # a, b in January; a, c in February: no doubles
    history = DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).history()
    assert history[0]["userMetadata"] == retry.run_id  # the crashed attempt had the same id
    (run,) = logged(out)
    assert run["run_id"] == retry.run_id and run["status"] == "succeeded"


def test_latest_complete_hides_a_run_that_did_not_finish(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the segments nor the quarantined rows of a run stopped before logging."""
    lake = rows_lake(spark, tmp_path / "lake", bad_row=True)
    out = tmp_path / "out"
    lenient = "quality.max_quarantine_fraction=1"
    first = run_segmentation(spark, config(lake, out, lenient))
    complete = sorted(
        tuple(r)
        for r in latest_complete(spark, Outputs(path=str(out)), contract.CUSTOMER_SEGMENTS)
        .select("customer_id", "period", "segment")
        .collect()
    )
    real_append = delta_tables.append_rows

    def log_never_written(frame: Any, table: TableRef, *args: Any, **kwargs: Any) -> int:
        if str(table.path).endswith("/" + contract.RUNS):
            raise SystemExit("killed before logging")
        return real_append(frame, table, *args, **kwargs)

    monkeypatch.setattr("revseg.io.runs.append_rows", log_never_written)
    other = config(lake, out, lenient, "tiers.levels=[{name: all, fraction: 1.0}]")
    with pytest.raises(SystemExit):
        run_segmentation(spark, other)
    monkeypatch.undo()
    assert {r[2] for r in table(out)} == {"all"}  # the table moved on ...
    still = sorted(
        tuple(r)
        for r in latest_complete(spark, Outputs(path=str(out)), contract.CUSTOMER_SEGMENTS)
        .select("customer_id", "period", "segment")
        .collect()
    )
    assert still == complete  # ... a reader of the latest complete run did not
    quarantine = contract.QUARANTINED_TRANSACTIONS
    assert len(table_rows(out, quarantine)) == 2  # the bad row, once by each run
    shown = latest_complete(spark, Outputs(path=str(out)), quarantine).select(
        "transaction_id", "run_id"
    )
    assert [tuple(r) for r in shown.collect()] == [("t5", first.run_id)]


def table_rows(out: Path, name: str) -> list[dict[str, Any]]:
    return DeltaTable(str(out / name)).to_pyarrow_table().to_pylist()


def test_runs_command_lists_the_log(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = rows_lake(spark, tmp_path / "lake")
    out = tmp_path / "out"
    overrides = ["--set", f"source.path={lake}", "--set", f"output.path={out}"]
    overrides += ["--set", "revenue.fx_rates=null"]  # conf/local.yaml names the sample's rates
    assert main(["run", *overrides, "--set", "periods.grains=[month]"]) == 0
    assert main(["run", *overrides, "--set", "periods.grains=[month]"]) == 0  # skipped
    assert "skipped: the same config and input as run" in capsys.readouterr().out
    assert main(["runs", *overrides]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run_id") and len(lines) == 3
    assert "skipped" in lines[1] and "succeeded" in lines[2]  # newest first
