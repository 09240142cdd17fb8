"""The README's guarantees tried on the cases users' lakes produce: a Delta DELETE by
deletion vector, a file rewritten under its own name, a commit left by a stopped run, a
write that does not hold what was computed, and a late day with nothing countable."""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import contract, pipeline
from revseg.config import Config, load_config
from revseg.errors import ConcurrentWriteError, RunError, TableError
from revseg.io import delta_tables
from revseg.io.outputs import OUTPUT_TABLES
from revseg.io.runs import latest_complete, latest_complete_tables
from revseg.io.table_ref import Outputs, TableRef
from revseg.periods import Month
from revseg.pipeline import run_segmentation
from revseg.run_log import RunLog
from tests.lakes import last_run, read_delta

SCHEMA = "transaction_id string, customer_id string, transaction_ts timestamp, amount decimal(18,2)"


def sales(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA).withColumns(
        {"currency": F.lit("USD"), "transaction_date": F.to_date("transaction_ts")}
    )


def ten_days(spark: SparkSession) -> DataFrame:
    """60 sales over ten days of January 2024, six customers."""
    return sales(
        spark,
        [
            (f"F{i}", f"c{i % 6}", datetime(2024, 1, 1 + i % 10, 9 + i % 8), Decimal(i + 1))
            for i in range(60)
        ],
    )


def config(lake: Path, out: Path, *overrides: str, fmt: str = "parquet") -> Config:
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"source.format={fmt}",
            f"output.path={out}",
            "periods.grains=[month, year]",
            "quality.max_quarantine_fraction=1",
            *overrides,
        ],
    )


def stop_after_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs stop (SystemExit, which is not an Exception: nothing is logged) after their
    customer_segments commit, before tier_boundaries."""
    real_replace = delta_tables.replace_periods

    def stopped_after_first(frame: DataFrame, table: TableRef, *args: Any, **kwargs: Any) -> int:
        if str(table.path).endswith(contract.TIER_BOUNDARIES):
            raise SystemExit("stopped")
        return real_replace(frame, table, *args, **kwargs)

    monkeypatch.setattr("revseg.io.outputs.replace_periods", stopped_after_first)


def year_revenue(out: Path) -> Decimal:
    rows = read_delta(out / contract.CUSTOMER_SEGMENTS)
    return sum((r["revenue"] for r in rows if r["period"] == "2024"), Decimal(0))


def test_a_delete_by_deletion_vector_is_seen_by_a_full_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    """DELETE on a source with deletion vectors keeps every file name: the run must still
    see a new input (the Delta version is part of what it read) and not skip."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    # one file a day: the DELETE below leaves five rows in F5's file, so Delta marks the row
    # in a deletion vector instead of rewriting the file
    ten_days(spark).coalesce(1).write.format("delta").partitionBy("transaction_date").save(
        str(lake)
    )
    spark.sql(
        f"ALTER TABLE delta.`{lake}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    cfg = config(lake, out, fmt="delta")
    assert run_segmentation(spark, cfg).status == "succeeded"
    before = year_revenue(out)
    assert before == sum(Decimal(i + 1) for i in range(60))

    files = set(spark.read.format("delta").load(str(lake)).inputFiles())
    spark.sql(f"DELETE FROM delta.`{lake}` WHERE transaction_id = 'F5'")
    metrics = DeltaTable(str(lake)).history(1)[0]["operationMetrics"]
    assert int(metrics["numDeletionVectorsAdded"]) == 1 and int(metrics["numRemovedFiles"]) == 0
    assert set(spark.read.format("delta").load(str(lake)).inputFiles()) == files

    again = run_segmentation(spark, cfg)
    assert again.status == "succeeded"
    assert year_revenue(out) == before - Decimal(6)  # F5 sold 6.00
    read = last_run(out)["source_read"]
    assert '"delta_version": 2' in read  # the version read is logged: 0 write, 1 alter, 2 delete


def replace_in_place(new: Path, old: Path) -> None:
    """Another tool rewrites `old` under its name (with a new modification time); the local
    file system's checksum file beside it, which that tool would not know, goes."""
    shutil.copy(new, old)
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime + 60))
    (old.parent / f".{old.name}.crc").unlink(missing_ok=True)


