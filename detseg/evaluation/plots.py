"""Evaluation pictures: precision-recall curves, F1-confidence curves, a detection confusion matrix.

Figures are drawn with :class:`matplotlib.figure.Figure` and saved by its Agg canvas, never
through ``pyplot``: no global backend switch, no window, nothing left open between calls, and
safe in a headless training job. Inputs are plain numpy arrays, so the functions also serve
results that did not come from :class:`~detseg.evaluation.coco.CocoEvaluator`.

Shape shorthand: K classes, R recall points (101 for COCO), C confidence thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_confusion_matrix", "plot_f1_curves", "plot_pr_curves"]

_MAX_LEGEND = 20  # per-class curves are drawn always, but named in the legend only up to this many


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, tight_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _curve_axes(fig: Figure, xlabel: str, ylabel: str, title: str):
    ax = fig.add_subplot(1, 1, 1)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    return ax


def plot_pr_curves(precision: np.ndarray, recall: np.ndarray, class_names: Sequence[str],
                   path: str | Path, *, title: str = "Precision-recall (IoU 0.5)") -> Path:
    """Per-class precision-recall curves and their mean; the legend gives each class's AP.

    Args:
        precision: [R, K] interpolated precision at the recall points, as pycocotools'
            ``eval["precision"][t, :, :, area, maxdet]``; columns of -1 (classes without
            ground truth) are left out of the plot and the mean.
        recall: [R] recall points (``params.recThrs``).
        class_names: K names.
        path: PNG to write.

    Returns:
        ``path``.
    """
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    valid = (precision > -1).all(axis=0)
    fig = _new_figure((7, 6))
    ax = _curve_axes(fig, "Recall", "Precision", title)
    named = valid.sum() <= _MAX_LEGEND
    for k in np.flatnonzero(valid):
        ax.plot(recall, precision[:, k], lw=1, alpha=0.8 if named else 0.3, color=None if named else "grey",
                label=f"{class_names[k]} {precision[:, k].mean():.3f}" if named else None)
    if valid.any():
        mean = precision[:, valid].mean(axis=1)
        ax.plot(recall, mean, lw=3, color="blue", label=f"all classes {mean.mean():.3f} AP50")
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, path)


def plot_f1_curves(thresholds: np.ndarray, f1: np.ndarray, class_names: Sequence[str],
                   path: str | Path, *, title: str = "F1 vs confidence") -> Path:
    """Per-class F1 against the confidence threshold, the class mean and its maximum.

    Args:
        thresholds: [C] confidence thresholds (detections with score >= threshold kept).
        f1: [K, C]; rows of NaN (classes without ground truth) are left out.
        class_names: K names.
        path: PNG to write.

    Returns:
        ``path``.
    """
    thresholds = np.asarray(thresholds, np.float64)
    f1 = np.asarray(f1, np.float64).reshape(-1, len(thresholds))
    valid = ~np.isnan(f1).any(axis=1)
    fig = _new_figure((7, 6))
    ax = _curve_axes(fig, "Confidence", "F1", title)
    named = valid.sum() <= _MAX_LEGEND
    for k in np.flatnonzero(valid):
        ax.plot(thresholds, f1[k], lw=1, alpha=0.8 if named else 0.3, color=None if named else "grey",
                label=class_names[k] if named else None)
    if valid.any():
        mean = f1[valid].mean(axis=0)
        i = len(mean) - 1 - int(np.argmax(mean[::-1]))  # ties: the higher threshold, as F1Table
        ax.plot(thresholds, mean, lw=3, color="blue",
                label=f"all classes {mean[i]:.2f} at {thresholds[i]:.3f}")
        ax.axvline(thresholds[i], color="blue", ls="--", lw=1)
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path, *,
                          normalize: bool = True, title: str = "Confusion matrix") -> Path:
    """Heat map of a [K + 1, K + 1] detection confusion matrix (rows true, columns predicted,
    last row/column background), as from :func:`~detseg.evaluation.coco.detection_confusion_matrix`.

    Args:
        matrix: [K + 1, K + 1] counts.
        class_names: K names (``"background"`` is appended).
        path: PNG to write.
        normalize: divide each row by its total (what fraction of class k's ground truth went
            where; the background row by the number of false positives); counts are printed in
            the cells when K is small either way.

    Returns:
        ``path``.
    """
    matrix = np.asarray(matrix, np.float64)
    names = list(class_names) + ["background"]
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"matrix {matrix.shape} does not fit {len(class_names)} classes + background")
    shown = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalize else matrix
    n = len(names)
    side = min(max(6.0, 0.15 * n + 4), 14.0)
    fig = _new_figure((side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xlabel="Predicted", ylabel="True", title=title + (" (row-normalized)" if normalize else ""))
    if n <= 100:
        font = 8 if n <= 30 else 5
        ax.set_xticks(range(n), names, rotation=90, fontsize=font)
        ax.set_yticks(range(n), names, fontsize=font)
    if n <= 15:
        for (r, c), v in np.ndenumerate(matrix):
            if v:
                ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=8,
                        color="white" if shown[r, c] > 0.5 * max(shown.max(), 1e-9) else "black")
    return _save(fig, path)
