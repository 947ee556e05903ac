"""Audio as a stream: a file read block by block, mixed to mono and resampled on the fly.

Memory stays bounded whatever the file's length (an hour of audio is read a second at a time),
and the samples are those :func:`~speechrnn.data.audio.read_audio` gives for the whole file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional.functional as AFF

from speechrnn.errors import SpeechRNNError


class StreamResampler:
    """Chunks at ``orig_rate`` -> chunks at ``new_rate``, equal to ``torchaudio.functional.resample``.

    That resampler is a polyphase FIR: each block of ``new / gcd`` output samples reads a fixed
    window of input, so a block is computed as soon as its window has arrived. The kernel is
    torchaudio's own (a private helper; the tests compare against the public function).
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        gcd = math.gcd(orig_rate, new_rate)
        self.kernel, self.width = AFF._get_sinc_resample_kernel(orig_rate, new_rate, gcd)  # (new, 1, K)
        self.orig, self.new = orig_rate // gcd, new_rate // gcd
        self.buffer = torch.zeros(self.width)  # the zeros resample pads in front
        self.received = 0
        self.emitted = 0

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        self.received += len(chunk)
        self.buffer = torch.cat([self.buffer, chunk])
        return self._blocks()

    def finish(self) -> torch.Tensor:
        self.buffer = torch.cat([self.buffer, torch.zeros(self.width + self.orig)])
        remaining = math.ceil(self.new * self.received / self.orig) - self.emitted
        return self._blocks()[: max(0, remaining)]

    def _blocks(self) -> torch.Tensor:
        size = self.kernel.shape[-1]
        count = (len(self.buffer) - size) // self.orig + 1
        if count <= 0:
            return torch.zeros(0)
        used = self.buffer[: (count - 1) * self.orig + size]
        out = torch.nn.functional.conv1d(used[None, None], self.kernel, stride=self.orig)  # (1, new, count)
        self.buffer = self.buffer[count * self.orig :]
        out = out[0].T.reshape(-1)
        self.emitted += len(out)
        return out


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
            resampler = StreamResampler(audio.samplerate, sample_rate)
        block = max(1, round(chunk_s * audio.samplerate))
        while True:
            try:
                samples = audio.read(block, dtype="float32", always_2d=True)  # (S, channels)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise SpeechRNNError(f"{path} is damaged ({err}); replace it") from err
            if len(samples) == 0:
                break
            mono = torch.from_numpy(samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0])
            yield mono if resampler is None else resampler.push(mono)
        if resampler is not None:
            yield resampler.finish()
