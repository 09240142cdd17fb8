"""Save a screenshot of a report page (headless Debian chromium): the README's image.

python scripts/screenshot_report.py data/report/report.html docs/images/report.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the report.html to open")
    parser.add_argument("image", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500, help="the part of the page shown")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.page.resolve().as_uri())
        page.wait_for_load_state("load")
        args.image.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.image))
        browser.close()
    print(f"wrote {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
