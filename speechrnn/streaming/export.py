"""The spotter as a file: the audio graph (ONNX), the model's step (ONNX or TorchScript), and both in onnxruntime.

The audio graph (:class:`~speechrnn.streaming.graph.AudioGraph`, :func:`export_audio_onnx`)
takes audio samples ``audio`` ``(S,)``, ``final`` and its state (named ``samples``,
``received``, ``cepstra`` with deltas, ``step_0`` ..) and returns ``posteriors`` ``(T, C)`` and
``next_<name>`` for each state tensor: all a runtime needs beside the description in the ONNX
metadata ``speechrnn`` (labels, sample rate, hop, look-ahead, each state tensor's name, shape,
dtype and start value, the operating point with its windows in frames).

The step (:func:`export_onnx`, :func:`export_torchscript`) is the model's own
:meth:`~speechrnn.models.classifier.SpeechClassifier.streaming_step`: raw MFCC frames ``feats``
``(B, T, F)`` and the state ``state_0 .. state_{n-1}`` in; ``posteriors`` ``(B, T, C)`` and the
next state ``next_state_0 ..`` out, behind :class:`~speechrnn.data.frontend.FrameStream`
(Python) or any front end that reproduces the stored feature settings (TorchScript: the extra
file ``speechrnn.json``). In both, a call's cost grows with the square of T for minGRU, minLSTM
and causal normalisation: feed chunks of up to a second. Every file is written under a
temporary name and renamed: a failed export leaves nothing behind and replaces nothing.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechrnn.data.corpus import BACKGROUND
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.files import atomic_write
from speechrnn.models.streaming_step import StreamingStep
from speechrnn.operating_point import DEFAULT_POINT, OperatingPoint
from speechrnn.streaming.detect import Detector
from speechrnn.streaming.graph import FRONT_END_WEIGHTS, AudioGraph

METADATA_KEY = "speechrnn"  # ONNX metadata key; the TorchScript extra file is METADATA_KEY + ".json"
OPSET = 17
EXAMPLE_FRAMES = 5  # frames in the example chunk the graph is traced with; T stays dynamic


def describe(step: StreamingStep, settings: FeatureSettings, point: OperatingPoint | None = None) -> dict:
    """What a runtime needs beside the graph: labels, feature settings, the state, the operating point."""
    normaliser = step.normaliser
    return {"labels": step.labels, "features": asdict(settings), "lookahead_s": settings.lookahead_s,
            "normalisation": {"mode": normaliser.mode, "prior_frames": normaliser.prior_frames,
                              "window_frames": normaliser.window_frames},
            "state": step.state_layout(), "cell": step.encoder.cell,
            "operating_point": None if point is None else point.to_json()}


def state_names(count: int) -> tuple[list[str], list[str]]:
    return [f"state_{i}" for i in range(count)], [f"next_state_{i}" for i in range(count)]


def example_inputs(step: StreamingStep, feature_dim: int) -> tuple[torch.Tensor, ...]:
    return (torch.zeros(1, EXAMPLE_FRAMES, feature_dim), *step.initial_state(1))


def export_onnx(step: StreamingStep, settings: FeatureSettings, path: Path,
                point: OperatingPoint | None = None) -> Path:
    """Write ``step`` as an ONNX graph with ``describe()`` in its metadata."""
    inputs, outputs = state_names(len(step.initial_state()))
    dynamic = {"feats": {0: "batch", 1: "frames"}, "posteriors": {0: "batch", 1: "frames"}}
    dynamic |= {name: {0: "batch"} for name in inputs + outputs}
    return write_onnx(step, example_inputs(step, settings.feature_dim), ["feats", *inputs], ["posteriors", *outputs],
                      dynamic, describe(step, settings, point), path)


def export_audio_onnx(graph: AudioGraph, path: Path, point: OperatingPoint | None = None) -> Path:
    """Write ``graph`` (audio in, posteriors out) as one ONNX file with ``describe_audio()`` in its metadata."""
    names = graph.state_names
    dynamic = {"audio": {0: "samples"}, "posteriors": {0: "frames"}}
    example = (torch.zeros(EXAMPLE_FRAMES * graph.settings.hop_length), torch.tensor([False]), *graph.initial_state())
    return write_onnx(graph, example, ["audio", "final", *names], ["posteriors", *[f"next_{n}" for n in names]],
                      dynamic, describe_audio(graph, point), path)


def describe_audio(graph: AudioGraph, point: OperatingPoint | None) -> dict:
    """``describe()`` for the audio graph: its inputs, every state tensor by name, the clock and the detector."""
    settings = graph.settings
    state = [{"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
              "fill": float(tensor.flatten()[0]) if tensor.numel() else 0.0}
             for name, tensor in zip(graph.state_names, graph.initial_state())]
    return describe(graph.step, settings, point) | {
        "graph": "audio", "sample_rate": settings.sample_rate, "hop_length": settings.hop_length,
        "frame_s": settings.frame_s, "state": state,
        "inputs": {"audio": "float32 samples (S,) at sample_rate, any S", "final": "bool (1,): true ends the stream"},
        "operating_point": operating_point_frames(graph, point), "background": [BACKGROUND]}


def operating_point_frames(graph: AudioGraph, point: OperatingPoint | None) -> dict:
    """The operating point (the defaults when none was tuned, said so) with its windows in frames."""
    tuned = point is not None
    point = point or DEFAULT_POINT
    detector = Detector(graph.step.labels, graph.settings, point, (BACKGROUND,))
    return point.to_json() | {"tuned": tuned, "window_frames": detector.window,
                              "refractory_frames": detector.refractory_frames}


def write_onnx(module: torch.nn.Module, example: tuple, input_names: list[str], output_names: list[str],
               dynamic: dict, description: dict, path: Path) -> Path:
    """Trace ``module`` to ONNX at ``path`` (atomically) with ``description`` as JSON metadata."""
    try:
        import onnx
    except ImportError as err:
        raise SpeechRNNError("ONNX export needs the packages onnx and onnxruntime: pip install -e . "
                             "(or export with --format torchscript)") from err

    with atomic_write(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        # torch.export's ONNX path needs onnxscript; the TorchScript path handles RNN layers natively
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(module, example, str(tmp), dynamo=False, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic, opset_version=OPSET)
        graph = onnx.load(str(tmp))
        graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(description))
        onnx.save(graph, str(tmp))
    return path


def export_torchscript(step: StreamingStep, settings: FeatureSettings, path: Path,
                       point: OperatingPoint | None = None) -> Path:
    """Write ``step`` traced to TorchScript, ``describe()`` as the extra file ``speechrnn.json``."""
    with torch.no_grad():
        traced = torch.jit.trace(step, example_inputs(step, settings.feature_dim))
    with atomic_write(path) as tmp:
        torch.jit.save(traced, str(tmp),
                       _extra_files={f"{METADATA_KEY}.json": json.dumps(describe(step, settings, point))})
    return path


def quantize_onnx(path: Path, out: Path) -> Path:
    """An ONNX copy with int8 weights for MatMul/Gemm and recurrent ops (activations stay float).

    The audio graph's front end (DFT, mel and DCT matrices) stays float: int8 there would move
    every feature, where the model's weights are what quantisation is for.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    front_end = {node.name for node in onnx.load(str(path)).graph.node if set(node.input) & set(FRONT_END_WEIGHTS)}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs advice on static quantisation, which this is not
    try:
        with atomic_write(out) as tmp:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, nodes_to_exclude=sorted(front_end))
    finally:
        root.setLevel(level)
    return out


