"""Pictures of predictions: boxes, names, scores and translucent masks; semantic label overlays with a key.

Every function takes and returns ``[H, W, 3]`` uint8 **RGB** arrays (convert with
``cv2.cvtColor(img, cv2.COLOR_RGB2BGR)`` before ``cv2.imwrite``) and never modifies its input.
Each class keeps one colour everywhere (same index -> same colour in every picture and video).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

#: 20 well-separated colours (RGB); class ``k`` uses ``PALETTE[k % 20]``.
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
], dtype=np.uint8)


def class_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label`` (stable across pictures)."""
    return tuple(int(c) for c in PALETTE[int(label) % len(PALETTE)])


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def draw_detections(
    image: np.ndarray,
    boxes,
    labels,
    scores=None,
    masks=None,
    *,
    class_names: Sequence[str] | None = None,
    score_thresh: float = 0.0,
    mask_alpha: float = 0.45,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw boxes (xyxy absolute pixels of ``image``), ``name score`` tags and translucent masks.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        boxes: ``[N, 4]`` xyxy; labels: ``[N]`` 0-based class indices; scores: ``[N]`` or None
            (ground truth); masks: ``[N, H, W]`` bool or None. Tensors or arrays.
        class_names: names by label (else the index is written).
        score_thresh: detections below it are not drawn.

    Returns:
        A new ``[H, W, 3]`` uint8 RGB picture.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    out = image.copy()
    boxes, labels = _numpy(boxes).reshape(-1, 4), _numpy(labels).reshape(-1).astype(int)
    scores = None if scores is None else _numpy(scores).reshape(-1)
    keep = np.ones(len(labels), bool) if scores is None else scores >= score_thresh
    h, w = out.shape[:2]
    thickness = thickness or max(1, round(min(h, w) / 300))
    if masks is not None and len(labels):
        masks = _numpy(masks).astype(bool)
        for i in np.flatnonzero(keep):
            color = np.array(class_color(labels[i]), np.float32)
            region = masks[i]
            out[region] = (out[region] * (1 - mask_alpha) + color * mask_alpha).astype(np.uint8)
    font_scale = max(0.35, min(h, w) / 900)
    for i in np.flatnonzero(keep):
        color = class_color(labels[i])
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, thickness)
        name = class_names[labels[i]] if class_names and labels[i] < len(class_names) else str(labels[i])
        tag = name if scores is None else f"{name} {scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y1 + th + base + 2)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(out, tag, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color, 1, cv2.LINE_AA)
    return out


def draw_legend(image: np.ndarray, labels: Sequence[int], class_names: Sequence[str] | None = None) -> np.ndarray:
    """A key in the top-left corner: one row per class (its colour swatch and name), top to bottom.

    Label maps carry no text, so a picture of one needs this to say which colour is which class.
    Rows that do not fit the image height are left out (the last row then says how many).

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        labels: 0-based class indices, in the order to list them.
        class_names: names by label (else the index is written).

    Returns:
        A new ``[H, W, 3]`` uint8 RGB picture.
    """
    out = image.copy()
    labels = [int(k) for k in labels]
    if not labels:
        return out
    h, w = out.shape[:2]
    font_scale = max(0.35, min(h, w) / 900)
    names = [class_names[k] if class_names and k < len(class_names) else str(k) for k in labels]
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    row = th + base + 3
    fits = max(1, (h - 4) // row)
    if len(labels) > fits:
        labels, names = labels[: fits - 1], names[: fits - 1] + [f"+{len(labels) - fits + 1} more"]
    width = 4 + row + max(cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] for n in names)
    x2, y2 = min(w, width + 4), min(h, len(names) * row + 4)
    out[:y2, :x2] = (out[:y2, :x2] * 0.4).astype(np.uint8)  # darkened panel: white text reads on any image
    for i, name in enumerate(names):
        y = 2 + i * row
        if i < len(labels):
            cv2.rectangle(out, (4, y + 1), (4 + row - 4, y + row - 3), class_color(labels[i]), -1)
        cv2.putText(out, name, (4 + row, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def overlay_semantic(image: np.ndarray, label_map, *, alpha: float = 0.5, ignore_index: int = 255,
                     class_names: Sequence[str] | None = None) -> np.ndarray:
    """Blend a semantic label map (0 background, ``k + 1`` class ``k``) over ``image``.

    Background and ``ignore_index`` pixels are left as they are; class ``k`` gets
    :func:`class_color` ``(k)``, the same colour its boxes get in detection pictures, blended
    with weight ``alpha`` inside its regions and solid on their outlines (so regions stay
    visible over objects of similar colour). With ``class_names``, a key naming the classes
    present is drawn in the top-left corner (:func:`draw_legend`).
    """
    labels = _numpy(label_map).astype(np.int64)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"label map {labels.shape} does not match image {image.shape[:2]}")
    out = image.copy()
    fg = (labels > 0) & (labels != ignore_index)
    colors = PALETTE[(labels[fg] - 1) % len(PALETTE)].astype(np.float32)
    out[fg] = (out[fg] * (1 - alpha) + colors * alpha).astype(np.uint8)
    present = np.unique(labels[fg])
    for k in present:
        contours, _ = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in PALETTE[(k - 1) % len(PALETTE)]), 1)
    if class_names is not None:
        out = draw_legend(out, [int(k) - 1 for k in present], class_names)
    return out
