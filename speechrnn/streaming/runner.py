"""Running a model over a stream: audio chunks -> posteriors per frame -> detections.

:class:`Streamer` joins the front end (:class:`~speechrnn.data.frontend.FrameStream`) and
the model's own :meth:`~speechrnn.models.classifier.SpeechClassifier.streaming_step`, with the
state kept between calls: with ``pooling: last``, the posteriors at frame t are the offline
model's answer for the audio up to t. :func:`spot` runs chunks through it and a detector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch
from torch import Tensor

from speechrnn.data.audio import UNUSABLE, unusable
from speechrnn.data.chunks import read_chunks
from speechrnn.data.features import FeatureSettings
from speechrnn.data.frontend import FrameStream
from speechrnn.errors import SpeechRNNError
from speechrnn.files import json_text
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.recurrence import MAX_CHUNK_FRAMES
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.detect import Detection, Detector

CHUNK_S = 0.1  # audio per chunk: a 100 ms reaction budget


class Streamer:
    """Audio chunks -> posteriors ``(T, C)`` per frame; the front end and the state persist between calls.

    Build it with :meth:`from_checkpoint`. Frame t is centred at ``settings.centre_s(t)``.
    """

    def __init__(self, model: SpeechClassifier, settings: FeatureSettings, source: str = "the model") -> None:
        self.step = model.eval().streaming_step(source)
        self.settings = settings
        self.frames = FrameStream(settings, source)
        self.labels = list(self.step.labels)
        self.state = self.step.initial_state()

    @classmethod
    def from_checkpoint(cls, checkpoint) -> Streamer:
        """From a :class:`~speechrnn.checkpoint.Checkpoint` (``load_checkpoint(path)``)."""
        return cls(checkpoint.model(), checkpoint.features, f"checkpoint {checkpoint.path}")

    @torch.inference_mode()
    def push(self, chunk: Tensor) -> Tensor:
        return self._posteriors(self.frames.push(chunk))

    @torch.inference_mode()
    def finish(self) -> Tensor:
        return self._posteriors(self.frames.finish())

    def _posteriors(self, feats: Tensor) -> Tensor:  # (T, F) -> (T, C)
        posteriors, self.state = run_step(self.step, feats, self.state)
        return posteriors


def run_step(step, feats: Tensor, state: tuple) -> tuple[Tensor, tuple]:
    """A model's streaming step over frames ``(T, F)`` from ``state``: posteriors ``(T, C)`` and the new state."""
    out = [torch.zeros(0, len(step.labels), device=feats.device)]
    for start in range(0, len(feats), MAX_CHUNK_FRAMES):  # the step's cost grows with T^2
        posteriors, *state = step(feats[None, start : start + MAX_CHUNK_FRAMES], *state)
        out.append(posteriors[0])
    return torch.cat(out), tuple(state)


@dataclass
class StreamResult:
    """What one pass over a stream produced."""

    posteriors: torch.Tensor  # (T, C), or (0, C) when not kept
    envelope: torch.Tensor  # (T, 2): min and max sample around each frame, or (0, 2)
    detections: list[Detection]
    duration_s: float


def spot(streamer: Streamer, detector: Detector, chunks: Iterable[torch.Tensor], keep: bool = True,
         on_detection: Callable[[Detection], None] | None = None,
         on_posteriors: Callable[[torch.Tensor], None] | None = None, source: str = "the stream") -> StreamResult:
    """Run ``chunks`` through the streamer and the detector; ``keep`` the posteriors for plots and tuning.

    Raises SpeechRNNError naming ``source`` for NaN, infinite or overflowing samples (they would
    poison the state for the rest of the stream) and for a stream shorter than one analysis window.
    """
    settings = streamer.settings
    posteriors, samples, detections = [], [], []
    received = 0

    def consume(probs: torch.Tensor) -> None:
        if keep:
            posteriors.append(probs)
        if on_posteriors is not None:
            on_posteriors(probs)
        for det in detector.push(probs):
            detections.append(det)
            if on_detection is not None:
                on_detection(det)

    for chunk in chunks:
        if bool((bad := unusable(chunk)).any()):
            at_s = (received + int(bad.nonzero()[0, 0])) / settings.sample_rate
            raise SpeechRNNError(f"{source} holds samples that are {UNUSABLE} at {at_s:.3f} s; they would "
                                 "corrupt every frame after them: repair or re-export the audio")
        received += len(chunk)
        if keep:
            samples.append(chunk)
        consume(streamer.push(chunk))
    if received < settings.min_samples:
        raise SpeechRNNError(f"{source} holds {received / settings.sample_rate:.3f} s of audio, less than one "
                             f"analysis window ({settings.min_samples / settings.sample_rate:.3f} s): nothing "
                             "to classify; give a longer recording")
    consume(streamer.finish())
    for det in detector.finish():
        detections.append(det)
        if on_detection is not None:
            on_detection(det)
    probs = torch.cat(posteriors) if posteriors else torch.zeros(0, len(streamer.labels))
    envelope = frame_envelope(torch.cat(samples), settings.hop_length) if samples else torch.zeros(0, 2)
    return StreamResult(probs, envelope, detections, received / settings.sample_rate)


def run_file(checkpoint, path: Path, point: OperatingPoint, keep: bool = True,
             chunk_s: float = CHUNK_S) -> tuple[StreamResult, float]:
    """A whole stream file through a checkpoint's spotter at ``point``, chunk by chunk, and the CPU
    seconds it took (file reading, front end, model and detector)."""
    streamer = Streamer.from_checkpoint(checkpoint)
    detector = Detector(streamer.labels, checkpoint.features, point)
    started = time.process_time()
    chunks = read_chunks(path, checkpoint.features.sample_rate, chunk_s)
    result = spot(streamer, detector, chunks, keep=keep, source=str(path))
    return result, time.process_time() - started


class PosteriorWriter:
    """``{"t_s", "posteriors": {label: p}}`` per frame to a JSON-lines file; ``t_s`` is when the frame's
    audio ends (its last sample, look-ahead included). Frames are counted across calls."""

    def __init__(self, file: TextIO, labels: list[str], streamer: Streamer) -> None:
        self.file, self.labels, self.clock = file, labels, streamer.settings
        self.frame = 0

    def __call__(self, posteriors: torch.Tensor) -> None:
        for row in posteriors.tolist():
            line = {"t_s": round(self.clock.ready_s(self.frame), 6), "posteriors": dict(zip(self.labels, row))}
            self.file.write(json_text(line) + "\n")
            self.frame += 1


def frame_envelope(wave: torch.Tensor, hop: int) -> torch.Tensor:
    """``(S,)`` -> ``(1 + S // hop, 2)``: min and max of the samples within half a hop of each frame centre."""
    padded = torch.nn.functional.pad(wave, (hop // 2, hop))
    blocks = padded[: (len(padded) // hop) * hop].reshape(-1, hop)[: 1 + len(wave) // hop]
    return torch.stack([blocks.min(1).values, blocks.max(1).values], 1)
