"""The feature cache: one contiguous frame array per split, plus offsets, targets and a manifest.

Layout of ``<cache_dir>/<dataset>-<task>-<key>/``::

    manifest.json              settings, labels, keys, array shapes and byte sizes, skipped files
    <split>.feats.npy          (N_frames, F) float32, utterances back to back
    <split>.offsets.npy        (N + 1,) int64, utterance i is frames offsets[i]:offsets[i+1]
    <split>.targets.npy        (N,) int64 class ids, or (N_frames,) for framewise tasks
    <split>.speech_lengths.npy (N,) int64 frames of real audio (before padding to a fixed length)

``key`` hashes the utterance list and the feature settings, so changed settings or a changed
corpus get a new cache. The whole folder is written under a temporary name and renamed into
place; a folder whose files do not match its manifest (truncated, partial) is rebuilt.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from speechrnn.data.audio import load_utterance
from speechrnn.data.corpus import SPLITS, Utterance
from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SILENCE = "sil"  # framewise label of frames that no phone segment covers
ARRAYS = ("feats", "offsets", "targets", "speech_lengths")
EXTRACT_BATCH = 64  # utterances per MFCC call
DECODE_AHEAD = 4  # batches decoded ahead of the MFCC, bounding the waveforms held in memory


@dataclass
class SplitFeatures:
    """One split of the cache, in memory."""

    feats: Tensor  # (N_frames, F) float32
    offsets: Tensor  # (N + 1,) int64
    targets: Tensor  # (N,) or (N_frames,) int64
    speech_lengths: Tensor  # (N,) int64 frames
    keys: list[str]

    @property
    def lengths(self) -> Tensor:  # (N,) frames
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return len(self.keys)


def cache_key(utterances: Sequence[Utterance], settings: FeatureSettings, task: str,
              labels: Sequence[str]) -> str:
    """Hash of everything that decides the cache's contents (file sizes stand in for contents)."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "features": asdict(settings), "task": task, "labels": list(labels)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for utt in utterances:
        size = os.stat(utt.path).st_size if os.path.exists(utt.path) else -1
        record = asdict(utt) | {"path": str(utt.path), "size": size}
        digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def frame_targets(utt: Utterance, num_frames: int, hop_s: float, label_ids: dict[str, int]) -> np.ndarray:
    """The phone under each frame's centre (frame t is centred at t * hop_s); ``sil`` elsewhere."""
    centres = np.arange(num_frames) * hop_s
    targets = np.full(num_frames, label_ids[SILENCE], dtype=np.int64)
    for start_s, end_s, phone in utt.phones:
        if phone not in label_ids:
            raise SpeechRNNError(f"{utt.path}: phone {phone!r} is not in the vocabulary {sorted(label_ids)}")
        targets[(centres >= start_s) & (centres < end_s)] = label_ids[phone]
    return targets


