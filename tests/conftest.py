"""Shared fixtures: data modules rooted in the test's tmp_path, a tiny generated tone corpus, and a
local HTTP server that serves archives from memory (for the download tests)."""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from tones import ToneDataModule

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_data(tmp_path):
    """``make_data(cls, prepare=False, **kwargs)``: a data module reading ``tmp_path/data`` and
    caching in ``tmp_path/cache`` unless kwargs say otherwise; ``prepare=True`` also runs
    ``prepare_data()`` and ``setup("fit")``."""

    def make(cls, prepare=False, **kwargs):
        kwargs.setdefault("data_root", str(tmp_path / "data"))
        kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
        dm = cls(**kwargs)
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


@pytest.fixture
def first_batch_phones():
    """``first_batch_phones(dm, loader)``: for each utterance of the first batch that
    ``dm.<loader>_dataloader()`` yields, the phone label of each of its frames (padding cut)."""

    def phones(dm, loader):
        batch = next(iter(getattr(dm, f"{loader}_dataloader")()))
        return [
            [dm.labels[i] for i in row[:length].tolist()]
            for row, length in zip(batch.targets, batch.lengths, strict=True)
        ]

    return phones


@pytest.fixture
def tone_data(make_data):
    """A prepared three-class tone data module in a temporary data root and cache."""
    return make_data(ToneDataModule, prepare=True, length_buckets=[20, 40])


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) and honours ``Range: bytes=N-``."""

    def do_GET(self) -> None:
        self.server.range_headers.append(self.headers.get("Range"))
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """A local HTTP server at ``server.url``; put ``name -> bytes`` in ``server.files``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.files, httpd.range_headers = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
