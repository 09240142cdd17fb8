"""`revseg report` in a real browser: Debian's chromium, headless, opens the page; it must
not be blank, every image must have loaded, the console must stay free of errors, and
the numbers on the page must be those the tables hold (read back with delta-rs)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from revseg import contract
from revseg.cli import main
from revseg.pipeline import run_segmentation
from tests.lakes import config_for, read_delta

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IMAGES = {
    "revenue-share",
    "tier-sizes",
    "concentration",
    "migrations",
    "clv-tracking",
    "clv-frequency",
}


def browser() -> str:
    """Debian's chromium: CI installs it (`.ci/run`); elsewhere the test is skipped."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def report(spark: SparkSession, lake: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Segments by month and a CLV run on the sample lake, and the report of them."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("scipy")
    from revseg.clv_pipeline import run_clv

    root = tmp_path_factory.mktemp("report")
    out = root / "out"
    config = config_for(
        lake, out, "periods.grains=[month, quarter]", "insights.tier_migrations=true"
    )
    run_segmentation(spark, config)
    run_clv(spark, config, date(2024, 4, 30), date(2024, 6, 30))  # a holdout: its plots
    sets = ["--set", f"source.path={lake}", "--set", f"output.path={out}"]
    sets += ["--set", "periods.grains=[month, quarter]", "--set", "insights.tier_migrations=true"]
    assert main(["report", *sets, "--out", str(root / "page")]) == 0
    return out, root / "page" / "report.html"


def test_the_report_in_a_browser(report: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out, page_path = report
    errors: list[str] = []
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=browser(), args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth])"
        )
        text = page.inner_text("body")
        cells = page.evaluate(
            """Array.from(document.querySelectorAll('table[id]')).map(t => [t.id,
            Array.from(t.querySelectorAll('tr')).slice(1).map(r =>
              Array.from(r.cells).map(c => [c.dataset.name || null, c.dataset.value ?? null,
                c.innerText]))])"""
        )
        chromium.close()
    assert errors == []
    assert len(text) > 500 and "Tier boundaries" in text
    assert {name for name, _, _ in images} >= IMAGES
    assert all(done and width > 0 for _, done, width in images), images
    # a blank page is one colour: the screenshot of this one has plots in many
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.height > 2000
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50
    tables = {name: rows for name, rows in cells}
    check_boundaries(out, tables["boundaries-table"])
    check_concentration(out, tables["concentration-table"])
    check_migrations(out, tables["migrations-table"])
    check_models(out, tables["clv-models-table"])


def values(row: list[list[Any]]) -> dict[str, tuple[str, str]]:
    """A table row's numbers: name -> (exact value, shown text)."""
    return {name: (value, shown) for name, value, shown in row if name is not None}


def check_boundaries(out: Path, rows: list[list[Any]]) -> None:
    stored = [r for r in read_delta(out / contract.TIER_BOUNDARIES) if r["period_grain"] == "month"]
    latest = max(r["period"] for r in stored)
    want = {r["segment"]: r for r in stored if r["period"] == latest}
    assert len(rows) == len(want)
    for row in rows:
        segment, found = row[0][2], values(row)
        table = want[segment]
        assert found["customers"] == (str(table["customers"]), f"{table['customers']:,}")
        assert found["revenue"] == (str(table["revenue"]), f"{table['revenue']:,.2f}")
        assert float(found["revenue_share"][0]) == table["revenue_share"]


def check_concentration(out: Path, rows: list[list[Any]]) -> None:
    stored = [r for r in read_delta(out / contract.CONCENTRATION) if r["period_grain"] == "month"]
    latest = max(stored, key=lambda r: r["period"])
    (row,) = rows
    found = values(row)
    assert int(found["customers"][0]) == latest["customers"]
    assert float(found["gini"][0]) == latest["gini"]
    assert found["gini"][1] == f"{latest['gini']:.4f}"
    assert float(found["top_1pct_share"][0]) == latest["top_1pct_share"]


def check_migrations(out: Path, rows: list[list[Any]]) -> None:
    stored = [r for r in read_delta(out / contract.TIER_MIGRATIONS) if r["period_grain"] == "month"]
    last = max(r["to_period"] for r in stored)
    want = Counter(
        {
            (r["from_segment"], r["to_segment"]): r["customers"]
            for r in stored
            if r["to_period"] == last
        }
    )
    got = Counter()
    for row in rows:
        source, target = row[0][2].split(" → ")
        got[(source, target)] = int(values(row)["customers"][0])
    assert got == want


def check_models(out: Path, rows: list[list[Any]]) -> None:
    stored = read_delta(out / contract.CLV_MODELS)
    latest = max(r["calibration_end"] for r in stored)
    want = {
        (r["model"], name): value
        for r in stored
        if r["calibration_end"] == latest
        for name, value in dict(r["parameters"]).items()
    }
    got = {(row[0][2], row[1][2]): float(values(row)["parameter"][0]) for row in rows}
    assert got == want