def test_files_rewritten_under_their_own_names_are_seen(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A source file and the FX table rewritten in place (same names, other content): the
    next run of the same config computes again instead of calling them unchanged."""
    lake, out, rates = tmp_path / "lake", tmp_path / "out", tmp_path / "rates"
    frame = ten_days(spark).withColumn(
        "currency", F.when(F.col("transaction_id") == "F0", "EUR").otherwise(F.lit("USD"))
    )
    frame.coalesce(1).write.partitionBy("transaction_date").parquet(str(lake))  # a file a day

    def write_rates(rate: str) -> None:
        spark.createDataFrame(
            [("EUR", date(2024, 1, 1), Decimal(rate))],
            "currency string, rate_date date, rate decimal(10,4)",
        ).coalesce(1).write.mode("overwrite").parquet(str(tmp_path / "new_rates"))
        if rates.exists():  # same file names as before: swap the content in place
            (new,) = (tmp_path / "new_rates").glob("*.parquet")
            (old,) = rates.glob("*.parquet")
            replace_in_place(new, old)
        else:
            shutil.copytree(tmp_path / "new_rates", rates)
        shutil.rmtree(tmp_path / "new_rates")

    write_rates("1.10")
    cfg = config(lake, out, f"revenue.fx_rates.path={rates}")
    assert run_segmentation(spark, cfg).status == "succeeded"
    assert year_revenue(out) == sum(Decimal(i + 1) for i in range(1, 60)) + Decimal("1.10")
    assert run_segmentation(spark, cfg).status == "skipped"  # nothing changed: skipped

    write_rates("2.00")
    assert run_segmentation(spark, cfg).status == "succeeded"
    assert year_revenue(out) == sum(Decimal(i + 1) for i in range(1, 60)) + Decimal("2.00")

    # One day's file rewritten under its own name, one amount changed.
    day = lake / "transaction_date=2024-01-02"
    (old,) = day.glob("*.parquet")
    changed = spark.read.parquet(str(day)).withColumn(
        "amount",
        F.when(F.col("transaction_id") == "F1", F.lit(Decimal("102.00")))
        .otherwise(F.col("amount"))
        .cast("decimal(18,2)"),
    )
    changed.coalesce(1).write.parquet(str(tmp_path / "day"))
    (new,) = (tmp_path / "day").glob("*.parquet")
    replace_in_place(new, old)
    assert run_segmentation(spark, cfg).status == "succeeded"
    assert year_revenue(out) == sum(Decimal(i + 1) for i in range(1, 60)) + Decimal("102.00")


def test_what_was_committed_is_read_back_and_must_match(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer_segments commit that holds a row twice: the check after the commit reads
    the table back, fails the run and leaves the last good run as the one to read."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    ten_days(spark).write.partitionBy("transaction_date").parquet(str(lake))
    assert run_segmentation(spark, config(lake, out)).status == "succeeded"
    good = last_run(out)
    real_replace = delta_tables.replace_periods

    def doubles_a_row(frame: DataFrame, table: TableRef, *args: Any, **kwargs: Any) -> int:
        if str(table.path).endswith(contract.CUSTOMER_SEGMENTS):
            frame = frame.unionByName(frame.limit(1))
        return real_replace(frame, table, *args, **kwargs)

    monkeypatch.setattr("revseg.io.outputs.replace_periods", doubles_a_row)
    other = config(
        lake, out, "tiers.levels=[{name: top, fraction: 0.5}, {name: rest, fraction: 1}]"
    )
    with pytest.raises(RunError, match="reconciliation of the committed tables failed"):
        run_segmentation(spark, other)
    monkeypatch.undo()
    failed = last_run(out)
    assert failed["status"] == "failed" and "customer_segments" in failed["error"]
    assert (
        DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).version()
        > dict(good["table_versions"])[contract.CUSTOMER_SEGMENTS]
    )


def test_a_commit_no_run_logged_is_not_taken_as_unchanged(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of another config stopped after its customer_segments commit (nothing logged):
    the next incremental run finds no input changed, but must not skip; it recomputes."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    ten_days(spark).write.partitionBy("transaction_date").parquet(str(lake))
    cfg = config(lake, out)
    assert run_segmentation(spark, cfg).status == "succeeded"
    expected = sorted(
        (r["customer_id"], r["period"], r["segment"])
        for r in read_delta(out / contract.CUSTOMER_SEGMENTS)
    )
    stop_after_segments(monkeypatch)
    monkeypatch.setattr(RunLog, "write_failure", lambda *a: None)  # a killed run logs nothing
    one_tier = config(lake, out, "tiers.levels=[{name: all, fraction: 1.0}]")
    with pytest.raises(SystemExit):
        run_segmentation(spark, one_tier)
    monkeypatch.undo()
    assert {r["segment"] for r in read_delta(out / contract.CUSTOMER_SEGMENTS)} == {"all"}

    result = run_segmentation(spark, cfg, incremental=True)
    assert result.status == "succeeded", result.note
    assert result.note is not None and "customer_segments changed after run" in result.note
    found = sorted(
        (r["customer_id"], r["period"], r["segment"])
        for r in read_delta(out / contract.CUSTOMER_SEGMENTS)
    )
    assert found == expected


def test_a_late_day_with_nothing_countable_is_still_quarantined_and_checked(
    spark: SparkSession, tmp_path: Path
) -> None:
    """An incremental run whose changed days hold only rows that cannot be counted writes no
    period, yet quarantines the rows and applies the same checks as a full run."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    ten_days(spark).write.partitionBy("transaction_date").parquet(str(lake))
    cfg = config(lake, out, "revenue.fail_on_missing_fx=true")
    assert run_segmentation(spark, cfg).status == "succeeded"

    late = sales(spark, [("L1", None, datetime(2025, 6, 1, 10), Decimal("9.00"))])
    late.write.mode("append").partitionBy("transaction_date").parquet(str(lake))
    result = run_segmentation(spark, cfg, incremental=True)
    assert result.status == "succeeded" and result.periods == {}
    assert result.note is not None and "nothing to write" in result.note
    assert result.counts is not None and result.counts.rejected("missing_customer_id") == 1
    quarantined = read_delta(out / contract.QUARANTINED_TRANSACTIONS)
    assert [(r["transaction_id"], r["reason"]) for r in quarantined] == [
        ("L1", "missing_customer_id")
    ]

    # A late day in another currency without a rate: fail_on_missing_fx holds here too.
    foreign = sales(spark, [("L2", "c1", datetime(2025, 7, 1, 10), Decimal("9.00"))])
    foreign.withColumn("currency", F.lit("EUR")).write.mode("append").partitionBy(
        "transaction_date"
    ).parquet(str(lake))
    with pytest.raises(RunError, match="fail_on_missing_fx is true"):
        run_segmentation(spark, cfg, incremental=True)


def revenue_cells(out: Path) -> dict[tuple[str, str], Decimal]:
    return {
        (r["customer_id"], r["period"]): r["revenue"]
        for r in read_delta(out / contract.CUSTOMER_SEGMENTS)
    }


def test_a_copy_across_a_year_end_counts_once_in_every_kind_of_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A second delivery minutes after midnight on New Year, and a row in the partition of
    no date: a full, an incremental and a range run count each once, in the same period."""
    rows = [
        ("D1", "x", datetime(2023, 12, 31, 23, 50), Decimal("100.00")),
        ("D1", "x", datetime(2024, 1, 1, 0, 10), Decimal("100.00")),  # the second delivery
        ("s1", "y", datetime(2023, 6, 1, 10), Decimal("10.00")),
        ("s2", "y", datetime(2024, 1, 20, 10), Decimal("20.00")),
    ]
    lake, out = tmp_path / "lake", tmp_path / "out"
    undated = sales(spark, [("u1", "z", datetime(2024, 1, 5, 10), Decimal("7.00"))])
    sales(spark, rows).unionByName(
        undated.withColumn("transaction_date", F.lit(None).cast("date"))
    ).write.partitionBy("transaction_date").parquet(str(lake))
    assert any("__HIVE_DEFAULT_PARTITION__" in p.name for p in lake.iterdir())
    cfg = config(lake, out)
    full = run_segmentation(spark, cfg)
    assert full.counts is not None and full.counts.duplicates == 1
    cells = revenue_cells(out)
    assert cells[("x", "2023")] == Decimal("100.00") and ("x", "2024") not in cells
    assert cells[("z", "2024-01")] == Decimal("7.00")

    # A new day in May: the incremental run rewrites 2024, and must agree with a full run.
    may = sales(spark, [("n1", "y", datetime(2024, 5, 2, 10), Decimal("5.00"))])
    may.write.mode("append").partitionBy("transaction_date").parquet(str(lake))
    incremental = run_segmentation(spark, cfg, incremental=True)
    assert incremental.periods.get("year") == ("2024",), incremental.note
    fresh = tmp_path / "fresh"
    run_segmentation(spark, config(lake, fresh))
    assert revenue_cells(out) == revenue_cells(fresh)
    assert ("x", "2024") not in revenue_cells(out)

    # A range run of January alone: the copy is not January's, the undated row is.
    january = tmp_path / "january"
    ranged = run_segmentation(
        spark, config(lake, january, "periods.grains=[month]"), *(Month.parse("2024-01"),) * 2
    )
    assert ranged.counts is not None and ranged.counts.outside_range >= 2
    assert revenue_cells(january) == {
        ("y", "2024-01"): Decimal("20.00"),
        ("z", "2024-01"): Decimal("7.00"),
    }


def test_an_incremental_run_writes_the_rolling_windows_a_full_run_writes_after_a_gap(
    spark: SparkSession, tmp_path: Path
) -> None:
    """No sales at all in March: a late day in May recomputes L3M-2024-05 (March to May),
    which a full run writes; the empty March at the edge of what the run reads is not the
    edge of the data."""
    months = (1, 2, 4, 5, 6)
    rows = [
        (f"m{m}-{c}", f"c{c}", datetime(2024, m, 10 + c, 10), Decimal(10 * m + c))
        for m in months
        for c in range(3)
    ]
    lake, out = tmp_path / "lake", tmp_path / "out"
    sales(spark, rows).write.partitionBy("transaction_date").parquet(str(lake))
    cfg = config(lake, out, "periods.grains=[month, rolling_3m]")
    full = run_segmentation(spark, cfg)
    assert "L3M-2024-05" in full.periods["rolling_3m"]

    late = sales(spark, [("late", "c0", datetime(2024, 5, 28, 10), Decimal("1.00"))])
    late.write.mode("append").partitionBy("transaction_date").parquet(str(lake))
    incremental = run_segmentation(spark, cfg, incremental=True)
    assert "L3M-2024-05" in incremental.periods["rolling_3m"], incremental.skipped_windows
    fresh = tmp_path / "fresh"
    run_segmentation(spark, config(lake, fresh, "periods.grains=[month, rolling_3m]"))
    assert revenue_cells(out) == revenue_cells(fresh)


def test_tables_refuse_a_run_that_would_give_their_period_labels_another_meaning(
    spark: SparkSession, tmp_path: Path
) -> None:
    """FY2024 from April and FY2024 from July are different years; March in UTC and in
    Tokyo hold different rows: one table never holds both."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    ten_days(spark).write.partitionBy("transaction_date").parquet(str(lake))
    fiscal = "periods.grains=[month, fiscal_year]"
    first = run_segmentation(spark, config(lake, out, fiscal, "periods.fiscal_year_start_month=4"))
    assert first.status == "succeeded"
    versions = {
        t: DeltaTable(str(out / t)).version() for t in ("customer_segments", "tier_boundaries")
    }
    for changed, key in (
        ("periods.fiscal_year_start_month=7", "periods.fiscal_year_start_month"),
        ("periods.timezone=Asia/Tokyo", "periods.timezone"),
    ):
        cfg = config(lake, out, fiscal, "periods.fiscal_year_start_month=4", changed)
        with pytest.raises(TableError, match=f"config key '{key}' is"):
            run_segmentation(spark, cfg)
    after = {t: DeltaTable(str(out / t)).version() for t in versions}
    assert after == versions  # refused before any write
    props = DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).metadata().configuration
    assert props["revseg.periods.fiscal_year_start_month"] == "4"
    assert props["revseg.periods.timezone"] == "UTC"
    # Adding a fiscal grain to tables written without one records its start month then.
    plain = tmp_path / "plain"
    run_segmentation(spark, config(lake, plain))
    run_segmentation(spark, config(lake, plain, fiscal, "periods.fiscal_year_start_month=7"))
    props = DeltaTable(str(plain / contract.TIER_BOUNDARIES)).metadata().configuration
    assert props["revseg.periods.fiscal_year_start_month"] == "7"


