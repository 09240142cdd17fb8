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


AZURE = "https://a.blob.core.windows.net/c"
AWS = "https://b.s3.amazonaws.com/k"
CONNECTION = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey={};EndpointSuffix=x"
AZURE_KEY = "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net={}"
# Secret forms each cloud store uses, and what must remain of them.
LEAKS = {
    f"{AZURE}?access_token=SECRET": f"{AZURE}?access_token=***",
    CONNECTION.format("SECRET"): CONNECTION.format("***"),
    "https://x/y?api_key=SECRET&page=2": "https://x/y?api_key=***&page=2",
    "s3a://AKIA:ab/SECRET@bucket/x": "s3a://***@bucket/x",
    "oauth client_secret=SECRET failed": "oauth client_secret=*** failed",
    "BlobEndpoint=https://a;SharedAccessSignature=SECRET": (
        "BlobEndpoint=https://a;SharedAccessSignature=***"
    ),
    f"{AWS}?X-Amz-Credential=AKIA/SECRET&X-Amz-Signature=SECRET&X-Amz-Date=1": (
        f"{AWS}?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=1"
    ),
    AZURE_KEY.format("SECRET"): AZURE_KEY.format("***"),
    "fs.s3a.secret.key=SECRET": "fs.s3a.secret.key=***",
}


@pytest.mark.parametrize("text", sorted(LEAKS))
def test_no_form_of_credential_survives_redaction(text: str) -> None:
    from revseg.io.paths import redact

    assert redact(text) == LEAKS[text]
    assert "SECRET" not in redact(f"error: cannot read {text} (retry)")


def test_redaction_leaves_paths_and_settings_without_secrets() -> None:
    from revseg.io.paths import redact

    for text in (
        "abfss://c@acct.dfs.core.windows.net/a/b@c/x",  # container@account is no secret
        "source.path=/x/y output.path=/z monkey=1",
        "dbfs:/mnt/lake/date=2024-01-01/part-0.parquet",
    ):
        assert redact(text) == text


def test_log_records_are_redacted_with_their_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    from revseg.io.paths import redacting_logger

    logger = redacting_logger("revseg.test_paths")
    with caplog.at_level("INFO", logger="revseg.test_paths"):
        logger.info("reading %s", "s3a://AKIA:SECRET@b/x")
        try:
            raise OSError("403 on https://a/b?sig=SECRET")
        except OSError:
            logger.warning("could not log", exc_info=True)
    assert "SECRET" not in caplog.text, caplog.text
    assert "s3a://***@b/x" in caplog.text
    assert "OSError: 403 on https://a/b?sig=***" in caplog.text


def test_credentials_are_taken_out_of_paths_and_errors() -> None:
    from revseg.io.paths import redact

    assert redact("s3a://AKIAXYZ:s3cr3t@bucket/lake") == "s3a://***@bucket/lake"
    message = "cannot read abfss://c@acct.dfs.core.windows.net/x?sv=1&sig=abc%2F&se=2"
    assert redact(message) == "cannot read abfss://c@acct.dfs.core.windows.net/x?sv=1&sig=***&se=2"
    assert redact("/data/lake/transactions") == "/data/lake/transactions"
