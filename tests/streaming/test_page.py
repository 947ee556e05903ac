"""The page `speechrnn export --format web` builds, in a real headless Chromium, against `speechrnn stream`.

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and the
page's runtime (make web). Without them the test skips, except under CI=true, where it fails.
"""

import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from test_export import write_stream

from benchmarks.chromium import chromium, missing, run_file, serve, wait_for_state
from speechrnn.cli import main


@pytest.fixture
def site(request, tmp_path):
    """The page for the tone spotter; skips (fails under CI=true) where Chromium or the runtime is absent."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the page's test: {reason}")
        pytest.skip(reason)
    checkpoint = request.getfixturevalue("checkpoint")  # trained only where the test runs
    main(["export", str(checkpoint), "--format", "web", "--out", str(tmp_path / "site")])
    return tmp_path / "site"


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


def test_the_page_finds_what_stream_finds_in_a_file(site, checkpoint, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    write_float_stream(tmp_path / "tones.wav")
    expected, posteriors = stream_posteriors(capsys, checkpoint, tmp_path / "tones.wav", tmp_path / "post.jsonl")
    with serve(site) as url, chromium(tmp_path / "profile") as browser:
        run = run_file(browser, url, tmp_path / "tones.wav")
        listed = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#detections li")]
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert fetched and all(name.startswith(url) for name in fetched)  # nothing from outside the served folder
    assert len(run["posteriors"]) == len(posteriors)
    assert max(abs(a - b) for ours, theirs in zip(run["posteriors"], posteriors) for a, b in zip(ours, theirs)) < 1e-3
    assert [d["label"] for d in run["detections"]] == [d["label"] for d in expected] == ["0", "1", "2"]
    hop_s = 1 / 100
    for ours, theirs in zip(run["detections"], expected):
        assert all(abs(ours[key] - theirs[key]) <= hop_s + 1e-6 for key in ("start_s", "end_s", "fired_s"))
    assert [line.split()[0] for line in listed] == ["0", "1", "2"]  # shown on the page, in order


def test_the_page_listens_to_a_microphone(site, tmp_path):
    from selenium.webdriver.common.by import By

    write_stream(tmp_path / "tones.wav")
    with serve(site) as url, chromium(tmp_path / "profile", microphone=tmp_path / "tones.wav") as browser:
        browser.get(url)
        wait_for_state(browser, "ready")
        browser.find_element(By.ID, "listen").click()
        wait_for_state(browser, "running")
        browser.execute_script("return new Promise((done) => setTimeout(done, 4000))")  # more than the 3 s file
        browser.find_element(By.ID, "stop").click()
        wait_for_state(browser, "done")
        run = browser.execute_script("return window.lastRun")
    assert run["audio_s"] > 2 and len(run["posteriors"]) > 200
    assert {d["label"] for d in run["detections"]} >= {"0", "1", "2"}  # each tone heard at least once
