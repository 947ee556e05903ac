"""Fixtures for the corpus tests: a local HTTP server that serves archives from memory."""

from __future__ import annotations

import http.server
import threading

import pytest


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
