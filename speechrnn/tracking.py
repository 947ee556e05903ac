"""Weights & Biases set-up: offline whenever no API key is configured, so nothing prompts or blocks."""

from __future__ import annotations

import netrc
import os


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def default_wandb_mode() -> None:
    """Set ``WANDB_MODE=offline`` unless the user chose a mode or has logged in."""
    if "WANDB_MODE" not in os.environ and not has_wandb_key():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
