"""The feature cache: one contiguous frame array per split, plus offsets, targets and a manifest.

Layout of ``<cache_dir>/<dataset>-<task>-<key>/``::

    manifest.json              settings, labels, keys, array shapes and byte sizes, skipped files
    <split>.feats.npy          (N_frames, F) float32, utterances back to back
    <split>.offsets.npy        (N + 1,) int64, utterance i is frames offsets[i]:offsets[i+1]
    <split>.targets.npy        (N,) int64 class ids, or (N_frames,) for framewise tasks
    <split>.speech_lengths.npy (N,) int64 frames of real audio (before padding to a fixed length)

``key`` hashes the utterance list, a fingerprint of each file (see :func:`file_fingerprint`) and
the feature settings, so changed settings or changed audio get a new cache. The whole folder is
written under a temporary name (``<name>.tmp-<host>-<pid>``) and renamed into place; a folder
whose files do not match its manifest (truncated, partial) is rebuilt, and the staging folders
of builds that were killed are removed by the next build.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
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
from speechrnn.files import write_json
from speechrnn.processes import HOST, pid_alive

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: files fingerprinted by their inode status (ctime, inode); audio resampled by soxr
ARRAYS = ("feats", "offsets", "targets", "speech_lengths")
EXTRACT_BATCH = 64  # utterances per MFCC call
DECODE_AHEAD = 8  # batches in flight at once: keeps every core busy, bounds the memory held
STAGING = re.compile(r"\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$")  # a build's folder before its rename
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_A_FOLDER = (errno.ENOTDIR, errno.EEXIST)  # mkdir where a file is
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


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
    """Hash of everything that decides the cache's contents, each file by its fingerprint."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "features": asdict(settings), "task": task, "labels": list(labels)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    fingerprints = {}  # windows of one file (Speech Commands' silence clips) share its fingerprint
    for utt in utterances:
        if utt.path not in fingerprints:
            fingerprints[utt.path] = file_fingerprint(utt.path)
        record = asdict(utt) | {"path": str(utt.path), "file": fingerprints[utt.path]}
        digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def file_fingerprint(path: Path) -> list:
    """``[size, mtime_ns, ctime_ns, inode]``, as git's index compares them; ``[-1]`` if missing.

    A write anywhere in a file sets its status-change time (ctime) to now, and no system call
    sets it back: ``os.utime``, ``cp -p``, ``rsync -t`` and editors restore the modification
    time only, so an edit of a few samples, same size and old time stamp, still gets new
    features. A file replaced by another (``mv``, a fresh copy) has a new inode. One ``stat`` a
    file keeps the key cheap for a 100k-file corpus, where hashing the contents would read
    gigabytes before every run. The price: a change of status alone (``chmod``, ``chown``, a
    rename, the corpus copied elsewhere) rebuilds the cache too; and a file system that does not
    keep ctime (some FUSE and network mounts report the modification time) hides such an edit.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return [-1]
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


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
        # on the GPU when there is one: the batched STFT is the cost once decoding is parallel
        extractor = MFCC(settings).to("cuda" if torch.cuda.is_available() else "cpu")
        staging = self._staging()
        try:
            manifest = _write_splits(staging, utterances, extractor, task, labels)
            write_json(staging / "manifest.json", {"format": CACHE_FORMAT, "key": key, "dataset": dataset,
                                                   "task": task, "features": asdict(settings), **manifest})
            self._move_into_place(staging)
        except OSError as err:
            _raise_disk_error(err, self.directory.parent)
            raise
        finally:  # whatever stopped the build, Ctrl+C included, leaves no half-written folder
            shutil.rmtree(staging, ignore_errors=True)
        if not any(manifest["splits"][s]["utterances"] for s in SPLITS):
            raise SpeechRNNError(f"no usable audio among the {len(utterances)} files of {dataset}")

    def _staging(self) -> Path:
        """A fresh, empty ``<name>.tmp-<host>-<pid>`` beside the cache; killed builds' ones removed."""
        parent = self.directory.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            for old in parent.glob("*.tmp-*"):
                match = STAGING.search(old.name)
                if match and match["host"] in (None, HOST) and not pid_alive(int(match["pid"])):
                    log.warning("removing %s, left by a feature cache build that was stopped", old)
                    shutil.rmtree(old, ignore_errors=True)
            if self.directory.exists():
                log.warning("rebuilding incomplete feature cache %s", self.directory)
                shutil.rmtree(self.directory)
            staging = self.directory.with_name(f"{self.directory.name}.tmp-{HOST}-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        except OSError as err:
            _raise_disk_error(err, parent)
            raise
        return staging

    def _move_into_place(self, staging: Path) -> None:
        """Rename ``staging`` to the cache folder, unless another process finished the same build first."""
        try:
            os.replace(staging, self.directory)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not self.is_complete():
                raise
            log.info("feature cache %s was built by another process meanwhile", self.directory)

    def load(self, split: str) -> SplitFeatures:
        arrays = {}
        for name in ARRAYS:
            path = self.directory / f"{split}.{name}.npy"
            arrays[name] = torch.from_numpy(np.load(path, allow_pickle=False))
        return SplitFeatures(**arrays, keys=self.manifest()["splits"][split]["keys"])


def _write_splits(staging: Path, utterances: Sequence[Utterance], extractor: MFCC, task: str,
                  labels: Sequence[str]) -> dict:
    """Extract and write every split's arrays into ``staging``; the manifest's entries for them."""
    label_ids = {label: i for i, label in enumerate(labels)}
    manifest = {"labels": list(labels), "splits": {}, "arrays": {}, "skipped": []}
    for split in SPLITS:
        members = [u for u in utterances if u.split == split]
        arrays, keys, skipped = _extract_split(members, extractor, task, label_ids, split)
        manifest["skipped"] += skipped
        manifest["splits"][split] = {"utterances": len(keys), "frames": len(arrays["feats"]), "keys": keys}
        for name, array in arrays.items():
            filename = f"{split}.{name}.npy"
            manifest["arrays"][filename] = {"shape": list(array.shape), "dtype": str(array.dtype),
                                            "bytes": save_array(staging / filename, array)}
    return manifest


def save_array(path: Path, array: np.ndarray) -> int:
    """Write ``array`` in ``.npy`` format and return the file's size in bytes.

    ``np.save`` writes through C stdio, whose failure (a full disk) reaches Python as an OSError
    without an errno; writing with ``os.write`` keeps the errno, so a full disk is reported as one.
    """
    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (header.getbuffer(), memoryview(array.reshape(-1).view(np.uint8))):
            while chunk:
                chunk = chunk[os.write(fd, chunk):]  # a write may take only part of a large chunk
    finally:
        os.close(fd)
    return os.stat(path).st_size


def _raise_disk_error(err: OSError, folder: Path) -> None:
    """Raise a SpeechRNNError naming ``folder`` and the fix when ``err`` is a full or unwritable disk."""
    where = "point SPEECHRNN_CACHE_DIR (or data.cache_dir) at"
    if err.errno in NO_SPACE:
        message = f"no room left to write the feature cache in {folder}; free some space or {where} a disk with room"
    elif err.errno in NOT_A_FOLDER:
        message = (f"the feature cache folder {folder} is a file, or lies inside one; remove that file or "
                   f"{where} a folder")
    elif err.errno in NOT_WRITABLE:
        message = f"cannot write the feature cache in {folder} ({err.strerror}); {where} a writable folder"
    else:
        return
    raise SpeechRNNError(message) from err


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


def _try_load(utt: Utterance, settings: FeatureSettings):
    try:
        return load_utterance(utt, settings.sample_rate, settings.min_samples)
    except SpeechRNNError as err:
        return err


def _extract_batch(extractor: MFCC, batch: Sequence[Utterance]) -> list:
    """``(utterance, (feats (T, F) array, speech_samples) or SpeechRNNError)`` for each of ``batch``."""
    results = [(utt, _try_load(utt, extractor.settings)) for utt in batch]
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
