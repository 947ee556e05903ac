"""A stream with samples that would overflow the front end is refused where they start, and the
posteriors written as JSON lines are strict JSON whatever the model outputs."""

import io
import json

import pytest
import torch
from test_streaming import SETTINGS, model

from speechrnn.errors import SpeechRNNError
from speechrnn.streaming.detect import Detector
from speechrnn.streaming.runner import PosteriorWriter, Streamer, spot


def test_samples_that_would_overflow_the_front_end_are_refused_naming_when():
    """Samples near 1e18 once left the state NaN for the rest of the stream, exit 0."""
    streamer = Streamer(model("gru"), SETTINGS)
    chunks = [torch.zeros(800), torch.cat([torch.zeros(400), torch.full((400,), 1e18)])]
    with pytest.raises(SpeechRNNError, match=r"loud\.wav holds samples that are NaN, infinite or beyond .* at 0\.150 s"):
        spot(streamer, Detector(streamer.labels, SETTINGS), chunks, source="loud.wav")


def test_non_finite_posteriors_are_written_as_null():
    streamer = Streamer(model("gru"), SETTINGS)
    file = io.StringIO()
    PosteriorWriter(file, streamer.labels, streamer)(torch.tensor([[float("nan"), 0.5, float("inf")]]))

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    line = json.loads(file.getvalue(), parse_constant=refuse)
    assert line["posteriors"] == {"a": None, "b": 0.5, "background": None}
