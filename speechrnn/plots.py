"""Accuracy against sequence length: one line per run, the figure speechrnn exists to show."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
from matplotlib.backend_bases import FigureCanvasBase
from torch import Tensor

from speechrnn.errors import SpeechRNNError
from speechrnn.models.gradient_decay import decay_factor

# what savefig can write; no suffix gets ".png" (see save_figure)
FIGURE_SUFFIXES = frozenset({"", *(f".{kind}" for kind in FigureCanvasBase.get_supported_filetypes())})


def bucket_centres(edges: list[int], rows: list[list]) -> list[float]:
    """A representative length (frames) per bucket: its midpoint; the open last bucket 1.25x its edge."""
    bounds = [0, *edges]
    centres = [(lo + hi) / 2 for lo, hi in pairwise(bounds)]
    return (centres + [bounds[-1] * 1.25])[: len(rows)]


def plot_accuracy_by_length(runs: dict[str, dict], path: Path, hop_ms: float | None = None,
                            title: str = "Test accuracy against sequence length") -> Path:
    """Write a PNG with one line per run.

    ``runs`` maps a run name to ``{"edges": [...], "buckets": [[name, count, accuracy], ...]}``;
    empty buckets (accuracy NaN or count 0) are left out of the line.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, table in runs.items():
        centres = bucket_centres(table["edges"], table["buckets"])
        points = [(x, acc) for x, (_, count, acc) in zip(centres, table["buckets"])
                  if count and acc is not None and not math.isnan(acc)]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, [100 * y for y in ys], marker="o", label=name)
    unit = "frames" if hop_ms is None else f"frames ({hop_ms:g} ms each)"
    ax.set(xlabel=f"sequence length, {unit}", ylabel="accuracy (%)", title=title, ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_speaker_accuracy(runs: dict[str, dict[str, float]], intervals: dict[str, tuple[float, float]],
                          path: Path, title: str = "Accuracy on each held-out speaker") -> Path:
    """Write a PNG: per run (x), a point per held-out speaker, and the mean with its interval.

    ``runs`` maps a run name to ``{speaker: accuracy}``; ``intervals`` maps it to ``(low, high)``.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    speakers = sorted({speaker for accuracies in runs.values() for speaker in accuracies})
    for i, speaker in enumerate(speakers):
        xs = [x + 0.08 * (i - (len(speakers) - 1) / 2) for x, acc in enumerate(runs.values()) if speaker in acc]
        ys = [100 * acc[speaker] for acc in runs.values() if speaker in acc]
        ax.scatter(xs, ys, s=18, label=speaker)
    for x, (name, accuracies) in enumerate(runs.items()):
        mean = 100 * sum(accuracies.values()) / len(accuracies)
        low, high = (100 * bound for bound in intervals[name])
        ax.errorbar(x + 0.3, mean, yerr=[[mean - low], [high - mean]], fmt="s", color="black", capsize=4)
    ax.set_xticks(range(len(runs)), list(runs))
    ax.set_xlim(-0.6, len(runs) - 0.4)
    ax.set(ylabel="accuracy (%)", title=f"{title} (black: mean, 95% interval)", ylim=(0, 102))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path,
                   title: str = "Confusion matrix") -> Path:
    """Write a PNG of counts with true classes as rows, each row shaded by its share of the row."""
    counts = [[int(c) for c in row] for row in confusion]
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    size = min(16.0, 3 + 0.35 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90)
    ax.set_yticks(ticks, labels)
    if len(labels) <= 20:  # numbers stay legible up to about this many classes
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                if count:
                    ax.text(j, i, count, ha="center", va="center",
                            color="white" if shares[i][j] > 0.5 else "black", fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return save_figure(fig, path)


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out, write (making the folder) and close a figure; every PNG speechrnn draws goes here.

    Returns the file written: ``path``, with ``.png`` added when it has no suffix (as matplotlib
    does). A folder is refused: the caller knows what the file should be called.
    """
    path = Path(path)
    if path.is_dir():
        plt.close(fig)
        raise SpeechRNNError(f"{path} is a folder; pass the path of the .png file to write")
    path = path if path.suffix else path.with_suffix(".png")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_stream(envelope, posteriors, labels: list[str], hop_s: float, detections: list, path: Path,
                threshold: float | None = None, truth: list[dict] = (), background: str = "background",
                title: str = "Keyword spotting in a stream") -> Path:
    """Write a PNG: the waveform's envelope over the known keywords, the posteriors, the detections.

    ``envelope`` is ``(T, 2)`` (min and max of the samples around each frame), ``posteriors``
    ``(T, C)``; ``detections`` hold ``label``, ``start_s``, ``end_s``; ``truth`` the stream's
    keywords as ``{"label", "start_s", "end_s"}``.
    """
    times = [t * hop_s for t in range(len(posteriors))]
    fig, (wave_ax, post_ax) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, height_ratios=[1, 2])
    wave_ax.fill_between(times, envelope[:, 0], envelope[:, 1], color="0.35", linewidth=0)
    for word in truth:
        wave_ax.axvspan(word["start_s"], word["end_s"], color="tab:green", alpha=0.2)
        wave_ax.text(word["start_s"], 0.9, word["label"], transform=wave_ax.get_xaxis_transform(), fontsize=8)
    wave_ax.set(ylabel="waveform", title=title + " (green: spoken keywords)")
    for i, label in enumerate(labels):
        style = {"color": "0.6", "linestyle": "--"} if label == background else {}
        post_ax.plot(times, posteriors[:, i], linewidth=1, label=label, **style)
    if threshold is not None:
        post_ax.axhline(threshold, color="black", linewidth=0.8, linestyle=":")
    for det in detections:
        post_ax.axvspan(det.start_s, det.end_s + hop_s, color="tab:red", alpha=0.25)
        post_ax.text(det.start_s, 1.02, det.label, color="tab:red", fontsize=8,
                     transform=post_ax.get_xaxis_transform())
    post_ax.set(xlabel="time (s)", ylabel="posterior", ylim=(0, 1.08))
    post_ax.legend(ncol=min(len(labels), 11), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    return save_figure(fig, path)


def plot_gradient_norms(curves: dict[str, Tensor], path: Path, title: str = "Gradient through time") -> Path:
    """One log-scale line per name: norm against distance from the readout, decay factor in the legend."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours: dict[str, str] = {}  # "<model> init" and "<model> trained" share a colour
    for name, norms in curves.items():
        model, _, stage = name.rpartition(" ")
        model = model if stage in ("init", "trained") else name
        colour = colours.setdefault(model, f"C{len(colours) % 10}")
        ax.plot(torch.arange(len(norms)), norms.clamp_min(1e-30), color=colour,
                linestyle="--" if stage == "init" else "-", label=f"{name} (x{decay_factor(norms):.3f}/step)")
    ax.set(yscale="log", xlabel="distance from the readout (frames)", ylabel="mean ||d loss / d x_t||",
           title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def plot_operating_curves(curves: dict[str, list], path: Path, target: tuple[float, float] | None = None,
                          title: str = "Keyword detection against false alarms") -> Path:
    """One line per spotter: detection rate against false alarms per hour (symmetric log scale).

    ``curves`` maps a name to ``[[threshold, detection_rate, false_alarms_per_hour], ...]``;
    ``target`` is ``(false_alarms_per_hour, detection_rate)``, marked with a star.
    """
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colours = len(plt.rcParams["axes.prop_cycle"])
    for i, (name, curve) in enumerate(curves.items()):
        points = sorted((alarms, 100 * rate) for _, rate, alarms in curve)
        # past the colour cycle the colours repeat: a second line style tells those lines apart
        ax.plot(*zip(*points), marker="o", markersize=3, label=name, linestyle="-" if i < colours else "--")
    if target is not None:
        ax.plot(target[0], 100 * target[1], marker="*", markersize=12, color="black", linestyle="", label="target")
    ax.set_xscale("symlog", linthresh=1)  # 0 false alarms stays on the axis
    ax.set(xlabel="false alarms per hour (keyword-free stream)", ylabel="keywords detected (%)", title=title,
           ylim=(0, 102))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: the target is top left
    return save_figure(fig, path)
