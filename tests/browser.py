"""Debian's chromium driven by Selenium through Debian's chromedriver (no browser download)."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def chromium() -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists() and not shutil.which(p.name)]
    assert not missing, f"install Debian's chromium and chromium-driver (missing {missing}); scripts/test.sh does"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def open_page(driver: WebDriver, url: str, *expected: str, timeout_s: float = 60) -> str:
    """Load `url` and wait until its text shows every string in `expected` (reloading meanwhile,
    since the UI polls and a state may take a moment to arrive); the page's text."""
    driver.get(url)

    def shows_all(d: WebDriver) -> bool:
        for button in d.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()  # Dagster's first-visit newsletter dialog
        return all(text in page_text(d) for text in expected)

    try:
        WebDriverWait(driver, timeout_s / 2, poll_frequency=1).until(shows_all)
    except Exception:  # noqa: BLE001 - one reload, then fail with what the page shows
        driver.refresh()
        WebDriverWait(driver, timeout_s / 2, poll_frequency=1).until(
            shows_all, f"{url} never showed {expected}; it shows:\n{page_text(driver)[:3000]}"
        )
    return page_text(driver)


def click_button(driver: WebDriver, label: str) -> None:
    driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()


def switch_is_on(driver: WebDriver, name: str) -> bool:
    """The on/off switch in the automation list's row for `name` (the row's last checkbox)."""
    row = driver.find_element(By.XPATH, f"//*[normalize-space(text())='{name}']/ancestor::*[.//input[@type='checkbox']][1]")
    return row.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")[-1].is_selected()
