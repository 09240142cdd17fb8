"""The inputs of a run are read and checked once, and the run log counts the files read."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, read_delta

# The functions that read or check an input; each must run once per input per run.
READS = (
    "read_source",
    "resolve_columns",
    "check_column_types",
    "conform_rates",
    "check_rates",
    "first_rate_dates",
)


def test_a_run_reads_its_inputs_once_and_logs_its_files(
    spark: SparkSession, lake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()

    def spy(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return counted

    # Every module's own reference: a call through any of them is counted once.
    for module in [m for n, m in sys.modules.items() if n.startswith("revseg")]:
        for name in READS:
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    out = tmp_path / "out"
    # A run of every period takes the input state (fingerprints of the rates too), and the
    # lake has rows to quarantine (a second pass over the source).
    result = run_segmentation(spark, config_for(lake, out, "periods.grains=[month]"))
    assert result.counts is not None and result.counts.quarantined(False) > 0
    assert calls == {
        "read_source": 2,  # the source and the rates
        "resolve_columns": 1,
        "check_column_types": 1,
        "conform_rates": 1,
        "check_rates": 1,
        "first_rate_dates": 1,
    }
    (run,) = read_delta(out / contract.RUNS)
    files = [*Path(lake).rglob("*.parquet"), *(Path(lake).parent / "fx_rates").rglob("*.parquet")]
    assert json.loads(run["source_read"])["files"] == len(files) > 0
