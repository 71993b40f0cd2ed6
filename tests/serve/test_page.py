"""The page at / in a real browser: Debian's headless Chromium driven by Selenium types German into
the page of a running `xformer serve` and reads the English back; it must be the translator's own.

Skipped where Chromium or its driver is not installed (.ci/run installs both)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_typing_german_shows_the_english(browser, live_url, reference):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_url + "/")
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert browser.find_element(By.ID, "pair").text == "de → en"
    assert not browser.find_element(By.ID, "model").is_displayed()  # one model: no picker
    text = "Wir sind verärgert."
    browser.find_element(By.ID, "source").send_keys(text)
    expected = reference.translate([text])[0]
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "output").text == expected)
    browser.find_element(By.ID, "source").send_keys(" Zieh mich hoch!")  # typing on: the newer text wins
    expected = reference.translate([text + " Zieh mich hoch!"])[0]
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "output").text == expected)
    assert browser.find_element(By.ID, "status").text == ""
