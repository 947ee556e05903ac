"""The spotter in a browser: a folder of static files that runs the exported audio graph offline.

The page (``site/``: ``index.html``, ``app.js``, ``spotter.js``, ``capture.js``) loads
``model.onnx`` with onnxruntime-web (its files copied beside it from ``web/node_modules``, pinned
by ``web/package-lock.json``; ``make web`` installs them) and ``model.json``, the description
stored in the graph. Serve it with ``python -m http.server -d SITE --bind 127.0.0.1``: nothing
is fetched from anywhere else. The folder is built beside ``out`` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from speechrnn.errors import SpeechRNNError
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.export import describe_audio, export_audio_onnx
from speechrnn.streaming.graph import AudioGraph

PAGE_FILES = ("index.html", "app.js", "spotter.js", "capture.js")
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
RUNTIME_ENV = "SPEECHRNN_ORT_WEB"  # a folder holding RUNTIME_FILES, in place of the clone's web/node_modules
MODEL_FILE = "model.onnx"


def runtime_folder() -> Path:
    """Where onnxruntime-web's files are; SpeechRNNError saying how to get them when they are not."""
    default = Path(__file__).resolve().parents[2] / "web/node_modules/onnxruntime-web/dist"
    folder = Path(os.environ.get(RUNTIME_ENV) or default)
    missing = [name for name in RUNTIME_FILES if not (folder / name).is_file()]
    if missing:
        raise SpeechRNNError(f"the page needs onnxruntime-web's {missing[0]}, not found in {folder}: run `make web` "
                             f"in the clone (npm ci in web/), or set {RUNTIME_ENV} to a folder holding "
                             f"{', '.join(RUNTIME_FILES)}")
    return folder


def check_site_folder(out: Path) -> Path:
    """Refuse an ``out`` that is a file, or a folder holding anything but an earlier page."""
    if out.exists() and not out.is_dir():
        raise SpeechRNNError(f"--out {out} is a file; the page is a folder: give a new folder name")
    if out.is_dir() and any(out.iterdir()) and not (out / MODEL_FILE).is_file():
        raise SpeechRNNError(f"--out {out} holds other files; give an empty or new folder")
    return out


def build_site(graph: AudioGraph, out: Path, point: OperatingPoint | None = None) -> Path:
    """The page for ``graph`` (detecting at ``point``, else the defaults) in folder ``out``."""
    check_site_folder(out)
    runtime = runtime_folder()
    building = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        export_audio_onnx(graph, building / MODEL_FILE, point)
        (building / "model.json").write_text(json.dumps(describe_audio(graph, point), indent=1))
        page = resources.files("speechrnn.streaming") / "site"
        for name in PAGE_FILES:
            (building / name).write_bytes((page / name).read_bytes())
        for name in RUNTIME_FILES:
            shutil.copyfile(runtime / name, building / name)
        replaced = out.with_name(f"{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(replaced)
        building.rename(out)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out