def two_months(spark: SparkSession) -> DataFrame:
    """40 sales on the first ten days of January and of February 2024, four customers."""
    return sales(
        spark,
        [
            (f"M{i}", f"c{i % 4}", datetime(2024, 1 + i // 20, 1 + i % 10, 10), Decimal(i + 1))
            for i in range(40)
        ],
    )


def segment_names(frame: DataFrame) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for row in frame.select("period", "segment").distinct().collect():
        names.setdefault(row["period"], set()).add(row["segment"])
    return names


TWO_TIERS = "tiers.levels=[{name: top, fraction: 0.5}, {name: rest, fraction: 1.0}]"
ONE_TIER = "tiers.levels=[{name: all, fraction: 1.0}]"


def test_runs_whose_commits_interleave_never_both_succeed(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A replaces January; run B replaces January and February, entirely between A's
    customer_segments and tier_boundaries commits. A must be told to retry, and a reader of
    the run log sees B's rows for both months in both tables, never A's beside B's."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    two_months(spark).write.partitionBy("transaction_date").parquet(str(lake))
    month = "periods.grains=[month]"
    assert run_segmentation(spark, config(lake, out, month)).status == "succeeded"
    january, february = Month.parse("2024-01"), Month.parse("2024-02")
    real_replace = delta_tables.replace_periods
    started: list[bool] = []
    later: list[Any] = []

    def b_runs_in_between(frame: DataFrame, table: TableRef, *args: Any, **kwargs: Any) -> int:
        version = real_replace(frame, table, *args, **kwargs)
        if str(table.path).endswith(contract.CUSTOMER_SEGMENTS) and not started:
            started.append(True)
            b = config(lake, out, month, TWO_TIERS)
            later.append(run_segmentation(spark, b, january, february))
        return version

    monkeypatch.setattr("revseg.io.outputs.replace_periods", b_runs_in_between)
    with pytest.raises(ConcurrentWriteError, match=r"for period\(s\) 2024-01 .*Retry"):
        run_segmentation(spark, config(lake, out, month, ONE_TIER), january, january)
    monkeypatch.undo()
    assert later[0].status == "succeeded"
    assert last_run(out)["status"] == "failed"
    two = {"top", "rest"}
    for table in (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES):
        names = segment_names(latest_complete(spark, Outputs(path=str(out)), table))
        assert set(names) == {"2024-01", "2024-02"}
        assert all(found <= two for found in names.values()), (table, names)

    # A run of another month between the two commits does not stop the first.
    def february_in_between(frame: DataFrame, table: TableRef, *args: Any, **kwargs: Any) -> int:
        version = real_replace(frame, table, *args, **kwargs)
        if str(table.path).endswith(contract.CUSTOMER_SEGMENTS) and len(started) == 1:
            started.append(True)
            run_segmentation(spark, config(lake, out, month, ONE_TIER), february, february)
        return version

    monkeypatch.setattr("revseg.io.outputs.replace_periods", february_in_between)
    january_run = run_segmentation(spark, config(lake, out, month, ONE_TIER), january, january)
    monkeypatch.undo()
    assert len(started) == 2 and january_run.status == "succeeded"
    for table in (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES):
        names = segment_names(latest_complete(spark, Outputs(path=str(out)), table))
        assert names == {"2024-01": {"all"}, "2024-02": {"all"}}, (table, names)


def test_a_retry_that_finds_its_own_commit_still_sees_a_run_in_between(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A stops after its customer_segments commit. Its retry (same run id and Delta
    txn ids: nothing was logged since) starts, and run B of the same month runs entirely
    before the retry writes. Delta skips the retry's customer_segments write as already
    committed, so its own commit lies before B's: it must still see B and be told to retry."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    two_months(spark).write.partitionBy("transaction_date").parquet(str(lake))
    month, january = "periods.grains=[month]", Month.parse("2024-01")
    assert run_segmentation(spark, config(lake, out, month)).status == "succeeded"
    a, b = config(lake, out, month, ONE_TIER), config(lake, out, month, TWO_TIERS)
    stop_after_segments(monkeypatch)
    with pytest.raises(SystemExit):
        run_segmentation(spark, a, january, january)
    monkeypatch.undo()
    real_write = pipeline.write_periods
    started: list[bool] = []
    later: list[Any] = []

    def b_runs_first(*args: Any, **kwargs: Any) -> dict[str, int]:
        if not started:  # the retry's write (B's own goes straight through)
            started.append(True)
            later.append(run_segmentation(spark, b, january, january))
        return real_write(*args, **kwargs)

    monkeypatch.setattr("revseg.pipeline.write_periods", b_runs_first)
    with pytest.raises(ConcurrentWriteError, match=r"for period\(s\) 2024-01 .*Retry"):
        run_segmentation(spark, a, january, january)
    monkeypatch.undo()
    assert later[0].status == "succeeded"
    for table in (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES):
        names = segment_names(latest_complete(spark, Outputs(path=str(out)), table))
        assert names["2024-01"] == {"top", "rest"}, (table, names)


def test_the_run_log_reader_shows_each_period_as_its_last_successful_run_wrote_it(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of both months stopped after its customer_segments commit, then a successful
    run of February only: January in both tables is the first run's, not the stopped one's
    (which lies below the February run's table versions)."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    two_months(spark).write.partitionBy("transaction_date").parquet(str(lake))
    month = "periods.grains=[month]"
    assert run_segmentation(spark, config(lake, out, month)).status == "succeeded"
    first = {
        t: segment_names(latest_complete(spark, Outputs(path=str(out)), t)) for t in OUTPUT_TABLES
    }
    stop_after_segments(monkeypatch)
    with pytest.raises(SystemExit):  # not an Exception: nothing is logged
        run_segmentation(spark, config(lake, out, month, ONE_TIER))
    monkeypatch.undo()
    february = Month.parse("2024-02")
    february_run = config(lake, out, month, TWO_TIERS)
    assert run_segmentation(spark, february_run, february, february).status == "succeeded"
    for table in OUTPUT_TABLES:
        names = segment_names(latest_complete(spark, Outputs(path=str(out)), table))
        assert names["2024-01"] == first[table]["2024-01"], table
        assert names["2024-02"] == {"top", "rest"}, table

    tables = latest_complete_tables(spark, Outputs(path=str(out)))  # one version of the log for all
    assert set(tables) == set(OUTPUT_TABLES)  # nothing was quarantined
    for table in OUTPUT_TABLES:
        assert segment_names(tables[table]) == segment_names(
            latest_complete(spark, Outputs(path=str(out)), table)
        )

    # The tables keep their history for ten years. Where it was set shorter and log clean-up
    # left only the February run's commits: customer_segments' January now holds the
    # stopped run's rows, and nothing left says who wrote them: refused, not guessed.
    # tier_boundaries' January is the first run's commit, the last one removed: nothing
    # unknown came after it.
    for table in OUTPUT_TABLES:
        kept = DeltaTable(str(out / table)).metadata().configuration
        assert kept["delta.logRetentionDuration"] == "interval 3650 days"
        clean_up_log(out / table)
    with pytest.raises(TableError, match=r"which run wrote period\(s\) 2024-01 of .*re-run"):
        latest_complete(spark, Outputs(path=str(out)), contract.CUSTOMER_SEGMENTS)
    names = segment_names(latest_complete(spark, Outputs(path=str(out)), contract.TIER_BOUNDARIES))
    assert names == {"2024-01": first[contract.TIER_BOUNDARIES]["2024-01"], **TWO_TIERED}


TWO_TIERED = {"2024-02": {"top", "rest"}}


def clean_up_log(table: Path) -> None:
    """What Delta's log clean-up leaves of a table's log: a checkpoint at the current
    version, and no commit or checkpoint file before it."""
    found = DeltaTable(str(table))
    found.create_checkpoint()
    current = found.version()
    for entry in (table / "_delta_log").iterdir():
        version = entry.name.lstrip(".").split(".")[0]
        if version.isdigit() and int(version) < current:
            entry.unlink()


def period_revenue(out: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in read_delta(out / contract.CUSTOMER_SEGMENTS):
        totals[row["period"]] = totals.get(row["period"], Decimal(0)) + row["revenue"]
    return totals


def test_days_removed_by_retention_leave_the_periods_they_fed_as_stored(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Retention removes the source's first partitions (January to Monday 12 February):
    neither an incremental nor a full run rewrites a period that held removed days or the
    days next to them, a change on the first day left plans no period of removed days
    only, and later periods are still written."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    start = date(2024, 1, 1)
    days = [date.fromordinal(start.toordinal() + i) for i in range(121)]  # to 2024-04-30
    rows = [
        (f"D{i}", f"c{i % 5}", datetime(d.year, d.month, d.day, 12), Decimal(i + 1))
        for i, d in enumerate(days)
    ]
    sales(spark, rows).write.partitionBy("transaction_date").parquet(str(lake))
    cfg = config(lake, out, "periods.grains=[week, month, quarter]")
    assert run_segmentation(spark, cfg).status == "succeeded"
    stored = period_revenue(out)
    for day in days[: 31 + 12]:
        shutil.rmtree(lake / f"transaction_date={day}")

    unchanged = run_segmentation(spark, cfg, incremental=True)
    assert unchanged.status == "skipped" and "were removed" in (unchanged.note or "")
    # A late row on the first day left (Tuesday 13 February): its periods are partial now,
    # and the week before (reached through a copy a day away) holds removed days only.
    first = sales(spark, [("D-late", "c2", datetime(2024, 2, 13, 15), Decimal("5.00"))])
    first.write.mode("append").partitionBy("transaction_date").parquet(str(lake))
    held = run_segmentation(spark, cfg, incremental=True)
    assert held.status == "succeeded", held.note
    assert held.written_periods() == []
    assert "kept 2024-02, 2024-Q1, 2024-W07 as stored" in (held.note or "")
    may = sales(spark, [("D-may", "c1", datetime(2024, 5, 2, 12), Decimal("7.00"))])
    may.write.mode("append").partitionBy("transaction_date").parquet(str(lake))
    late = run_segmentation(spark, cfg, incremental=True)
    assert late.status == "succeeded", late.note
    # the new day's periods, and April: a copy of a May transaction may lie a day before
    assert calendar(late.written_periods()) == ["2024-04", "2024-05", "2024-Q2"]
    full = run_segmentation(spark, cfg)
    assert full.status == "succeeded"
    assert "kept 2024-02, 2024-Q1, 2024-W07 as stored" in (full.note or "")
    assert calendar(full.written_periods()) == ["2024-03", "2024-04", "2024-05", "2024-Q2"]
    assert "2024-W08" in full.written_periods()
    now = period_revenue(out)
    for period in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-Q1", "2024-W06", "2024-W07"):
        assert now[period] == stored[period], period
    assert now["2024-Q2"] == stored["2024-Q2"] + Decimal("7.00")

    # Refunds booked to their sale reach revenue.max_refund_delay_days back: a refund in
    # early March may name a removed February sale, so March (to 13 February + 20 days)
    # stays as stored too.
    refunds = (
        "revenue.refund_attribution=original",
        "revenue.max_refund_delay_days=20",
    )
    reach = run_segmentation(
        spark, config(lake, out, "periods.grains=[week, month, quarter]", *refunds)
    )
    assert reach.status == "succeeded", reach.note
    weeks = "2024-W07, 2024-W08, 2024-W09, 2024-W10"
    assert f"kept 2024-02, 2024-03, 2024-Q1, {weeks} as stored" in (reach.note or "")
    assert calendar(reach.written_periods()) == ["2024-04", "2024-05", "2024-Q2"]
    assert period_revenue(out) == now


def calendar(periods: list[str]) -> list[str]:
    """The month and quarter labels, without the weeks."""
    return sorted(p for p in periods if "W" not in p)
