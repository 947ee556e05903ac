"""The model frame by frame: the one step that ``stream``, ``export``, ONNX and TorchScript run.

:class:`StreamingStep` holds the classifier's own normaliser, encoder and head and calls their
``step``/``per_frame`` methods, the chunk-by-chunk forms of what the classifier's ``forward``
computes; so frame t of a stream gets the logits ``forward`` gives the frames up to t. Build it
with :meth:`SpeechClassifier.streaming_step <speechrnn.models.classifier.SpeechClassifier.streaming_step>`,
which refuses models whose answer at frame t reads later frames.
"""

from __future__ import annotations

from torch import Tensor, nn


class StreamingStep(nn.Module):
    """Raw MFCC frames ``(B, T, F)`` and the state -> posteriors ``(B, T, C)`` and the next state.

    The state is a flat tuple of tensors: the normaliser's (causal mode: running mean, mean
    square, frames read) then the encoder's (per layer ``h``, or ``h`` and ``c`` for an LSTM),
    explicit so an exported graph takes it as inputs and returns it as outputs.
    """

    def __init__(self, normaliser: nn.Module, encoder: nn.Module, head: nn.Module, labels: list[str]) -> None:
        super().__init__()
        self.normaliser, self.encoder, self.head = normaliser, encoder, head
        self.labels = list(labels)
        self.normaliser_tensors = len(normaliser.initial_state(1))

    def initial_state(self, batch_size: int = 1) -> tuple[Tensor, ...]:
        """The state every utterance starts from: what ``forward`` assumes before frame 0."""
        return self.normaliser.initial_state(batch_size) + self.encoder.initial_state(batch_size)

    def logits(self, feats: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        split = self.normaliser_tensors
        x, normaliser_state = self.normaliser.step(feats, state[:split])
        states, encoder_state = self.encoder.step(x, state[split:])  # (B, T, H)
        return self.head.per_frame(states), normaliser_state + encoder_state

    def forward(self, feats: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, state = self.logits(feats, state)
        return (logits.softmax(-1), *state)

    def state_layout(self) -> list[dict]:
        """Per state tensor: its shape past the batch and the value it starts at (each is constant)."""
        return [{"shape": list(s.shape[1:]), "fill": float(s.flatten()[0])} for s in self.initial_state(1)]
