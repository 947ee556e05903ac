"""What ``speechrnn stream`` ends on equals what ``speechrnn predict`` says, through the command line.

Each clip is streamed alone (``speechrnn stream CKPT clip --posteriors out.jsonl``) and
predicted (``speechrnn predict CKPT clip --top-k <all labels> --json``); the last streamed
frame's posteriors must equal the offline ones. Prints the largest difference per clip and exits
1 if any exceeds the tolerance.

    python -m benchmarks.stream_parity CKPT CLIP [CLIP ...] [--tolerance 1e-4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from speechrnn.checkpoint import load_checkpoint


def speechrnn(*args) -> None:
    subprocess.run([sys.executable, "-m", "speechrnn.cli", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    labels = load_checkpoint(args.checkpoint).labels
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        streamed, predicted = Path(scratch) / "stream.jsonl", Path(scratch) / "predict.json"
        for clip in args.clips:
            speechrnn("stream", args.checkpoint, clip, "--posteriors", streamed)
            speechrnn("predict", args.checkpoint, clip, "--top-k", len(labels), "--json", predicted)
            last = json.loads(streamed.read_text().splitlines()[-1])["posteriors"]
            offline = dict(json.loads(predicted.read_text())[0]["top"])
            difference = max(abs(last[label] - offline[label]) for label in labels)
            top = max(offline, key=offline.get)
            print(f"{clip.name}: max |stream - predict| = {difference:.2e} (top: {top} {offline[top]:.3f})")
            worst = max(worst, difference)
    print(f"{len(args.clips)} clips, largest difference {worst:.2e} (tolerance {args.tolerance:g})")
    return int(worst > args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
