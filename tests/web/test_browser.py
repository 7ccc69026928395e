"""The web page in a real browser (Debian's headless chromium driven by Selenium): search and see
thumbnails, a restricted region's disclaimer tiles, a withheld thumbnail refused, an upload found.

`make test` installs chromium and chromium-driver with apt when they are missing; elsewhere the
test skips and says why. Set WITHSENSE_SCREENSHOTS=DIR to keep the screenshots (docs/img does).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from withsense.config.gateway import DISCLAIMER
from withsense.store import point_id_for

from tests.web.conftest import start_indexed_gateway

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 60


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in [CHROMIUM, CHROMEDRIVER]:
        if not Path(path).exists():
            return f"{path} is missing: apt-get install -y chromium chromium-driver (make test does)"
    return None


@pytest.fixture(scope="module")
def site(background_loop, worker_server, gallery_photos, tmp_path_factory):
    """Base URL of a gateway of its own (the test uploads), restricted in DE and FR."""
    gateway = start_indexed_gateway(background_loop, worker_server,
                                    tmp_path_factory.mktemp("browser") / "data", gallery_photos)
    yield gateway.http_url
    background_loop.run(gateway.stop(0.5))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("WITHSENSE_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver, condition, message: str):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page re-renders the results: an element read mid-render is simply read again.
    return WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message)


def tiles(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#results > li")


def loaded_thumbnails(driver) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll('#results img')]"
        ".filter(img => img.complete && img.naturalWidth > 0).length")


def status(driver) -> str:
    return driver.execute_script("return document.getElementById('status').textContent")


def fetch_status(driver, url: str) -> int:
    """The HTTP status of a GET made by the page itself (same origin, same cookies/headers)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => done(r.status), e => done(-1));", url)


def test_search_with_pictures_restricted_region_withheld_thumbnail_and_upload(
        browser, site, shots, gallery_photos, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    # 1. A shared URL opens a search; the tiles show thumbnails, probabilities, the uri.
    browser.get(f"{site}/?q=a+cup+of+coffee+on+a+table&region=US&k=8")
    wait(browser, lambda d: len(tiles(d)) == 8 and loaded_thumbnails(d) == 8, "8 thumbnails shown")
    first = tiles(browser)[0]
    assert first.find_element(By.CSS_SELECTOR, ".uri").text == "coffee.jpg"
    assert 0 < float(first.find_element(By.CSS_SELECTOR, ".num").text) <= 1
    wait(browser, lambda d: "14 photos" in d.find_element(By.ID, "stats").text, "stats shown")
    browser.save_screenshot(str(shots / "search.png"))

    # 2. Keyboard only: the search box has focus; type, Enter; then pick a restricted region.
    query = browser.switch_to.active_element
    assert query.get_attribute("id") == "q"
    query.send_keys(Keys.CONTROL, "a")
    query.send_keys("a cat", Keys.ENTER)
    wait(browser, lambda d: tiles(d) and tiles(d)[0].find_elements(By.CSS_SELECTOR, "img")
         and tiles(d)[0].find_element(By.CSS_SELECTOR, ".uri").text == "chelsea.jpg", "the cat")
    Select(browser.find_element(By.ID, "region")).select_by_value("DE")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results > li.withheld"), "withheld tile")
    withheld = browser.find_element(By.CSS_SELECTOR, "#results > li.withheld")
    assert withheld.find_element(By.CSS_SELECTOR, ".disclaimer").text == DISCLAIMER
    assert not withheld.find_elements(By.CSS_SELECTOR, "img")
    assert "region=DE" in browser.current_url and "q=a+cat" in browser.current_url
    assert "withheld in DE" in status(browser)
    browser.save_screenshot(str(shots / "restricted.png"))

    # 3. The withheld photo's thumbnail, asked for directly, is refused; elsewhere it is served.
    camera = f"/v1/images/{point_id_for(gallery_photos['camera'])}/thumbnail"  # flagged
    assert fetch_status(browser, f"{camera}?region=DE") == 403
    assert fetch_status(browser, camera) == 403
    assert fetch_status(browser, f"{camera}?region=US") == 200
    browser.get(f"{site}{camera}?region=DE")
    assert "PERMISSION_DENIED" in browser.find_element(By.TAG_NAME, "body").text

    # 4. A blocked query shows the disclaimer and the reason.
    browser.get(f"{site}/?q=a+little+girl+playing+in+the+park&region=DE")
    wait(browser, lambda d: d.find_element(By.ID, "blocked").is_displayed(), "blocked banner")
    assert DISCLAIMER in browser.find_element(By.ID, "blocked").text
    assert "blocked by" in browser.find_element(By.ID, "blocked-reason").text
    assert not tiles(browser)
    browser.save_screenshot(str(shots / "blocked.png"))

    # 5. Upload a photo with a description; search finds it with its thumbnail.
    photo = tmp_path / "latte.jpg"
    buffer = io.BytesIO()
    Image.open(io.BytesIO(gallery_photos["coffee"])).save(buffer, format="JPEG", quality=80)
    photo.write_bytes(buffer.getvalue())
    browser.get(f"{site}/?region=US")
    browser.find_element(By.ID, "photos").send_keys(str(photo))
    browser.find_element(By.ID, "description").send_keys("Latte art in a white cup")
    browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    wait(browser, lambda d: "Indexed 1" in d.find_element(By.ID, "upload-status").text, "upload done")
    wait(browser, lambda d: "15 photos" in d.find_element(By.ID, "stats").text, "stats updated")
    browser.execute_script("document.getElementById('upload').scrollIntoView({block: 'center'})")
    browser.save_screenshot(str(shots / "upload-form.png"))
    box = browser.find_element(By.ID, "q")
    box.send_keys("a cup of coffee", Keys.ENTER)
    wait(browser, lambda d: len(tiles(d)) >= 2 and loaded_thumbnails(d) == len(tiles(d)), "results")
    top_two = [tile.find_element(By.CSS_SELECTOR, ".uri").text for tile in tiles(browser)[:2]]
    assert "latte.jpg" in top_two, top_two

    # 6. A phone-sized screen: two columns, nothing wider than the screen.
    browser.set_window_size(390, 844)
    browser.get(f"{site}/?q=a+cat&region=FR&k=6")
    wait(browser, lambda d: len(tiles(d)) == 6 and d.find_elements(By.CSS_SELECTOR, "li.withheld"),
         "phone results")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.save_screenshot(str(shots / "phone.png"))
    browser.set_window_size(1280, 1000)

    # 7. Fields the API adds to a hit later (the evidence a probability rests on) are shown as
    # they come: the page renders whatever shape `evidence` has.
    browser.execute_script("""render({hits: [{imageId: "x", uri: "beach.jpg", score: 0.8,
        withheld: false, evidence: [{source: "photo", probability: 0.7},
                                    {source: "description", text: "Two dogs on a beach"}]}],
        blocked: false}, "dogs", "US");""")
    evidence = browser.find_element(By.CSS_SELECTOR, "#results .evidence").text
    assert "photo" in evidence and "0.70" in evidence and "Two dogs on a beach" in evidence

