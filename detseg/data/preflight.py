"""Before epoch 1: apply ``data.bad_samples`` to what the readers found, and say what reading changes.

Training builds every reader as the dataset checker does (``strict=False``,
``check_image_sizes=True``): each image header is read in threads, so a missing, unreadable or
truncated image, a size that disagrees with the annotations, or a bad mask is found when the
datasets are built, not hours into a run; and each box that loading will clip or drop is
recorded then, from the sizes, without decoding (see :class:`~detseg.data.sample.ProblemLog`
and :func:`~detseg.data.sample.box_changes`). :func:`preflight` then, for the train and val
splits together:

* raises one :class:`~detseg.data.sample.DatasetError` line naming the first files and the
  count of each kind when a fatal problem was found (``data.bad_samples=error``), or, with
  ``skip``, only when one is not an unusable image (:data:`~detseg.data.sample.IMAGE_PROBLEMS`):
  leaving out single objects or lines would train on silently edited labels;
* prints, on rank 0, one ``[data]`` line per split for the images left out (``skip``: count per
  kind, the first files and the file listing all of them) and one for the boxes and annotations
  that reading drops or clips (count per kind, an example naming the file and the annotation id,
  object index or ``file:line``). For a COCO validation split it adds that those boxes stay in
  the json that ``tools/eval.py`` scores.

``tools/check_dataset.py`` reports the same kinds from the same logs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

from .sample import IMAGE_PROBLEMS, PROBLEM_KINDS, DatasetError, DetectionDataset

BAD_SAMPLES_FILE = "bad_samples.txt"
"""Name of the list of left-out images written in the caller's ``report_dir``."""

POLICIES = ("error", "skip")

_SHOWN = 3  # files named per line of the printed report

#: the kinds (reported only) that change what training sees
_BOX_KINDS = ("degenerate_annotations", "invalid_polygons", "degenerate_boxes", "boxes_fully_outside",
              "boxes_partly_outside")


def _short(text: str) -> str:
    """A problem text with its leading path shortened to the file name (for one-line reports)."""
    head, sep, rest = text.partition(": ")
    return f"{Path(head).name}{sep}{rest}" if sep and ("/" in head or "\\" in head) else text


def _count(n: int, kind: str) -> str:
    return f"{n} {PROBLEM_KINDS[kind][0]}"


def preflight(datasets: Mapping[str, DetectionDataset], policy: str = "error", *, coco_val: bool = False,
              report_dir: str | Path | None = None, verbose: bool = True) -> list[str]:
    """Apply ``policy`` to the problems the readers of ``datasets`` recorded, then report.

    Args:
        datasets: split name (``train``, ``val``) -> a reader built with ``strict=False`` (its
            ``problems`` hold what it found and left out; the usable rest is the dataset).
        policy: ``data.bad_samples``: ``error`` or ``skip`` (see the module docstring).
        coco_val: the ``val`` split is a COCO json, which ``tools/eval.py`` scores as it is.
        report_dir: where ``skip`` writes :data:`BAD_SAMPLES_FILE` (every left-out image, one a
            line, naming the file and why); ``None``: a new file in the temporary folder. The
            printed line names it.
        verbose: print the report lines and write the list (rank 0 only).

    Returns:
        The report lines (printed when ``verbose``).

    Raises:
        DatasetError: one line, ``data.<split>: <source>: <count> <kind>, ...; e.g. <files>``,
            for the splits that cannot be trained on under ``policy`` (or, under ``skip``, that
            have no image left).
        ValueError: an unknown ``policy``.
    """
    if policy not in POLICIES:
        raise ValueError(f"data.bad_samples must be one of {POLICIES}, got {policy!r}")
    errors: dict[str, list[str]] = {}  # summary -> splits
    skippable = True
    for name, dataset in datasets.items():
        log = dataset.problems
        blocking = {k: n for k, n in log.fatal.items() if policy == "error" or k not in IMAGE_PROBLEMS}
        if blocking:
            errors.setdefault(log.summary(log.source, blocking), []).append(f"data.{name}")
            skippable &= all(k in IMAGE_PROBLEMS for k in blocking)
    if errors:
        hint = (" (data.bad_samples=skip trains without these images)" if policy == "error" and skippable else
                " (data.bad_samples=skip leaves out unusable images only; fix these annotations)" if policy == "skip"
                else "")
        raise DatasetError(" | ".join(f"{' and '.join(names)}: {text}" for text, names in errors.items()) + hint)
    for name, dataset in datasets.items():
        log = dataset.problems
        if log.left_out and not len(dataset):
            raise DatasetError(f"data.{name}: every image was left out: {log.summary(log.source)}")

    left_out = [f"data.{name}: {text}" for name, dataset in datasets.items() for text in dataset.problems.left_out]
    listed = _write_list(left_out, report_dir) if left_out and verbose else None
    lines = []
    for name, dataset in datasets.items():
        log = dataset.problems
        if log.left_out:
            kinds = ", ".join(_count(n, k) for k, n in log.fatal.items())
            shown = "; ".join(_short(t) for t in log.left_out[:_SHOWN])
            lines.append(f"[data] {name}: left out {len(log.left_out)} of {len(log.left_out) + len(dataset)} images "
                         f"(data.bad_samples=skip): {kinds}; e.g. {shown}"
                         + (f"; full list: {listed}" if listed else ""))
        changes = [f"{_count(log.counts[k], k)}, e.g. {_short(log.examples[k][0])}" for k, (_, fatal)
                   in PROBLEM_KINDS.items() if log.counts.get(k) and not fatal]
        if changes:
            line = f"[data] {name}: " + "; ".join(changes)
            if name == "val" and coco_val and any(k in log.counts for k in _BOX_KINDS):
                line += (" -- validation during training scores against the boxes as read; tools/eval.py scores "
                         "the COCO json as it is, where these stay (a dropped box there is an object to find)")
            lines.append(line)
    if verbose:
        for line in lines:
            print(line, flush=True)
    return lines


def _write_list(lines: list[str], report_dir: str | Path | None) -> Path:
    """Write ``lines`` to ``report_dir/bad_samples.txt`` (or a new temporary file)."""
    if report_dir is not None:
        path = Path(report_dir) / BAD_SAMPLES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        with tempfile.NamedTemporaryFile("w", prefix="detseg_bad_samples_", suffix=".txt", delete=False) as f:
            path = Path(f.name)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