def open_onnx(path: str | Path, threads: int) -> tuple:
    """An onnxruntime session on ``threads`` CPU threads, and the description ``speechrnn export`` stored."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if meta is None:
        raise SpeechRNNError(f"{path} was not written by `speechrnn export`; export the checkpoint again")
    return session, json.loads(meta)


class OnnxStep:
    """An exported ONNX step in onnxruntime: ``(feats (T, F), state) -> (posteriors (T, C), state)``."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session, self.description = open_onnx(path, threads)
        self.features = FeatureSettings(**self.description["features"])
        self.labels = self.description["labels"]
        self.inputs, self.outputs = state_names(len(self.description["state"]))

    def initial_state(self) -> tuple[np.ndarray, ...]:
        return tuple(np.full((1, *s["shape"]), s["fill"], np.float32) for s in self.description["state"])

    def __call__(self, feats: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
        feeds = {"feats": np.asarray(feats, np.float32)[None], **dict(zip(self.inputs, state))}
        posteriors, *state = self.session.run(["posteriors", *self.outputs], feeds)
        return posteriors[0], tuple(state)


class OnnxAudioGraph:
    """An exported audio graph in onnxruntime: ``(audio (S,), state) -> (posteriors (T, C), state)``."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session, self.description = open_onnx(path, threads)
        if self.description.get("graph") != "audio":
            raise SpeechRNNError(f"{path} takes MFCC frames, not audio; export it with --format onnx")
        self.features = FeatureSettings(**self.description["features"])
        self.labels = self.description["labels"]
        self.inputs = [s["name"] for s in self.description["state"]]

    def initial_state(self) -> tuple[np.ndarray, ...]:
        return tuple(np.full(s["shape"], s["fill"], s["dtype"]) for s in self.description["state"])

    def __call__(self, audio: np.ndarray, state: tuple[np.ndarray, ...], final: bool = False) -> tuple[np.ndarray, tuple]:
        feeds = {"audio": np.asarray(audio, np.float32).reshape(-1), "final": np.array([final]),
                 **dict(zip(self.inputs, state))}
        posteriors, *state = self.session.run(None, feeds)
        return posteriors, tuple(state)

    def stream(self, chunks: Iterable[np.ndarray]) -> np.ndarray:
        """Posteriors ``(T, C)`` of a whole stream given in chunks, its end flushed by a final call."""
        state, out = self.initial_state(), []
        for chunk in chunks:
            posteriors, state = self(chunk, state)
            out.append(posteriors)
        out.append(self(np.zeros(0, np.float32), state, final=True)[0])
        return np.concatenate(out)
