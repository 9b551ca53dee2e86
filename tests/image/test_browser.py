"""A real browser (Debian's headless Chromium via selenium) opens JupyterLab with and without the token."""

from __future__ import annotations

import tempfile

import pytest

from tests.conftest import require_tool

from .conftest import REPORTS

pytestmark = pytest.mark.image

# Flags that make Debian's chromium run headless as root without a desktop (../shared/ENVIRONMENT.md).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1280,800"]  # fmt: skip


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="kw-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(require_tool("chromedriver")), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def test_lab_with_token_shows_the_launcher(jupyter, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    server, _ = jupyter
    browser.get(f"{server.base}/lab?token={server.token}")
    launcher = WebDriverWait(browser, 120).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".jp-Launcher"))
    )
    assert "Notebook" in launcher.text, launcher.text
    REPORTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(REPORTS / "jupyterlab-launcher.png"))


def test_lab_without_token_gets_the_login_page(jupyter, browser) -> None:
    from selenium.webdriver.common.by import By

    server, _ = jupyter
    browser.get(f"{server.base}/lab")
    assert "/login" in browser.current_url
    assert browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
    assert not browser.find_elements(By.CSS_SELECTOR, ".jp-Launcher")
    browser.save_screenshot(str(REPORTS / "jupyterlab-login.png"))
