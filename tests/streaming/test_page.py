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
from test_streaming import model, speechlike

from benchmarks.chromium import chromium, missing, run_file, serve, wait_for_state
from speechrnn.cli import main
from speechrnn.data.features import FeatureSettings
from speechrnn.streaming.export import OnnxAudioGraph
from speechrnn.streaming.graph import AudioGraph
from speechrnn.streaming.web import build_site


def require_browser() -> None:
    """Skip where Chromium or the page's runtime is absent, saying how to install it; under CI=true, fail."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the page's test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def site(request, tmp_path):
    """The page for the tone spotter."""
    require_browser()
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


def test_the_page_runs_a_two_layer_min_gru_with_deltas_and_causal_normalisation(tmp_path):
    """The ops the tone GRU does not use (the closed-form scan, deltas, two layers) also run in the browser."""
    require_browser()
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=True)
    classifier = model("mingru", settings, hidden_size=8, num_layers=2, normalisation="causal")
    site = build_site(AudioGraph(classifier.streaming_step().eval(), settings).eval(), tmp_path / "site")
    wave = speechlike(2.0, seed=3).numpy()
    sf.write(tmp_path / "wave.wav", wave, settings.sample_rate, subtype="FLOAT")
    native = OnnxAudioGraph(site / "model.onnx").stream([wave[i : i + 800] for i in range(0, len(wave), 800)])
    with serve(site) as url, chromium(tmp_path / "profile") as browser:
        run = run_file(browser, url, tmp_path / "wave.wav")
    assert len(run["posteriors"]) == len(native)
    assert max(abs(a - b) for ours, theirs in zip(run["posteriors"], native) for a, b in zip(ours, theirs)) < 1e-4
