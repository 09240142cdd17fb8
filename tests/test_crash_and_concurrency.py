"""Real processes: `revseg run` killed at several points of its work; and runs at once.

Each killed run is a `python -m revseg run` subprocess with its own JVM, as a scheduler
would start it; the concurrent runs share the test's session, each in a thread of its own.
After a kill every table must read back whole at a committed version (delta-rs), the next
run must succeed without duplicate rows, and `revseg vacuum` must remove the files that the
killed run left outside any table version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from revseg import contract
from revseg.config import Config, load_config
from revseg.errors import ConcurrentWriteError, TableError
from revseg.io.delta_history import latest_version
from revseg.io.delta_tables import replace_periods, vacuum_table
from revseg.io.derived import write_derived
from revseg.io.table_ref import Outputs, TableRef
from revseg.periods import Month
from revseg.pipeline import run_segmentation
from revseg.sample import SampleSpec, sample_transactions
from tests.lakes import SMALL_RUN_SETTINGS, read_delta, write_lake
from tests.references import expected_current, expected_pairs, table_pairs

REPO = Path(__file__).resolve().parents[1]
SPEC = SampleSpec(
    rows=6_000, customers=500, start=date(2024, 1, 1), end=date(2024, 3, 31), seed=11, plain=True
)
DATA_TABLES = (contract.CUSTOMER_SEGMENTS, contract.TIER_BOUNDARIES)


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("crash")
    return write_lake(sample_transactions(spark, SPEC), root / "transactions")


def revseg(lake: str, out: Path, *args: str) -> list[str]:
    """The command line of a small local run: one core, no UI, little memory, settings
    for small data."""
    settings = {
        "source.path": lake,
        "output.path": str(out),
        "periods.grains": "[month]",
        "quality.max_quarantine_fraction": "1",
        "revenue.fx_rates": "null",
        "spark.spark.master": "local[1]",
        "spark.spark.sql.shuffle.partitions": "2",
        "spark.spark.ui.enabled": "false",
        "spark.spark.driver.memory": "1g",
        # the test session's settings for small data
        **{f"spark.{key}": value for key, value in SMALL_RUN_SETTINGS.items()},
    }
    sets = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "revseg", "run", *sets, *args]


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def commit_file(out: Path, table: str, version: int) -> Path:
    return out / table / "_delta_log" / f"{version:020d}.json"


def data_files_on_disk(path: Path) -> set[str]:
    return {
        str(p.relative_to(path)) for p in path.rglob("*.parquet") if "_delta_log" not in p.parts
    }


def check_whole(out: Path) -> None:
    """Every table reads back at its committed version, with no duplicate rows."""
    for table in DATA_TABLES:
        if not (out / table).exists():  # killed before creating it: nothing half-made
            continue
        rows = DeltaTable(str(out / table)).to_pyarrow_table().to_pylist()
        if table == contract.CUSTOMER_SEGMENTS:
            keys = Counter((r["customer_id"], r["period"]) for r in rows)
            assert not [k for k, n in keys.items() if n > 1], "duplicate customer rows"
        else:
            keys = Counter((r["period"], r["segment"]) for r in rows)
            assert not [k for k, n in keys.items() if n > 1], "duplicate boundary rows"


# When to kill: a condition on the output directory, checked every 20 ms.
KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    "while writing segments": lambda out: bool(
        data_files_on_disk(out / contract.CUSTOMER_SEGMENTS)
    ),
    "after the segments commit": lambda out: commit_file(
        out, contract.CUSTOMER_SEGMENTS, 1
    ).exists(),
}
# (A kill after the last table's commit, before the run log's row, is the case of
# test_runs.py::test_latest_complete_hides_a_run_that_did_not_finish, in-process.)


def test_killed_runs_leave_whole_tables_and_the_next_run_repairs(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    """A run killed while it writes customer_segments, then its retry killed right after
    that table's commit, then a run that finishes: whole tables after each step."""
    out = tmp_path / "out"
    log = out / contract.RUNS
    for attempt, (point, reached) in enumerate(KILL_POINTS.items()):
        process = start(revseg(lake, out), tmp_path / f"killed-{attempt}.log")
        deadline = time.monotonic() + 240
        while not reached(out):
            assert process.poll() is None, f"the run ended before {point}"
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        check_whole(out)
        assert DeltaTable(str(log)).to_pyarrow_table().num_rows == 0  # a killed run logs nothing
        versions = DeltaTable(str(out / contract.CUSTOMER_SEGMENTS)).version()
        assert versions == attempt, f"killed {point}: customer_segments at version {versions}"

    # The next run (here in the test's own session) finishes the work.
    result = run_segmentation(spark, config(lake, out))
    assert result.status == "succeeded"
    check_whole(out)
    runs = DeltaTable(str(log)).to_pyarrow_table().to_pylist()
    assert [r["status"] for r in runs] == ["succeeded"]
    assert runs[0]["input_rows"] == runs[0]["valid_rows"] == SPEC.rows

    # Files the killed runs wrote but never committed belong to no version; vacuum them.
    for table in DATA_TABLES:
        path = out / table
        with pytest.raises(TableError, match="below the table"):
            vacuum_table(spark, TableRef.at(str(path)), retain_hours=0)  # without --force: refused
        vacuum_table(spark, TableRef.at(str(path)), retain_hours=0, force=True)
        current = {Path(uri.removeprefix("file://")) for uri in DeltaTable(str(path)).file_uris()}
        assert {path / f for f in data_files_on_disk(path)} == current


