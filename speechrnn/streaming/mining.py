"""Hard negatives: where a trained spotter fires on keyword-free training audio, as background windows.

A spotter's false alarms come from the few sounds it confuses with a keyword; random background
windows rarely hold them. Running it over the training split's keyword-free tape (its speakers'
non-keyword words, fillers, noise) and training again on the windows that end where it fired
(``StreamDataModule(mined_windows=...)``) aims the next round at exactly those.
"""

from __future__ import annotations

import numpy as np
import torch

from speechrnn.data.features import FeatureSettings
from speechrnn.files import write_json
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.detect import Detection, detect
from speechrnn.streaming.runner import run_step

MINE_EVERY_S = 0.1  # one window per this much of a detection: a long false alarm gives a few


def fired_windows(detections: list[Detection], clock: FeatureSettings, window_s: tuple[float, float],
                  rng: np.random.Generator) -> list[list[int]]:
    """``[first, last]`` frames of windows ending along each detection (its first frame above the
    threshold, then every ``MINE_EVERY_S`` to its last), each ``window_s`` long at random."""
    windows = []
    for det in detections:
        start, end = clock.frames_in(det.start_s), clock.frames_in(det.end_s)
        for last in range(start, end + 1, max(1, clock.frames_in(MINE_EVERY_S))):
            windows.append([max(0, last + 1 - clock.frames_in(rng.uniform(*window_s))), last])
    return windows


@torch.inference_mode()
def mine(model, datamodule, point: OperatingPoint, seed: int = 0) -> tuple[list[list[int]], list[Detection]]:
    """Run ``model`` (a SpeechClassifier) over ``datamodule``'s training keyword-free tape with the
    detector at ``point``; the windows where it fired and its detections."""
    frames, _ = datamodule.tape("train", keyword_free=True)  # (T, F)
    step = model.eval().streaming_step("the model being mined")
    posteriors, _ = run_step(step, frames, step.initial_state())
    detections = detect(posteriors, step.labels, datamodule.features, point)
    return fired_windows(detections, datamodule.features, datamodule.window_s, np.random.default_rng(seed)), detections


def write_mined(path, streams: str, windows: list[list[int]], point: OperatingPoint, detections: int) -> None:
    """The file ``StreamDataModule(mined_windows=path)`` reads; ``streams`` names the tapes' folder."""
    write_json(path, {"streams": streams, "operating_point": point.to_json(), "detections": detections,
                      "windows": windows})
