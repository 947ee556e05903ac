"""download.py against a local HTTP server (with Range support), file:// URLs and a closed port."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile

import pytest

from speechrnn.data import download as dl
from speechrnn.errors import SpeechRNNError


def _tar_gz(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/corpus.tar.gz"


ARCHIVE = _tar_gz({"words/yes.txt": b"yes" * 1000, "readme.txt": b"hello"})


def test_download_verifies_sha256_and_renames_into_place(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest = tmp_path / "corpus.tar.gz"
    assert dl.download(f"{server.url}/corpus.tar.gz", dest, _sha256(ARCHIVE)) == dest
    assert dest.read_bytes() == ARCHIVE
    assert not dest.with_name("corpus.tar.gz.part").exists()


def test_download_accepts_md5(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest = tmp_path / "corpus.tar.gz"
    dl.download(f"{server.url}/corpus.tar.gz", dest, hashlib.md5(ARCHIVE).hexdigest())
    assert dest.read_bytes() == ARCHIVE


def test_bad_checksum_deletes_the_part_and_leaves_no_file(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest = tmp_path / "corpus.tar.gz"
    with pytest.raises(SpeechRNNError, match="sha256 checksum"):
        dl.download(f"{server.url}/corpus.tar.gz", dest, _sha256(b"something else"))
    assert list(tmp_path.iterdir()) == []


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest = tmp_path / "corpus.tar.gz"
    half = len(ARCHIVE) // 2
    dest.with_name("corpus.tar.gz.part").write_bytes(ARCHIVE[:half])
    dl.download(f"{server.url}/corpus.tar.gz", dest, _sha256(ARCHIVE))
    assert server.range_headers == [f"bytes={half}-"]
    assert dest.read_bytes() == ARCHIVE


def test_complete_part_file_is_verified_when_the_server_has_nothing_left(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest = tmp_path / "corpus.tar.gz"
    dest.with_name("corpus.tar.gz.part").write_bytes(ARCHIVE)
    dl.download(f"{server.url}/corpus.tar.gz", dest, _sha256(ARCHIVE))
    assert dest.read_bytes() == ARCHIVE


def test_file_url_ignores_range_so_a_stale_part_is_overwritten(tmp_path):
    source = tmp_path / "mirror" / "corpus.tar.gz"
    source.parent.mkdir()
    source.write_bytes(ARCHIVE)
    dest = tmp_path / "data" / "corpus.tar.gz"
    dest.parent.mkdir()
    dest.with_name("corpus.tar.gz.part").write_bytes(b"garbage from another file")
    dl.download(source.as_uri(), dest, _sha256(ARCHIVE))
    assert dest.read_bytes() == ARCHIVE


def test_no_network_error_names_the_url_and_where_to_put_the_archive(tmp_path):
    url = _closed_port_url()
    dest = tmp_path / "corpus.tar.gz"
    with pytest.raises(SpeechRNNError) as err:
        dl.download(url, dest, _sha256(ARCHIVE), timeout_s=5)
    assert url in str(err.value)
    assert f"put it at {dest}" in str(err.value)


def test_http_error_is_reported_like_no_network(server, tmp_path):
    with pytest.raises(SpeechRNNError, match="404"):
        dl.download(f"{server.url}/missing.tar.gz", tmp_path / "m.tar.gz", _sha256(ARCHIVE))


def test_manually_placed_archive_is_used_without_network(tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    dest.write_bytes(ARCHIVE)
    assert dl.download(_closed_port_url(), dest, _sha256(ARCHIVE)) == dest


def test_manually_placed_archive_with_wrong_checksum_is_rejected(tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    dest.write_bytes(ARCHIVE[:-10])
    with pytest.raises(SpeechRNNError, match=f"delete {dest}"):
        dl.download(_closed_port_url(), dest, _sha256(ARCHIVE))


def test_not_enough_disk_space_names_the_folder(server, tmp_path, monkeypatch):
    server.files["corpus.tar.gz"] = ARCHIVE
    real_disk_usage = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: real_disk_usage(p)._replace(free=10))
    with pytest.raises(SpeechRNNError, match=f"not enough disk space in {tmp_path}"):
        dl.download(f"{server.url}/corpus.tar.gz", tmp_path / "c.tar.gz", _sha256(ARCHIVE))


@pytest.mark.parametrize("suffix, mode", [("tar.gz", "w:gz"), ("tar.bz2", "w:bz2")])
def test_extract_puts_members_in_dest_dir(tmp_path, suffix, mode):
    archive = tmp_path / f"corpus.{suffix}"
    archive.write_bytes(_tar_gz({"words/yes.txt": b"yes"}, mode))
    out = dl.extract(archive, tmp_path / "corpus")
    assert (out / "words" / "yes.txt").read_bytes() == b"yes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", f"corpus.{suffix}"]


def test_extract_refuses_members_outside_dest_dir(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar_gz({"../escaped.txt": b"x"}))
    with pytest.raises(tarfile.OutsideDestinationError):
        dl.extract(archive, tmp_path / "corpus")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "corpus").exists()


def test_interrupted_extraction_restarts_cleanly(tmp_path):
    archive = tmp_path / "corpus.tar.gz"
    archive.write_bytes(ARCHIVE)
    leftover = tmp_path / ".corpus.extracting"
    (leftover / "words").mkdir(parents=True)
    (leftover / "words" / "half-written.txt").write_bytes(b"ye")
    out = dl.extract(archive, tmp_path / "corpus")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == [
        "readme.txt",
        "words/yes.txt",
    ]
    assert not leftover.exists()


def test_download_and_extract_removes_the_archive_and_skips_network_once_done(server, tmp_path):
    server.files["corpus.tar.gz"] = ARCHIVE
    dest_dir = tmp_path / "corpus"
    dl.download_and_extract(f"{server.url}/corpus.tar.gz", _sha256(ARCHIVE), dest_dir)
    assert (dest_dir / "readme.txt").read_bytes() == b"hello"
    assert not (tmp_path / "corpus.tar.gz").exists()
    assert dl.download_and_extract(_closed_port_url(), _sha256(ARCHIVE), dest_dir) == dest_dir
