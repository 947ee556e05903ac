"""The microphone reader: chunks of the asked size until the asked time, and a clear error without the extra."""

import sys
import types
from typing import ClassVar

import numpy as np
import pytest

from speechrnn.data.chunks import microphone_chunks
from speechrnn.errors import SpeechRNNError


class FakeInput:
    """sounddevice.InputStream's shape: ``read(frames)`` gives ``(frames, channels)`` float32 samples."""

    opened: ClassVar[list] = []

    def __init__(self, samplerate, channels, dtype, blocksize):
        self.settings = (samplerate, channels, dtype, blocksize)
        self.count = 0
        FakeInput.opened.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, frames):
        self.count += 1
        return np.full((frames, 1), self.count, np.float32), False


def test_microphone_chunks_are_mono_blocks_of_the_chunk_until_the_time_is_up(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=FakeInput))
    chunks = list(microphone_chunks(8000, 0.1, seconds=0.35))
    assert FakeInput.opened[-1].settings == (8000, 1, "float32", 800)
    assert [len(c) for c in chunks] == [800] * 4  # blocks until 0.35 s are read: the fourth crosses it
    assert [float(c[0]) for c in chunks] == [1.0, 2.0, 3.0, 4.0]


def test_listening_without_sounddevice_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(SpeechRNNError, match=r"speechrnn\[live\]"):
        next(microphone_chunks(8000, 0.1, seconds=1.0))
