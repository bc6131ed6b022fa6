"""The README's two console screenshots, taken from a running `crmwatch serve` of the demo.

    make demo && .venv/bin/crmwatch serve --db demo-out/crmwatch.duckdb &
    .venv/bin/python scripts/readme-screenshots.py [--base http://127.0.0.1:8765]

Writes docs/img/console-incidents.png and docs/img/console-incident.png (the incident with
the most affected customers), 1400×900, in Debian's headless Chromium.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="http://127.0.0.1:8765")
    ap.add_argument("--password-file", type=Path, default=ROOT / "demo-out/console-password.txt")
    args = ap.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                "--disable-background-networking", "--disable-component-update",
                f"--user-data-dir={tempfile.mkdtemp()}"):  # fmt: skip
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        d.get(args.base + "/login")
        d.find_element(By.NAME, "name").send_keys("demo")
        d.find_element(By.NAME, "password").send_keys(args.password_file.read_text().strip())
        d.find_element(By.CSS_SELECTOR, "form.login button").click()
        WebDriverWait(d, 10).until(ec.url_to_be(args.base + "/incidents"))
        out = ROOT / "docs" / "img"
        out.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(out / "console-incidents.png"))
        rows = d.find_elements(By.CSS_SELECTOR, "#incidents tbody tr[data-incident]")
        counts = {r.get_attribute("data-incident"): r.find_element(By.CSS_SELECTOR, ".affected")
                  .text.replace(",", "") for r in rows}  # fmt: skip
        biggest = max(counts, key=lambda k: int(counts[k]) if counts[k].isdigit() else -1)
        d.get(f"{args.base}/incidents/{biggest}")
        d.save_screenshot(str(out / "console-incident.png"))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
