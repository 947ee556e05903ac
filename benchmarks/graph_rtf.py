"""Real-time factor of the one-graph spotter: CPU seconds per second of audio, one thread.

Three ways to run the same spotter over the same audio in chunks of ``--chunk_s``:

- ``graph``: the exported audio graph in onnxruntime (front end and model in one call);
- ``python+step``: the Python front end (``FrameStream``) and the exported step in onnxruntime,
  what ran before the graph existed;
- ``chromium``: the page in headless Chromium, onnxruntime-web on wasm with one thread (with
  ``--chromium``; the time inside ``session.run``, from the page's own clock).

The spotter is ``--checkpoint``'s, else an untrained model of the streaming recipe's shape (a
real-time factor does not depend on the weights). The audio is FSDD's recordings joined end to
end up to ``--seconds`` (``--fsdd_root``), else a generated signal.

    python -m benchmarks.graph_rtf [--checkpoint CKPT] [--fsdd_root DIR] [--seconds 60] [--chromium]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from benchmarks import chromium
from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.chunks import read_chunks
from speechrnn.data.features import FeatureSettings
from speechrnn.data.frontend import FrameStream
from speechrnn.files import write_json
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.streaming.export import OnnxAudioGraph, OnnxStep, export_audio_onnx, export_onnx
from speechrnn.streaming.graph import AudioGraph
from speechrnn.streaming.web import build_site

RECIPE = FeatureSettings(sample_rate=8000, n_mfcc=13, hop_ms=20.0, deltas=True)  # configs/data/fsdd_stream_heldout.yaml
HIDDEN_SIZE = 128  # configs/experiment/streaming.yaml


def spotter(checkpoint: Path | None) -> tuple[AudioGraph, FeatureSettings]:
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        return AudioGraph(ckpt.model().streaming_step(f"checkpoint {checkpoint}").eval(), ckpt.features).eval(), ckpt.features
    torch.manual_seed(0)
    model = SpeechClassifier(labels=[*"01234", "background"], input_size=RECIPE.feature_dim, cell="gru",
                             hidden_size=HIDDEN_SIZE, num_layers=1, pooling="last", normalisation="causal").eval()
    return AudioGraph(model.streaming_step(), RECIPE).eval(), RECIPE


def audio(fsdd_root: Path | None, seconds: float, sample_rate: int) -> np.ndarray:
    """FSDD's recordings end to end (sorted) up to ``seconds``, else tones over noise."""
    folder = None if fsdd_root is None else fsdd_root / "fsdd" / "recordings"
    wanted = round(seconds * sample_rate)
    if folder is None or not folder.is_dir():
        t = np.arange(wanted) / sample_rate
        return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(wanted)).astype(np.float32)
    parts, total = [], 0
    for path in sorted(folder.glob("*.wav")):
        if total >= wanted:
            break
        parts.append(torch.cat(list(read_chunks(path, sample_rate, 10.0))).numpy())
        total += len(parts[-1])
    return np.concatenate(parts)[:wanted]


def cpu_seconds(run) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def python_and_step(step: OnnxStep, settings: FeatureSettings, chunks: list[np.ndarray]) -> None:
    frames, state = FrameStream(settings), step.initial_state()
    with torch.inference_mode():
        for feats in [*(frames.push(torch.from_numpy(c)) for c in chunks), frames.finish()]:
            if len(feats):
                _, state = step(feats.numpy(), state)


def measure(graph: AudioGraph, settings: FeatureSettings, wave: np.ndarray, chunk_s: float, folder: Path,
            browser: bool) -> dict:
    """RTF of each way to run the spotter (``chromium`` only with ``browser``)."""
    audio_s = len(wave) / settings.sample_rate
    step = round(chunk_s * settings.sample_rate)
    chunks = [wave[i : i + step] for i in range(0, len(wave), step)]
    onnx_graph = OnnxAudioGraph(export_audio_onnx(graph, folder / "graph.onnx"))
    onnx_step = OnnxStep(export_onnx(graph.step, settings, folder / "step.onnx"))
    rtf = {"graph": cpu_seconds(lambda: onnx_graph.stream(chunks)) / audio_s,
           "python+step": cpu_seconds(lambda: python_and_step(onnx_step, settings, chunks)) / audio_s}
    if browser:
        site = build_site(graph, folder / "site")
        sf.write(folder / "audio.wav", wave, settings.sample_rate, subtype="FLOAT")
        with chromium.serve(site) as url, chromium.chromium(folder / "profile") as page:
            run = chromium.run_file(page, url, folder / "audio.wav")
        rtf["chromium"] = run["inference_s"] / run["audio_s"]
    return {"audio_s": audio_s, "chunk_s": chunk_s, "rtf": rtf}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--fsdd_root", type=Path, help="the folder holding fsdd/ (default: generated audio)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk_s", type=float, default=0.1)
    parser.add_argument("--chromium", action="store_true", help="also the page in headless Chromium")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.chromium and chromium.missing():
        print(f"--chromium: {chromium.missing()}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    graph, settings = spotter(args.checkpoint)
    wave = audio(args.fsdd_root, args.seconds, settings.sample_rate)
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(graph, settings, wave, args.chunk_s, Path(scratch), args.chromium)
    for name, value in figures["rtf"].items():
        print(f"{name:12s} RTF {value:.4f} (CPU s per audio s, one thread)")
    print(f"over {figures['audio_s']:.1f} s of audio in chunks of {args.chunk_s:g} s")
    if args.out is not None:
        write_json(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
