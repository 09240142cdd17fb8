"""Plain helpers the test modules share: small lakes, their configs, Delta tables read back
with delta-rs. The fixtures built from them are in `conftest.py`."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from pyspark.sql import DataFrame

from revseg import contract
from revseg.config import Config, load_config
from revseg.sample import SampleSpec

FIXTURES = Path(__file__).parent / "fixtures"

# The JVMs of a test live for short runs of many code paths: the JIT compiler's C2 tier
# spent a third of their CPU compiling code that then ran a few times. Here methods reach C2
# only when 20x hotter (C1 code until then): the same wall time, a fifth less CPU for a
# session of 12 small runs (113 s against 141 s), which the suite's two workers share. The
# throughput collector: on two cores G1's concurrent work costs a small run ~10%.
JVM_OPTIONS = (
    "-XX:+UseParallelGC -XX:Tier4InvocationThreshold=200000 "
    "-XX:Tier4CompileThreshold=250000 -XX:Tier4BackEdgeThreshold=2000000"
)

# The suite's lakes are a few thousand rows: compiling generated code costs more than
# running it, so the tests' sessions, the `revseg run` processes of the crash test and the
# job on the test cluster evaluate expressions interpreted (Spark's `NO_CODEGEN` test mode;
# a small run takes about 10 s instead of 17).
SMALL_RUN_SETTINGS = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    "spark.driver.extraJavaOptions": JVM_OPTIONS,
    "spark.executor.extraJavaOptions": JVM_OPTIONS,
    # Small runs are many short jobs: adaptive execution re-plans each shuffle stage as a
    # job of its own, and Delta's checksum file after each commit recomputes the table's
    # state. Neither changes what a run computes or writes; off, a warm small run takes
    # about 12% less CPU (41.5 s against 36.4 s for four runs).
    "spark.sql.adaptive.enabled": "false",
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
}


def write_lake(frame: DataFrame, path: Path, fmt: str = "parquet") -> str:
    """Write rows as a Hive-partitioned lake (by transaction_date, from the UTC timestamp)."""
    from pyspark.sql import functions as F

    if "transaction_date" not in frame.columns:
        frame = frame.withColumn("transaction_date", F.to_date("transaction_ts"))
    writer = frame.write.mode("overwrite").partitionBy("transaction_date").format(fmt)
    if fmt == "csv":
        writer = writer.option("header", "true")
    writer.save(str(path))
    return str(path)


def read_delta(path: Path | str) -> list[dict[str, Any]]:
    """A Delta table's rows, read by delta-rs (an independent Delta reader)."""
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def naive(value: Any) -> Any:
    """delta-rs returns UTC-aware timestamps, Spark (session in UTC) naive ones."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


# --- the generated sample lake (the `lake` and `full_run` fixtures) ----------------------

SPEC = SampleSpec(rows=6000, customers=400, start=date(2024, 1, 1), end=date(2024, 6, 30), seed=3)

# Hand-built inputs of a few rows exceed any sensible share of bad rows by design.
ANY_SHARE_QUARANTINED = "quality.max_quarantine_fraction=1"


def fx_beside(lake: str) -> list[str]:
    """The override that points at the FX table generated beside a sample lake, if any."""
    rates = Path(lake).parent / "fx_rates"
    return [f"revenue.fx_rates.path={rates}"] if rates.exists() else []


def config_for(lake: str, out: Path, *overrides: str) -> Config:
    """A config for a lake (with the FX table beside it, if any), any share quarantined."""
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"output.path={out}",
            *fx_beside(lake),
            ANY_SHARE_QUARANTINED,
            *overrides,
        ],
    )


# --- the bad-input corpus and small lakes of one format, months only ---------------------

AS_OF = date(2024, 1, 31)
STRICT = (
    "quality.min_date=2020-01-01",
    "quality.max_abs_amount=1000000",
    "quality.quarantine_excluded=true",
    "quality.max_quarantine_fraction=1",
)


def csv_lake(root: Path) -> str:
    """A lake of one day holding `tests/fixtures/bad_rows.csv`."""
    day = root / "transactions" / "transaction_date=2024-01-15"
    day.mkdir(parents=True)
    shutil.copy(FIXTURES / "bad_rows.csv", day / "part-0.csv")
    return str(root / "transactions")


def month_config(lake: str, out: Path, *overrides: str, fmt: str = "csv") -> Config:
    """A config for a lake of format `fmt` (no FX table), month grain only."""
    return load_config(
        None,
        [
            f"source.path={lake}",
            f"source.format={fmt}",
            f"output.path={out}",
            "periods.grains=[month]",
            *overrides,
        ],
    )


def segments(out: Path) -> dict[tuple[str, str], Decimal]:
    """Revenue by (customer, period) in `customer_segments`."""
    return {
        (r["customer_id"], r["period"]): r["revenue"]
        for r in read_delta(out / contract.CUSTOMER_SEGMENTS)
    }


def last_run(out: Path) -> dict[str, Any]:
    """The newest row of the run log."""
    return max(read_delta(out / contract.RUNS), key=lambda r: r["finished_at"])
