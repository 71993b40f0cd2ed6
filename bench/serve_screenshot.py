"""The screenshot of `xformer serve`'s page for the README (docs/serve-page.png), taken in headless
Chromium with the shipped model.

    python bench/serve_screenshot.py [--model models/de-en-general] [--out docs/serve-page.png]

Needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Ein Mann mit einem roten Hut fährt mit dem Fahrrad durch die Stadt. Zwei Kinder spielen im Park."


def main() -> None:
    from xformer_cli.shipped import default_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--out", default=str(ROOT / "docs" / "serve-page.png"))
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "xformer_cli", "serve", "-m", args.model, "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,620", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = None
    try:
        for _ in range(300):
            try:
                httpx.get(url + "health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        driver.find_element(By.ID, "source").send_keys(TEXT)
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "output").text.strip())
        driver.save_screenshot(args.out)
        print(f"saved {args.out}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
