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
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from speechrnn.data.audio import load_utterance
from speechrnn.data.corpus import SILENCE, SPLITS, Utterance
from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
ARRAYS = ("feats", "offsets", "targets", "speech_lengths")
EXTRACT_BATCH = 64  # utterances per MFCC call
DECODE_AHEAD = 8  # batches in flight at once: keeps every core busy, bounds the memory held


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

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.feats, self.offsets, self.targets, self.speech_lengths))

    def to(self, device: torch.device) -> SplitFeatures:
        """The same split with its arrays on ``device``."""
        return SplitFeatures(self.feats.to(device), self.offsets.to(device), self.targets.to(device),
                             self.speech_lengths.to(device), self.keys)


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

    Each worker thread decodes and extracts whole batches with single-threaded torch ops (torch
    and soundfile release the GIL), so batches run in parallel on all cores; multi-threaded ops
    beside busy decoders spend their time waiting on each other (six times slower on two cores).
    Files go in order of size, so each MFCC batch holds similar lengths and little padding.
    """
    settings = extractor.settings
    hop_s = settings.frame_s
    by_size = sorted(members, key=_size_hint)
    batches = [by_size[i : i + EXTRACT_BATCH] for i in range(0, len(by_size), EXTRACT_BATCH)]
    feats, targets, speech_lengths, keys, skipped = [], [], [], [], []
    progress = tqdm(total=len(members), unit="clip", desc=f"features {split}", disable=not members,
                    leave=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool, progress:
            for results in _in_order(pool, partial(_extract_batch, extractor), batches):
                progress.update(len(results))
                for utt, result in results:
                    if isinstance(result, SpeechRNNError):
                        log.warning("skipping %s", result)
                        skipped.append({"key": utt.key, "path": str(utt.path), "reason": str(result)})
                        continue
                    utt_feats, speech_samples = result
                    feats.append(utt_feats)
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
    finally:
        torch.set_num_threads(threads)
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


def _extract_batch(extractor: MFCC, batch: Sequence[Utterance]) -> list:
    """``(utterance, (feats (T, F) array, speech_samples) or SpeechRNNError)`` for each of ``batch``."""
    results = [(utt, _try_load(utt, extractor.settings.sample_rate)) for utt in batch]
    decoded = [result for _, result in results if not isinstance(result, SpeechRNNError)]
    if not decoded:
        return results
    lengths = torch.tensor([len(wave) for wave, _ in decoded])
    waves = torch.nn.utils.rnn.pad_sequence([wave for wave, _ in decoded], batch_first=True)
    with torch.inference_mode():
        frames = extractor(waves.to(extractor.window.device), lengths)
    counts = [len(f) for f in frames]
    on_host = torch.cat(frames).cpu().numpy()  # one transfer from the GPU, not one per utterance
    extracted = iter(zip(np.split(on_host, np.cumsum(counts)[:-1]), (n for _, n in decoded)))
    return [(utt, result if isinstance(result, SpeechRNNError) else next(extracted))
            for utt, result in results]


def _in_order(pool, function, items: Sequence) -> Iterator:
    """``function(item)`` for each item, in order, at most DECODE_AHEAD of them running at once."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) > DECODE_AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _size_hint(utt: Utterance) -> tuple[bool, float]:
    """Sorts utterances roughly by length before decoding: windows by duration, files by bytes."""
    if utt.duration_s is not None:
        return (False, utt.duration_s)
    return (True, os.stat(utt.path).st_size if os.path.exists(utt.path) else 0)
