"""A small ctypes binding to the eSpeak NG library that the ``espeakng-loader`` wheel ships.

eSpeak keeps synthesis state in C statics (pitch-flutter phase, gain control, filter memories)
that no API call resets, and its breath noise draws from libc ``rand()``; the same call therefore
gives different audio depending on what was synthesised before. To make :func:`synthesize` a
pure function of its arguments, each call loads a fresh copy of the library (``dlopen``, about
2 ms), seeds both random generators, and unloads it again. A lock serialises callers, since the
library is one global state per process.
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from speechrnn.data.corpus import PhoneSegment
from speechrnn.errors import SpeechRNNError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # without it a bad data path makes the library call exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_RATE_WPM_RANGE = (80, 450)  # eSpeak clamps silently outside these
_PITCH_RANGE = (0, 99)


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h; ``id`` is a union whose phoneme member is char[8]."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms, too coarse for phone boundaries
        ("sample", ctypes.c_int),  # samples since the start of the text
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Synthesis:
    """One synthesised text: audio and eSpeak's phoneme timing.

    ``phones`` holds eSpeak's own phoneme names (stress marks and pauses such as ``_:``
    included), each ending where the next starts or where the audio ends.
    """

    samples: np.ndarray  # (T,) float32 in [-1, 1]
    sample_rate: int  # Hz; eSpeak's own, 22050
    phones: list[PhoneSegment]


class _Collector:
    """Receives eSpeak's audio chunks and phoneme events for the call in progress."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.phone_starts: list[tuple[int, str]] = []  # (sample, name)


_lock = threading.Lock()
_collector = _Collector()


@_SynthCallback
def _on_synth(wav, n_samples, events):  # ctypes pointers: (n_samples,) int16 and an event list
    if wav and n_samples > 0:
        _collector.chunks.append(ctypes.string_at(wav, n_samples * 2))
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        if events[i].type == _EVENT_PHONEME:
            name = events[i].id.decode("utf-8", errors="replace")
            _collector.phone_starts.append((events[i].sample, name))
        i += 1
    return 0  # 0: continue synthesis


def _paths() -> tuple[Path, Path]:
    try:
        import espeakng_loader
    except ImportError as err:
        raise SpeechRNNError(
            "the eSpeak NG library is missing: install it with `pip install espeakng-loader`"
        ) from err
    return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    """The voice variants (``en-us+<variant>``) that the shipped eSpeak data holds, sorted."""
    _, data_path = _paths()
    folder = data_path / "voices" / "!v"
    if not folder.is_dir():
        raise SpeechRNNError(
            f"no eSpeak voice variants in {folder}: reinstall with "
            "`pip install --force-reinstall espeakng-loader`"
        )
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def _check_voice(voice: str) -> None:
    # eSpeak ignores an unknown variant without an error, so it is checked against the folder.
    _, _, variant = voice.partition("+")
    if variant and variant not in variants():
        raise SpeechRNNError(
            f"eSpeak has no voice variant {variant!r} (in voice {voice!r}); "
            "choose one of speechrnn.corpora.espeak.variants()"
        )


def _check_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise SpeechRNNError(f"eSpeak {name}={value} is out of range; use {bounds[0]}..{bounds[1]}")


def _load() -> tuple[ctypes.CDLL, int]:
    """A freshly loaded, initialised library and its sample rate (Hz)."""
    lib_path, data_path = _paths()
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as err:
        raise SpeechRNNError(
            f"cannot load eSpeak NG from {lib_path} ({err}): reinstall with "
            "`pip install --force-reinstall espeakng-loader`"
        ) from err
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    sample_rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS,
        0,  # buffer length: the library's default
        str(data_path).encode(),
        _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
    )
    if sample_rate <= 0:
        _unload(lib)
        raise SpeechRNNError(
            f"eSpeak NG cannot read its data in {data_path}: reinstall with "
            "`pip install --force-reinstall espeakng-loader`"
        )
    lib.espeak_SetSynthCallback(_on_synth)
    return lib, sample_rate


def _unload(lib: ctypes.CDLL) -> None:
    lib.espeak_Terminate()
    _ctypes.dlclose(lib._handle)


def synthesize(
    text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, noise_seed: int = 1
) -> Synthesis:
    """Speak ``text`` with an eSpeak ``voice`` such as ``en-us`` or ``en-us+m3``.

    Args:
        rate_wpm: speaking rate in words per minute (80..450).
        pitch: eSpeak's pitch setting (0..99, 50 is the voice's own).
        noise_seed: seeds eSpeak's breath noise; the same arguments give the same samples.

    Seeds libc ``rand()`` as a side effect, since eSpeak draws its breath noise from it.
    """
    _check_voice(voice)
    _check_range("rate_wpm", rate_wpm, _RATE_WPM_RANGE)
    _check_range("pitch", pitch, _PITCH_RANGE)
    encoded = text.encode("utf-8") + b"\0"
    with _lock:
        _collector.chunks.clear()
        _collector.phone_starts.clear()
        lib, sample_rate = _load()
        try:
            if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
                raise SpeechRNNError(
                    f"eSpeak has no voice {voice!r}; use a language such as 'en-us', "
                    "optionally with '+<variant>' from speechrnn.corpora.espeak.variants()"
                )
            lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            lib.espeak_ng_SetRandSeed(noise_seed)
            ctypes.CDLL(None).srand(noise_seed)
            status = lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            _unload(lib)
        if status != 0:
            raise SpeechRNNError(f"eSpeak failed (status {status}) to speak {text!r}")
        pcm = np.frombuffer(b"".join(_collector.chunks), dtype=np.int16)  # (T,)
        starts = list(_collector.phone_starts)
    samples = pcm.astype(np.float32) / 32768.0
    return Synthesis(samples, sample_rate, _segments(starts, len(samples), sample_rate))


def _segments(starts: list[tuple[int, str]], n_samples: int, sample_rate: int) -> list[PhoneSegment]:
    """Phone start events to (start_s, end_s, name); empty segments are dropped."""
    bounds = [min(sample, n_samples) for sample, _ in starts] + [n_samples]
    return [
        (start / sample_rate, end / sample_rate, name)
        for (_, name), start, end in zip(starts, bounds, bounds[1:])
        if end > start
    ]
