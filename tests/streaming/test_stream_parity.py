"""One model from training to the stream: offline prefixes, the streamer, ONNX and TorchScript agree.

For every unidirectional cell, every normalisation that streams, with and without deltas, with
one and two layers: the posteriors at frame t of a stream fed in chunks equal the offline
model's on the frames up to t, and so do the exported graphs' in onnxruntime and TorchScript.
"""

import itertools

import numpy as np
import pytest
import torch
from test_streaming import model, speechlike, streamed

from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.data.frontend import FrameStream
from speechrnn.streaming.export import OnnxStep, export_onnx, export_torchscript
from speechrnn.streaming.runner import Streamer

CELLS = ["rnn", "gru", "lstm", "mingru", "minlstm"]
NORMALISATIONS = ["global", "causal"]
CHUNK_MS = [10, 33.3, 100, 333.3, 1000]
MATRIX = list(itertools.product(CELLS, NORMALISATIONS, [False, True], [1, 2]))
TOLERANCE = 1e-4  # fp32, on posteriors in [0, 1]


def run_graph(step, settings: FeatureSettings, wave: torch.Tensor, chunk: int) -> torch.Tensor:
    """An exported step (``(feats (T, F), state) -> (posteriors, state)``) behind the Python front end."""
    frames, state, out = FrameStream(settings), step.initial_state(), []
    for i in range(0, len(wave) + chunk, chunk):
        feats = frames.push(wave[i : i + chunk]) if i < len(wave) else frames.finish()
        if len(feats):
            posteriors, state = step(feats.numpy(), state)
            out.append(posteriors)
    return torch.from_numpy(np.concatenate(out))


class TorchScriptStep:
    def __init__(self, path, initial_state) -> None:
        self.module, self.start = torch.jit.load(str(path)), initial_state

    def initial_state(self):
        return self.start

    @torch.inference_mode()
    def __call__(self, feats: np.ndarray, state):
        posteriors, *state = self.module(torch.from_numpy(feats)[None], *state)
        return posteriors[0].numpy(), tuple(state)


@pytest.mark.parametrize(("cell", "normalisation", "deltas", "layers"), MATRIX)
def test_offline_prefixes_streamer_onnx_and_torchscript_agree(cell, normalisation, deltas, layers, tmp_path):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=deltas)
    classifier = model(cell, settings, hidden_size=8, num_layers=layers, normalisation=normalisation,
                       norm_prior_frames=5, norm_window_frames=40)  # the window is reached within the clip
    wave = speechlike(1.3, seed=MATRIX.index((cell, normalisation, deltas, layers)))
    chunk = round(CHUNK_MS[MATRIX.index((cell, normalisation, deltas, layers)) % len(CHUNK_MS)] * 8)
    feats = MFCC(settings)(wave[None], torch.tensor([len(wave)]))[0]  # (T, F)
    steps = len(feats)
    with torch.inference_mode():  # prefix t is row t with length t + 1: the model read to frame t
        offline = classifier(feats.expand(steps, -1, -1), torch.arange(1, steps + 1)).softmax(-1)
    online = streamed(Streamer(classifier, settings), wave, chunk)
    torch.testing.assert_close(online, offline, rtol=0, atol=TOLERANCE)

    step = classifier.streaming_step().eval()
    onnx = run_graph(OnnxStep(export_onnx(step, settings, tmp_path / "step.onnx")), settings, wave, chunk)
    script = TorchScriptStep(export_torchscript(step, settings, tmp_path / "step.pt"), step.initial_state())
    torch.testing.assert_close(onnx, offline, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(run_graph(script, settings, wave, chunk), offline, rtol=0, atol=TOLERANCE)
