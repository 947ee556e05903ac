"""A stream's timeline: the JSON beside its WAV that says what is where.

``{"sample_rate", "duration_s", "events": [{"kind", "label", "start_s", "end_s", ...}]}``; ``kind``
is ``keyword`` for what a spotter should find (:class:`~speechrnn.corpora.streams.StreamDataModule`
also writes unknown, filler, noise and silence events, with each utterance's ``source`` and
``speaker``). The stream corpus writes it, and a spotter is tuned and scored against it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json

FORMAT = ('{"sample_rate", "duration_s", "events": [{"kind": "keyword", "label", "start_s", "end_s"}, ...]}, '
          "times in seconds")


def write_timeline(path: Path, events: list[dict], samples: int, sample_rate: int) -> None:
    rounded = [e | {"start_s": round(e["start_s"], 4), "end_s": round(e["end_s"], 4)} for e in events]
    write_json(path, {"sample_rate": sample_rate, "duration_s": samples / sample_rate, "events": rounded}, indent=0)


def read_timeline(path: Path) -> dict:
    """``{"sample_rate", "duration_s", "events"}`` of a stream (the .json beside its WAV)."""
    path = Path(path).with_suffix(".json")
    if not path.is_file():
        raise SpeechRNNError(f"no timeline {path} beside the stream; write one as {FORMAT}")
    try:
        timeline = json.loads(path.read_text())
        events = timeline["events"]
        if not isinstance(events, list) or not all(isinstance(e, dict) and "kind" in e for e in events):
            raise TypeError("events is not a list of {kind, ...}")
    except (ValueError, KeyError, TypeError) as err:
        raise SpeechRNNError(f"timeline {path} is malformed ({err!r}); write it as {FORMAT}") from err
    return timeline


def keywords_of(path: Path) -> list[dict]:
    """The keyword events of a stream's timeline, each with a label and finite ``start_s <= end_s``."""
    keywords = [e for e in read_timeline(path)["events"] if e["kind"] == "keyword"]
    for event in keywords:
        times = [event.get("start_s"), event.get("end_s")]
        if not (isinstance(event.get("label"), str) and all(isinstance(t, (int, float)) and math.isfinite(t)
                                                             for t in times) and times[0] <= times[1]):
            raise SpeechRNNError(f"timeline {Path(path).with_suffix('.json')} holds a keyword {event} without a "
                                 f"label and finite start_s <= end_s; write it as {FORMAT}")
    return keywords
