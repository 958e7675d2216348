"""F1 of each class over confidence thresholds, from :meth:`~.cocoeval.FastCOCOeval.matches`.

Shape shorthand: K classes, C confidence thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["F1Table"]


@dataclass
class F1Table:
    """F1 of each class as a step function of the confidence threshold ("keep score >= thr").

    Attributes:
        scores: per class, its detections' scores sorted high to low (non-ignored only).
        cum_tp: per class, true positives among the first i + 1 of those detections.
        num_gt: [K] non-ignored ground truth per class.
    """

    scores: list[np.ndarray]
    cum_tp: list[np.ndarray]
    num_gt: np.ndarray

    @classmethod
    def from_matches(cls, matches: dict) -> F1Table:
        num_classes = len(matches["num_gt"])
        order = np.lexsort((-matches["scores"], matches["category"]))
        cat, sc, tp = matches["category"][order], matches["scores"][order], matches["tp"][order]
        bounds = np.searchsorted(cat, np.arange(num_classes + 1))
        return cls(
            scores=[sc[bounds[k]:bounds[k + 1]] for k in range(num_classes)],
            cum_tp=[np.cumsum(tp[bounds[k]:bounds[k + 1]]) for k in range(num_classes)],
            num_gt=np.asarray(matches["num_gt"], np.int64),
        )

    def f1(self, thresholds: np.ndarray) -> np.ndarray:
        """F1 [K, C] of every class at each of C thresholds; NaN for classes without ground truth.

        F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (detections kept + ground truth).
        """
        thresholds = np.asarray(thresholds, np.float64)
        out = np.full((len(self.scores), len(thresholds)), np.nan)
        for k, (sc, ctp) in enumerate(zip(self.scores, self.cum_tp)):
            if self.num_gt[k] == 0:
                continue
            kept = len(sc) - np.searchsorted(sc[::-1], thresholds, side="left")  # score >= thr
            tp = np.where(kept > 0, ctp[np.maximum(kept - 1, 0)] if len(ctp) else 0, 0)
            out[k] = 2.0 * tp / (kept + self.num_gt[k])
        return out

    def best_per_class(self) -> tuple[np.ndarray, np.ndarray]:
        """(F1 [K], threshold [K]) maximizing each class's F1 over its own scores.

        Ties go to the higher threshold (fewer detections for the same F1). A class with ground
        truth but no detection has F1 0 and threshold NaN; without ground truth both are NaN.
        """
        best_f1 = np.full(len(self.scores), np.nan)
        best_thr = np.full(len(self.scores), np.nan)
        for k, (sc, ctp) in enumerate(zip(self.scores, self.cum_tp)):
            if self.num_gt[k] == 0:
                continue
            if len(sc) == 0:
                best_f1[k] = 0.0
                continue
            last = np.r_[sc[1:] != sc[:-1], True]  # "score >= thr" keeps all of a tie
            f1 = 2.0 * ctp[last] / (np.flatnonzero(last) + 1 + self.num_gt[k])
            i = int(np.argmax(f1))  # first maximum = highest threshold
            best_f1[k], best_thr[k] = f1[i], sc[last][i]
        return best_f1, best_thr

    def best_mean(self) -> tuple[float, float]:
        """(mean F1, threshold): the one threshold maximizing F1 averaged over classes with
        ground truth (a macro average, as Ultralytics' F1 curve). Candidates are all detection
        scores; ties go to the higher threshold. ``(0.0, nan)`` without detections."""
        has_gt = self.num_gt > 0
        cands = np.unique(np.concatenate([s for s in self.scores] + [np.zeros(0)]))[::-1]
        if len(cands) == 0 or not has_gt.any():
            return (0.0 if has_gt.any() else math.nan), math.nan
        mean = self.f1(cands)[has_gt].mean(axis=0)
        i = int(np.argmax(mean))
        return float(mean[i]), float(cands[i])
