"""The HTML outputs in a real browser: headless Chromium, driven through ChromeDriver.

Screenshots are kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import shutil
import tempfile

import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from .conftest import REPO
from .test_export import exported  # noqa: F401 - the module fixture

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("Chromium is missing: 'make test' installs it (scripts/ensure-chromium.sh)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_practice_list_renders_and_activity_expands(exported, browser):  # noqa: F811
    work, _ = exported
    ARTIFACTS.mkdir(exist_ok=True)
    page = sorted((work / "direct_care" / "current").glob("*.html"))[0]
    browser.get(page.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#risk-list tbody tr")
    assert len(rows) > 100
    first = rows[0]
    assert "%" in first.find_elements(By.TAG_NAME, "td")[2].text
    details = next(
        d
        for d in browser.find_elements(By.CSS_SELECTOR, "details")
        if d.find_element(By.TAG_NAME, "summary").text.split()[0] != "0"
    )
    assert details.get_attribute("open") is None
    assert not details.find_element(By.CSS_SELECTOR, ".activity").is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None
    activity = details.find_element(By.CSS_SELECTOR, ".activity")
    assert activity.is_displayed() and "provider" in activity.text
    browser.save_screenshot(str(ARTIFACTS / "practice_list.png"))
    browser.find_element(By.ID, "show-activity").click()
    assert all(d.get_attribute("open") is not None for d in browser.find_elements(By.CSS_SELECTOR, "details"))


def test_commissioner_report_renders_with_charts(exported, browser):  # noqa: F811
    work, _ = exported
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get((work / "commissioner" / "current" / "report.html").as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    figures = browser.find_elements(By.TAG_NAME, "figure")
    assert len(figures) == 6  # the pyramid and five percentage charts: drawn, or said in words
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 100 for img in images)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Counts of 1 to 7 people are redacted (*)" in body and "disclosure_log.csv" in body
    # every withheld percentage is named as suppressed under its chart, never drawn as zero
    agg = pd.read_csv(work / "commissioner" / "current" / "aggregates.csv", dtype=str)
    hidden = agg[(agg["measure"] == "percent_at_risk") & (agg["published"] == "*") & (agg["value"] != "Total")]
    assert len(hidden)  # the small test population has some
    captions = {f.find_element(By.TAG_NAME, "figcaption").text for f in figures}
    titles = {"practice_code": "practice", "pcn_code": "PCN", "age_band": "age band", "sex": "sex"}
    titles["imd_quintile"] = "IMD quintile (1 = most deprived)"
    for dim, rows in hidden.groupby("dimension"):
        caption = next(c for c in captions if c.startswith(f"Percentage at risk by {titles[dim]}."))
        assert "Suppressed: " in caption and all(v in caption for v in rows["value"]), (dim, caption)
    browser.save_screenshot(str(ARTIFACTS / "commissioner_report.png"))
