"""The exported page in a real headless Chromium: serve a folder on 127.0.0.1, open it, feed it a file.

Uses Debian's ``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``)
through Selenium; :func:`missing` says what is absent. Shared by the page's test and
``benchmarks.graph_rtf``.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speechrnn.errors import SpeechRNNError
from speechrnn.streaming.web import runtime_folder

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]
LOAD_S = 60  # the page's longest wait: wasm compilation on a busy shared CPU


def missing() -> str | None:
    """What the page needs that is not installed, with how to install it; None when all is there."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "needs Chromium and its driver: apt-get install chromium chromium-driver"
    try:
        runtime_folder()
    except SpeechRNNError as err:
        return str(err)
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """The URL of ``folder`` on 127.0.0.1, served as ``python -m http.server`` serves it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(profile: Path, microphone: Path | None = None) -> Iterator:
    """A headless Chromium with a fresh profile; ``microphone``: a WAV its fake microphone plays."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if microphone is not None:
        options.add_argument(f"--use-file-for-fake-audio-capture={microphone}")
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield browser
    finally:
        browser.quit()


def wait_for_state(browser, state: str, timeout_s: float = LOAD_S) -> None:
    """Wait until the page says ``state`` (``document.body.dataset.state``); its error if it fails."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout_s).until(
        lambda b: b.execute_script("return document.body.dataset.state") in (state, "error"))
    if browser.execute_script("return document.body.dataset.state") != state:
        raise RuntimeError(f"the page failed: {browser.execute_script('return window.lastError')}")


def run_file(browser, url: str, audio: Path) -> dict:
    """Open the page, pick ``audio`` as its file and wait for the run: ``window.lastRun``."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    wait_for_state(browser, "ready")
    browser.find_element(By.ID, "file").send_keys(str(audio))
    wait_for_state(browser, "done")
    return browser.execute_script("return window.lastRun")
