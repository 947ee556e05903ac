"""Audio as a stream: a file read block by block, mixed to mono and resampled on the fly, or the
microphone's blocks as they arrive.

Memory stays bounded whatever the file's length (an hour of audio is read a second at a time),
and the samples are those :func:`~speechrnn.data.audio.read_audio` gives for the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechrnn.data.audio import resample_stream
from speechrnn.errors import SpeechRNNError


def wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE file's ``data`` chunk declares beyond the end of the file; 0 for other formats.

    libsndfile reads a cut WAV up to where it ends without a word; its header still says more.
    """
    with open(path, "rb") as file:
        if file.read(12)[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        while len(header := file.read(8)) == 8:
            chunk_size = int.from_bytes(header[4:], "little")
            if header[:4] == b"data":
                return max(0, file.tell() + chunk_size - size)
            file.seek(chunk_size + chunk_size % 2, 1)  # chunks are padded to an even size
    return 0


def read_chunks(path: str | Path, sample_rate: int, chunk_s: float = 0.1,
                notify: Callable[[str], None] = print) -> Iterator[torch.Tensor]:
    """Mono float32 chunks of about ``chunk_s`` seconds at ``sample_rate`` from an audio file.

    Another rate is resampled and several channels are averaged; ``notify`` is told so once.
    A file that cannot be decoded, or ends before its header says, raises SpeechRNNError.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"audio file {path} not found; check the path")
    missing = wav_missing_bytes(path)
    if missing:
        raise SpeechRNNError(f"{path} is truncated: its header promises {missing} more bytes of audio "
                             "than the file holds; replace it or export it again")
    try:
        audio = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise SpeechRNNError(f"cannot decode audio file {path}: {err}; replace it") from err
    with audio:
        if audio.channels > 1:
            notify(f"{path}: {audio.channels} channels mixed down to mono")
        resampler = None
        if audio.samplerate != sample_rate:
            notify(f"{path}: resampled from {audio.samplerate} Hz to the model's {sample_rate} Hz")
            resampler = resample_stream(audio.samplerate, sample_rate)
        block = max(1, round(chunk_s * audio.samplerate))
        while True:
            try:
                samples = audio.read(block, dtype="float32", always_2d=True)  # (S, channels)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise SpeechRNNError(f"{path} is damaged ({err}); replace it") from err
            if len(samples) == 0:
                break
            mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
            yield torch.from_numpy(mono if resampler is None else resampler.resample_chunk(mono, last=False))
        if resampler is not None:
            yield torch.from_numpy(resampler.resample_chunk(np.zeros(0, np.float32), last=True))


def microphone_chunks(sample_rate: int, chunk_s: float, seconds: float | None) -> Iterator[torch.Tensor]:
    """Live mono chunks from the default input device, until ``seconds`` pass or Ctrl+C."""
    try:
        import sounddevice
    except ImportError as err:
        raise SpeechRNNError("listening to the microphone (--mic) needs the optional package sounddevice: "
                             "pip install 'speechrnn[live]' (or pass an audio file instead)") from err
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
