"""``speechrnn stream CKPT FILE``: keywords spotted in a long recording (or the microphone), as JSON lines.

The file is read, featurised and classified chunk by chunk with the encoder's state carried
along (:mod:`speechrnn.streaming`), so an hour costs the memory of a chunk; each detection is
printed as it ends: ``{"label", "start_s", "end_s", "score", "fired_s"}``. ``--mic`` listens
live (needs the optional ``sounddevice`` package: ``pip install 'speechrnn[live]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.chunks import read_chunks
from speechrnn.detect import BACKGROUND, Detection, Detector
from speechrnn.errors import SpeechRNNError
from speechrnn.streaming import Streamer


@dataclass
class StreamResult:
    """What one pass over a stream produced."""

    posteriors: torch.Tensor  # (T, C), or (0, C) when not kept
    envelope: torch.Tensor  # (T, 2): min and max sample around each frame, or (0, 2)
    detections: list[Detection]
    duration_s: float


def spot(streamer: Streamer, detector: Detector, chunks: Iterable[torch.Tensor], keep: bool = True,
         on_detection: Callable[[Detection], None] | None = None) -> StreamResult:
    """Run ``chunks`` through the streamer and the detector; ``keep`` the posteriors for plots and tuning."""
    posteriors, samples, detections = [], [], []
    received = 0

    def consume(probs: torch.Tensor) -> None:
        if keep:
            posteriors.append(probs)
        for det in detector.push(probs):
            detections.append(det)
            if on_detection is not None:
                on_detection(det)

    for chunk in chunks:
        received += len(chunk)
        if keep:
            samples.append(chunk)
        consume(streamer.push(chunk))
    consume(streamer.finish())
    for det in detector.finish():
        detections.append(det)
        if on_detection is not None:
            on_detection(det)
    settings = streamer.frames.settings
    probs = torch.cat(posteriors) if posteriors else torch.zeros(0, len(streamer.labels))
    envelope = frame_envelope(torch.cat(samples), settings.hop_length) if samples else torch.zeros(0, 2)
    return StreamResult(probs, envelope, detections, received / settings.sample_rate)


def frame_envelope(wave: torch.Tensor, hop: int) -> torch.Tensor:
    """``(S,)`` -> ``(1 + S // hop, 2)``: min and max of the samples within half a hop of each frame centre."""
    padded = torch.nn.functional.pad(wave, (hop // 2, hop))
    blocks = padded[: (len(padded) // hop) * hop].reshape(-1, hop)[: 1 + len(wave) // hop]
    return torch.stack([blocks.min(1).values, blocks.max(1).values], 1)


def microphone_chunks(sample_rate: int, chunk_s: float, seconds: float | None) -> Iterator[torch.Tensor]:
    """Live mono chunks from the default input device, until ``seconds`` pass or Ctrl+C."""
    try:
        import sounddevice
    except ImportError as err:
        raise SpeechRNNError("--mic needs the optional package sounddevice: pip install 'speechrnn[live]' "
                             "(or pass an audio file instead)") from err
    block = round(chunk_s * sample_rate)
    total = None if seconds is None else round(seconds * sample_rate)
    read = 0
    with sounddevice.InputStream(samplerate=sample_rate, channels=1, dtype="float32", blocksize=block) as mic:
        try:
            while total is None or read < total:
                samples, _ = mic.read(block)  # (block, 1); blocks until the audio arrived
                read += len(samples)
                yield torch.from_numpy(samples[:, 0].copy())
        except KeyboardInterrupt:
            return


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="speechrnn stream", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt written by `speechrnn fit` with pooling: last")
    parser.add_argument("file", nargs="?", type=Path, help="an audio file (any rate and channel count)")
    parser.add_argument("--mic", action="store_true", help="listen to the default microphone instead")
    parser.add_argument("--seconds", type=float, help="with --mic: stop after this long (default: Ctrl+C)")
    parser.add_argument("--threshold", type=float, default=0.5, help="smoothed posterior that fires")
    parser.add_argument("--smooth-s", type=float, default=0.1, help="moving-average window, seconds")
    parser.add_argument("--refractory-s", type=float, default=0.3, help="dead time after a detection")
    parser.add_argument("--chunk-s", type=float, default=0.1, help="audio per chunk, seconds")
    parser.add_argument("--background", nargs="*", default=[BACKGROUND],
                        help="classes that are never reported (the model's non-keyword class)")
    parser.add_argument("--plot", type=Path, help="draw waveform, posteriors and detections to this PNG")
    args = parser.parse_args(argv)
    if (args.file is None) == (not args.mic):
        parser.error("give an audio file or --mic, not both")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    streamer = Streamer.from_checkpoint(ckpt)
    settings = ckpt.features
    detector = Detector(streamer.labels, streamer.hop_s, args.threshold, args.smooth_s, args.refractory_s,
                        streamer.frames.lookahead_s, tuple(args.background))
    if args.mic:
        chunks = microphone_chunks(settings.sample_rate, args.chunk_s, args.seconds)
    else:
        chunks = read_chunks(args.file, settings.sample_rate, args.chunk_s,
                             notify=lambda note: print(f"speechrnn: {note}", file=sys.stderr))
    result = spot(streamer, detector, chunks, keep=args.plot is not None,
                  on_detection=lambda det: print(json.dumps(det.to_json()), flush=True))
    if args.plot:
        from speechrnn.plots import plot_stream

        plot_stream(result.envelope, result.posteriors, streamer.labels, streamer.hop_s, result.detections,
                    args.plot, threshold=args.threshold, title=f"{args.file or 'microphone'}")
        print(f"speechrnn: figure written to {args.plot}", file=sys.stderr)
