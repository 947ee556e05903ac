"""Checksummed, resumable downloads and crash-safe archive extraction for corpus modules.

API (each returns the path it made, and does nothing when that path is already there):

- ``download(url, dest_file, checksum, timeout_s=60.0) -> Path``: stream ``url`` to
  ``dest_file.part`` (resuming it with an HTTP Range request when it exists), verify
  ``checksum``, then rename to ``dest_file``. ``checksum`` is a hex SHA-256 (64 digits) or
  MD5 (32 digits).
- ``extract(archive, dest_dir) -> Path``: unpack a ``.tar.gz``, ``.tar.bz2`` or ``.zip``
  so that its members land in ``dest_dir``.
- ``download_and_extract(url, checksum, dest_dir) -> Path``: both, keeping the archive next to
  ``dest_dir`` under its URL's file name only until it is unpacked.

A user without network access puts the archive at the path the error message names and runs
again; it is then checked and used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from speechrnn.errors import SpeechRNNError

CHUNK_BYTES = 1 << 20
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416  # the .part already holds every byte


def download(url: str, dest_file: Path, checksum: str, timeout_s: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest_file`` unless a file with the right checksum is already there."""
    dest_file = Path(dest_file)
    if dest_file.exists():
        _verify(dest_file, checksum, fix=f"delete {dest_file} and run again")
        return dest_file
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    part = dest_file.with_name(dest_file.name + ".part")
    try:
        _fetch(url, part, timeout_s)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        # An HTTPError's own text carries the status code; a URLError's reason is the OS error.
        reason = err if isinstance(err, urllib.error.HTTPError) else getattr(err, "reason", err)
        raise SpeechRNNError(
            f"cannot download {url} ({reason}); download it by hand and put it at {dest_file}"
        ) from err
    try:
        _verify(
            part,
            checksum,
            fix=f"the download was removed; run again or put a good copy at {dest_file}",
        )
    except SpeechRNNError:
        part.unlink()
        raise
    os.replace(part, dest_file)
    return dest_file


def extract(archive: Path, dest_dir: Path) -> Path:
    """Unpack ``archive`` into ``dest_dir`` via a temporary sibling renamed into place.

    An interrupted extraction leaves only the sibling, which the next call clears and redoes.
    """
    dest_dir = Path(dest_dir)
    if dest_dir.exists():
        return dest_dir
    scratch = dest_dir.with_name(f".{dest_dir.name}.extracting")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch)  # zipfile drops absolute and ".." parts of member names
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")  # refuses members that leave `scratch`
    os.replace(scratch, dest_dir)
    return dest_dir


def download_and_extract(url: str, checksum: str, dest_dir: Path) -> Path:
    """Make ``dest_dir`` hold the archive at ``url``; the archive is deleted once unpacked."""
    dest_dir = Path(dest_dir)
    if dest_dir.exists():
        return dest_dir
    archive = download(url, dest_dir.parent / Path(urlparse(url).path).name, checksum)
    extract(archive, dest_dir)
    archive.unlink()
    return dest_dir


def _fetch(url: str, part: Path, timeout_s: float) -> None:
    have_bytes = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if have_bytes:
        request.add_header("Range", f"bytes={have_bytes}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == HTTP_RANGE_NOT_SATISFIABLE:
            return
        raise
    with response:
        if getattr(response, "status", None) != HTTP_PARTIAL_CONTENT:
            have_bytes = 0  # the server (or a file:// URL) sent the whole file
        length = response.headers.get("Content-Length")
        todo_bytes = int(length) if length else None
        if todo_bytes is not None:
            _check_free_space(part.parent, todo_bytes)
        with (
            open(part, "ab" if have_bytes else "wb") as out,
            tqdm(
                total=None if todo_bytes is None else have_bytes + todo_bytes,
                initial=have_bytes,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
            ) as progress,
        ):
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                progress.update(len(chunk))


def _check_free_space(folder: Path, needed_bytes: int) -> None:
    free_bytes = shutil.disk_usage(folder).free
    if free_bytes < needed_bytes:
        raise SpeechRNNError(
            f"not enough disk space in {folder}: the download needs {needed_bytes / 1e9:.2f} GB "
            f"and {free_bytes / 1e9:.2f} GB are free; free some space or set a data_root elsewhere"
        )


def _verify(path: Path, checksum: str, fix: str) -> None:
    algorithm = {64: "sha256", 32: "md5"}.get(len(checksum))
    if algorithm is None:
        raise ValueError(f"checksum {checksum!r} is neither a SHA-256 nor an MD5 hex digest")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    if digest.hexdigest() != checksum.lower():
        raise SpeechRNNError(f"{path} does not match its {algorithm} checksum {checksum}; {fix}")