class FeatureCache:
    """A cache folder: build it once from utterances, then load each split."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())

    def is_complete(self) -> bool:
        """True when the manifest exists and every array has the size it records."""
        try:
            arrays = self.manifest()["arrays"]
        except (OSError, ValueError, KeyError):
            return False
        return all(
            (self.directory / name).is_file() and (self.directory / name).stat().st_size == meta["bytes"]
            for name, meta in arrays.items()
        )

    def build(self, utterances: Sequence[Utterance], settings: FeatureSettings, task: str,
              labels: Sequence[str], dataset: str, key: str) -> None:
        """Decode, extract and write every split, then rename the folder into place."""
        if self.directory.exists():
            log.warning("rebuilding incomplete feature cache %s", self.directory)
            shutil.rmtree(self.directory)
        staging = self.directory.with_name(f"{self.directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        manifest = {"format": CACHE_FORMAT, "key": key, "dataset": dataset, "task": task,
                    "features": asdict(settings), "labels": list(labels), "splits": {},
                    "arrays": {}, "skipped": []}
        # on the GPU when there is one: the batched STFT is the cost once decoding is parallel
        extractor = MFCC(settings).to("cuda" if torch.cuda.is_available() else "cpu")
        label_ids = {label: i for i, label in enumerate(labels)}
        try:
            for split in SPLITS:
                members = [u for u in utterances if u.split == split]
                arrays, keys, skipped = _extract_split(members, extractor, task, label_ids, split)
                manifest["skipped"] += skipped
                manifest["splits"][split] = {"utterances": len(keys), "frames": len(arrays["feats"]),
                                             "keys": keys}
                for name, array in arrays.items():
                    filename = f"{split}.{name}.npy"
                    np.save(staging / filename, array)
                    manifest["arrays"][filename] = {"shape": list(array.shape), "dtype": str(array.dtype),
                                                    "bytes": (staging / filename).stat().st_size}
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
            os.replace(staging, self.directory)
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            if err.errno == errno.ENOSPC:
                raise SpeechRNNError(
                    f"no room left to write the feature cache in {staging.parent}; free some space or "
                    "point SPEECHRNN_CACHE_DIR (or data.cache_dir) at a disk with room"
                ) from err
            raise
        if not any(manifest["splits"][s]["utterances"] for s in SPLITS):
            raise SpeechRNNError(f"no usable audio among the {len(utterances)} files of {dataset}")

    def load(self, split: str) -> SplitFeatures:
        arrays = {}
        for name in ARRAYS:
            path = self.directory / f"{split}.{name}.npy"
            arrays[name] = torch.from_numpy(np.load(path, allow_pickle=False))
        return SplitFeatures(**arrays, keys=self.manifest()["splits"][split]["keys"])


def _extract_split(members, extractor, task, label_ids, split):
    """Features of one split; unreadable files are skipped with a warning and listed.

    A thread pool decodes a few batches ahead of the MFCC (soundfile and torch release the GIL).
    Files go in order of size, so each MFCC batch holds similar lengths and little padding.
    """
    settings = extractor.settings
    hop_s = settings.hop_length / settings.sample_rate
    by_size = sorted(members, key=_size_hint)
    feats, targets, speech_lengths, keys, skipped = [], [], [], [], []
    progress = tqdm(total=len(members), unit="clip", desc=f"features {split}", disable=not members,
                    leave=False)
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool, progress, torch.inference_mode():
        for results in _decoded_batches(pool, by_size, settings.sample_rate):
            for utt, result in results:
                if isinstance(result, SpeechRNNError):
                    log.warning("skipping %s", result)
                    skipped.append({"key": utt.key, "path": str(utt.path), "reason": str(result)})
            chunk = [(utt, *result) for utt, result in results if not isinstance(result, SpeechRNNError)]
            progress.update(len(results))
            if not chunk:
                continue
            lengths = torch.tensor([len(wave) for _, wave, _ in chunk])
            waves = torch.nn.utils.rnn.pad_sequence([wave for _, wave, _ in chunk], batch_first=True)
            frames = extractor(waves.to(extractor.window.device), lengths)
            counts = [len(f) for f in frames]
            for (utt, _, speech_samples), utt_feats in zip(chunk, torch.cat(frames).cpu().split(counts)):
                feats.append(utt_feats.numpy())
                keys.append(utt.key)
                speech_lengths.append(min(len(utt_feats), settings.num_frames(speech_samples)))
                if task == "phones":
                    targets.append(frame_targets(utt, len(utt_feats), hop_s, label_ids))
                elif utt.label in label_ids:
                    targets.append(label_ids[utt.label])
                else:
                    raise SpeechRNNError(
                        f"{utt.path}: label {utt.label!r} is not in the vocabulary {list(label_ids)}"
                    )
    order = np.argsort(keys, kind="stable")  # cache order follows the corpus's keys
    lengths = np.array([len(feats[i]) for i in order], dtype=np.int64)
    dim = settings.feature_dim
    arrays = {
        "feats": np.concatenate([feats[i] for i in order]) if feats else np.zeros((0, dim), np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "targets": (np.concatenate([targets[i] for i in order] or [np.zeros(0)]) if task == "phones"
                    else np.array([targets[i] for i in order])).astype(np.int64),
        "speech_lengths": np.array([speech_lengths[i] for i in order], dtype=np.int64),
    }
    return arrays, [keys[i] for i in order], skipped


def _try_load(utt: Utterance, sample_rate: int):
    try:
        return load_utterance(utt, sample_rate)
    except SpeechRNNError as err:
        return err


def _decoded_batches(pool, members: Sequence[Utterance], sample_rate: int) -> Iterator[list]:
    """``(utterance, (wave, speech_samples) or SpeechRNNError)`` in batches of EXTRACT_BATCH."""
    starts = iter(range(0, len(members), EXTRACT_BATCH))
    pending = deque()

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            batch = members[start : start + EXTRACT_BATCH]
            pending.append([(u, pool.submit(_try_load, u, sample_rate)) for u in batch])

    for _ in range(DECODE_AHEAD):
        submit()
    while pending:
        batch = pending.popleft()
        submit()
        yield [(utt, future.result()) for utt, future in batch]


def _size_hint(utt: Utterance) -> tuple[bool, float]:
    """Sorts utterances roughly by length before decoding: windows by duration, files by bytes."""
    if utt.duration_s is not None:
        return (False, utt.duration_s)
    return (True, os.stat(utt.path).st_size if os.path.exists(utt.path) else 0)
