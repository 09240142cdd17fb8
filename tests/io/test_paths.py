"""Storage paths (`revseg.io.paths`): URIs pass through, local paths become absolute, and
credentials are taken out of text. Plain Python: no Spark session here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from revseg.io.paths import join, qualify


def test_local_paths_become_absolute_and_uris_pass_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    here = os.getcwd()
    assert qualify("data/lake") == os.path.join(here, "data", "lake")
    assert qualify("./data/../lake") == os.path.join(here, "lake")
    assert qualify("/data/lake") == "/data/lake"
    for uri in (
        "s3a://b/x",
        "dbfs:/x",
        "file:/tmp/x",
        "abfss://c@acct.dfs.core.windows.net/x",
        "gs://b/x/",
    ):
        assert qualify(uri) == uri
    assert join("s3a://b/x/", "runs") == "s3a://b/x/runs"  # a trailing slash is not doubled
    assert join("s3a://b/x", "runs") == "s3a://b/x/runs"
    assert join("dbfs:/x/", "runs") == "dbfs:/x/runs"
    assert join("/data/out/", "runs") == "/data/out/runs"
    assert join("out/", "runs") == os.path.join(here, "out", "runs")  # made absolute too


def test_credentials_are_taken_out_of_paths_and_errors() -> None:
    from revseg.io.paths import redact

    assert redact("s3a://AKIAXYZ:s3cr3t@bucket/lake") == "s3a://***@bucket/lake"
    message = "cannot read abfss://c@acct.dfs.core.windows.net/x?sv=1&sig=abc%2F&se=2"
    assert redact(message) == "cannot read abfss://c@acct.dfs.core.windows.net/x?sv=1&sig=***&se=2"
    assert redact("/data/lake/transactions") == "/data/lake/transactions"
