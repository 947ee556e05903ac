"""The page `speechrnn export --format web` builds, in a real headless Chromium, against `speechrnn stream`.

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and the
page's runtime (make web). Without them the test skips, except under CI=true, where it fails.
"""

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import soundfile as sf
from test_export import write_stream

from speechrnn.cli import main
from speechrnn.errors import SpeechRNNError
from speechrnn.streaming.web import runtime_folder

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]
LOAD_S = 60  # wasm compilation on a busy shared CPU


def missing_tools() -> str | None:
    if CHROMIUM is None or DRIVER is None:
        return "needs Chromium and its driver: apt-get install chromium chromium-driver"
    try:
        runtime_folder()
    except SpeechRNNError as err:
        return str(err)
    return None


@pytest.fixture
def browser_ready():
    reason = missing_tools()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the page's test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def served(tmp_path):
    """``served(folder)``: the URL of ``folder`` on 127.0.0.1, as ``python -m http.server`` serves it."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def chromium(profile: Path, audio: Path | None = None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if audio is not None:
        options.add_argument(f"--use-file-for-fake-audio-capture={audio}")
    return webdriver.Chrome(options=options, service=Service(DRIVER))


def wait_for_state(browser, state: str, timeout_s: float) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout_s).until(
        lambda b: b.execute_script("return document.body.dataset.state") in (state, "error"))
    assert browser.execute_script("return document.body.dataset.state") == state, \
        browser.execute_script("return window.lastError")


def write_float_stream(path: Path) -> None:
    """The test stream as 32-bit float samples: Chromium decodes 16-bit PCM at a scale 1.5e-5 away from soundfile's."""
    write_stream(path)
    wave, sample_rate = sf.read(path, dtype="float32")
    sf.write(path, wave, sample_rate, subtype="FLOAT")


def stream_posteriors(capsys, checkpoint, wav: Path, out: Path) -> tuple[list[dict], list[list[float]]]:
    capsys.readouterr()
    main(["stream", str(checkpoint), str(wav), "--posteriors", str(out)])
    detections = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return detections, [list(json.loads(line)["posteriors"].values()) for line in out.read_text().splitlines()]


def test_the_page_finds_what_stream_finds_in_a_file(browser_ready, checkpoint, served, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    main(["export", str(checkpoint), "--format", "web", "--out", str(tmp_path / "site")])
    write_float_stream(tmp_path / "tones.wav")
    expected, posteriors = stream_posteriors(capsys, checkpoint, tmp_path / "tones.wav", tmp_path / "post.jsonl")
    browser = chromium(tmp_path / "profile")
    try:
        browser.get(served(tmp_path / "site"))
        wait_for_state(browser, "ready", LOAD_S)
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "tones.wav"))
        wait_for_state(browser, "done", LOAD_S)
        run = browser.execute_script("return window.lastRun")
        listed = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#detections li")]
    finally:
        browser.quit()
    assert len(run["posteriors"]) == len(posteriors)
    assert max(abs(a - b) for ours, theirs in zip(run["posteriors"], posteriors) for a, b in zip(ours, theirs)) < 1e-3
    assert [d["label"] for d in run["detections"]] == [d["label"] for d in expected] == ["0", "1", "2"]
    hop_s = 1 / 100
    for ours, theirs in zip(run["detections"], expected):
        assert all(abs(ours[key] - theirs[key]) <= hop_s + 1e-6 for key in ("start_s", "end_s", "fired_s"))
    assert [line.split()[0] for line in listed] == ["0", "1", "2"]  # shown on the page, in order


def test_the_page_listens_to_a_microphone(browser_ready, checkpoint, served, tmp_path):
    from selenium.webdriver.common.by import By

    main(["export", str(checkpoint), "--format", "web", "--out", str(tmp_path / "site")])
    write_stream(tmp_path / "tones.wav")
    browser = chromium(tmp_path / "profile", audio=tmp_path / "tones.wav")  # the fake microphone plays it
    try:
        browser.get(served(tmp_path / "site"))
        wait_for_state(browser, "ready", LOAD_S)
        browser.find_element(By.ID, "listen").click()
        wait_for_state(browser, "running", LOAD_S)
        browser.execute_script("return new Promise((done) => setTimeout(done, 4000))")  # more than the 3 s file
        browser.find_element(By.ID, "stop").click()
        wait_for_state(browser, "done", LOAD_S)
        run = browser.execute_script("return window.lastRun")
    finally:
        browser.quit()
    assert run["audio_s"] > 2 and len(run["posteriors"]) > 200
    assert {d["label"] for d in run["detections"]} >= {"0", "1", "2"}  # each tone heard at least once