def config(lake: str, out: Path, *more: str) -> Config:
    """The same settings as the subprocess runs (`revseg`), for an in-process run."""
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"output.path={out}",
            "periods.grains=[month]",
            "quality.max_quarantine_fraction=1",
            "insights.tier_migrations=true",
            "insights.customer_current_segment=true",
            *more,
        ],
    )


TWO_TIERS = "tiers.levels=[{name: top, fraction: 0.5}, {name: rest, fraction: 1.0}]"


def outcome(future: Future[Any]) -> str:
    """ "succeeded", or the message of a concurrent-write error (anything else fails)."""
    try:
        return str(future.result(timeout=300).status)
    except ConcurrentWriteError as err:
        return str(err)


def test_concurrent_runs_commit_apart_and_never_mix(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    """Four runs at once: January, February twice with different tiers, and February again
    as the first February run (the very same work: same run id and Delta txn ids). January
    is disjoint from the others and must commit; the February runs either commit one after
    the other or are told to retry, and no table holds rows of two tiers' runs or a row
    twice."""
    out = tmp_path / "out"
    run_segmentation(spark, config(lake, out))  # the tables exist, as on any later night
    january, february = (Month.parse("2024-01"),) * 2, (Month.parse("2024-02"),) * 2
    runs = {
        "january": (config(lake, out), january),
        "february": (config(lake, out), february),
        "february, two tiers": (config(lake, out, TWO_TIERS), february),
        "february again": (config(lake, out), february),
    }
    # One process, four threads: each run's Spark jobs and Delta commits run at once in
    # the session's JVM, as they would from four processes, at a fraction of the start-up.
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {
            name: pool.submit(run_segmentation, spark, cfg, *months)
            for name, (cfg, months) in runs.items()
        }
        outcomes = {name: outcome(future) for name, future in futures.items()}
    assert outcomes["january"] == "succeeded"
    names = ("february", "february, two tiers", "february again")
    results = [outcomes[name] for name in names]
    for got in results:
        assert got == "succeeded" or (
            "for period(s)" in got and "2024-02" in got and "Retry" in got
        ), got
    # Runs of the same period that interleave may all be told to retry (at most one of
    # them can succeed): the last one told to retry does, alone, and brings the tables
    # in line.
    retried = [name for name, got in zip(names, results, strict=True) if got != "succeeded"]
    if retried:
        last = runs[retried[-1]]
        assert run_segmentation(spark, last[0], *last[1]).status == "succeeded"
    check_whole(out)
    default = {"platinum", "gold", "silver", "bronze", "no_revenue"}
    two = {"top", "rest", "no_revenue"}
    for table in DATA_TABLES:
        frame = DeltaTable(str(out / table)).to_pyarrow_table().to_pylist()
        names = {r["segment"] for r in frame if r["period"] == "2024-02"}
        assert names <= default or names <= two, f"{table} holds both runs' rows: {names}"
        assert {r["segment"] for r in frame if r["period"] == "2024-01"} <= default
    logged = DeltaTable(str(out / contract.RUNS)).to_pyarrow_table().to_pylist()
    succeeded = 2 + results.count("succeeded") + (1 if retried else 0)
    assert sum(r["status"] == "succeeded" for r in logged) == succeeded
    # The derived tables follow the segments as committed last, whichever run won: the
    # January run's pairs into February and its current segments are not left stale.
    segments = read_delta(out / contract.CUSTOMER_SEGMENTS)
    migrations = read_delta(out / contract.TIER_MIGRATIONS)
    assert table_pairs(migrations, "month") == expected_pairs(segments, "month")
    current = {
        r["customer_id"]: (r["period"], r["segment"], r["segment_since"], r["revenue"])
        for r in read_delta(out / contract.CUSTOMER_CURRENT_SEGMENT)
    }
    assert current == {
        customer: found[:4] for customer, found in expected_current(segments, "month").items()
    }


def test_derived_tables_are_derived_again_after_another_runs_commit(
    spark: SparkSession, lake: str, tmp_path: Path
) -> None:
    """`write_derived` on real tables: a segments commit by another writer while a derived
    table is written, or Delta refusing the write as concurrent, makes it derive again from
    the latest segments; its own commits alone do not."""
    out = tmp_path / "out"
    run_segmentation(spark, config(lake, out))
    outputs = Outputs.of(config(lake, out).output)
    segments = outputs.table(contract.CUSTOMER_SEGMENTS)
    start = latest_version(spark, segments)
    seen: list[int] = []

    def another_run_commits() -> None:
        rows = segments.read(spark).where("period = '2024-03'")
        replace_periods(rows, segments, ["2024-03"], ("segment", "period"), "another-run")

    def derive(version: int) -> int:
        seen.append(version)
        if len(seen) == 1:
            another_run_commits()
        if len(seen) == 2:
            raise ConcurrentWriteError("refused")
        return version

    got = write_derived(spark, outputs, "a derived table", start, derive, "this-run")
    assert seen == [start, start + 1, start + 1]
    assert got == start + 1
    # this run's own commit to the segments is not a reason to derive again
    own = latest_version(spark, segments)
    rows = segments.read(spark).where("period = '2024-03'")
    replace_periods(rows, segments, ["2024-03"], ("segment", "period"), "this-run")
    calls: list[int] = []

    def once(version: int) -> int:
        calls.append(version)
        return version

    assert write_derived(spark, outputs, "a derived table", own, once, "this-run") == own
    assert calls == [own]
