"""The `revseg` command end to end: exit codes, one-line errors, the summary."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from revseg.cli import main
from revseg.errors import ConcurrentWriteError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake written by `revseg generate`, as a user would make one."""
    path = tmp_path_factory.mktemp("cli") / "lake"
    code = main(
        [
            "generate",
            "--output",
            str(path),
            "--rows",
            "2000",
            "--customers",
            "150",
            "--start",
            "2024-01-01",
            "--end",
            "2024-04-30",
            "--seed",
            "5",
        ]
    )
    assert code == 0
    return path


def test_generate_refuses_to_overwrite(
    small_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "--output", str(small_lake), "--rows", "10"])
    assert code == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err


def test_run_prints_summary_and_writes_tables(
    small_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="revseg")
    out = tmp_path / "out"
    local = str(REPO / "conf" / "local.yaml")
    code = main(
        [*sample_run(small_lake, out), "--config", local, "--from", "2024-02", "--to", "2024-03"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "succeeded" in captured.out
    assert "month: 2 period(s) written (2024-02 .. 2024-03)" in captured.out
    assert "quarter: 1 period(s) written (2024-Q1)" in captured.out
    assert str(out / "customer_segments") in captured.out
    assert "refunds netted " in captured.out and "rows converted to USD " in captured.out
    assert "not counted: excluded_type " in captured.out  # the sample's test orders
    assert "stage aggregate and cut points done in" in caplog.text
    periods = {
        r["period"]
        for r in DeltaTable(str(out / "customer_segments"))
        .to_pyarrow_table(columns=["period"])
        .to_pylist()
    }
    assert periods == {"2024-02", "2024-03", "2024-Q1", "2024"}

    # The same run again, its summary as JSON for an orchestrator: skipped, nothing written.
    again = main(
        [
            *sample_run(small_lake, out),
            *("--config", local, "--from", "2024-02", "--to", "2024-03", "--summary", "json"),
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert again == 0 and summary["status"] == "skipped"
    assert summary["tables"]["customer_segments"] == str(out / "customer_segments")
    assert set(summary["table_versions"]) >= {"customer_segments", "tier_boundaries"}


def test_a_first_contact_typo_is_one_line_before_any_jvm(tmp_path: Path) -> None:
    """A source path that is not there: revseg's line, exit 2, no Java (no JVM started)."""
    out = f"output.path={tmp_path / 'out'}"
    done = subprocess.run(
        [sys.executable, "-m", "revseg", "run", "--set", "source.path=/my/lake", "--set", out],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "revseg: error: source.path '/my/lake' does not exist"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2024-13"], "--from: '2024-13' is not a month in the form YYYY-MM"),
        (["--from", "2024-05", "--to", "2024-01"], "--to 2024-01 is before --from 2024-05"),
        (["--set", "tiers.accuracy=0"], "config key 'tiers.accuracy': must be at least 1"),
        (["--set", "source.columns.amount=price"], "required column 'amount' not found"),
        (["--set", "source.path=/nonexistent/lake"], "source.path '/nonexistent/lake' does not"),
    ],
)
def test_errors_are_one_line_with_exit_code(
    small_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code = main(
        [
            "run",
            "--set",
            f"source.path={small_lake}",
            "--set",
            f"output.path={tmp_path / 'out'}",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("revseg: error:")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err


def test_python_dash_m_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "revseg", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    for flag in ("--config", "--from", "--to", "--set"):
        assert flag in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "revseg", "run", "--config", "/no/such.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "revseg: error: config file /no/such.yaml does not exist"


def test_a_concurrent_write_exits_75_so_a_scheduler_can_retry_it(
    small_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another run commits the same periods at the same moment (Delta's conflict, as the
    writer reports it): not a bad config (2) but work to retry as it is (75)."""

    def conflict(*args: Any, **kwargs: Any) -> None:
        raise ConcurrentWriteError(
            "another run committed to customer_segments for period(s) 2024 at the same "
            "time; nothing of this run was written there. Retry the run."
        )

    monkeypatch.setattr("revseg.io.outputs.replace_periods", conflict)
    out = tmp_path / "out"
    code = main(sample_run(small_lake, out))
    err = capsys.readouterr().err
    assert code == 75, err
    error_lines = [line for line in err.splitlines() if line.startswith("revseg: error:")]
    assert len(error_lines) == 1 and "Retry the run" in error_lines[0], err
    (run,) = DeltaTable(str(out / "runs")).to_pyarrow_table().to_pylist()
    assert run["status"] == "failed" and "ConcurrentWriteError" in run["error"]


def sample_run(lake: Path, out: Path) -> list[str]:
    """`revseg run` over the small sample lake and its FX table, into `out`."""
    return [
        "run",
        "--set",
        f"source.path={lake}",
        "--set",
        f"output.path={out}",
        "--set",
        f"revenue.fx_rates.path={lake.parent / 'fx_rates'}",
    ]
