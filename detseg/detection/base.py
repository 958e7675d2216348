"""What every detector shares: the ground-truth check at the model boundary and the
torchvision-style ``forward`` over the ``loss()`` / ``predict()`` contract."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..structures.instances import Instances


def check_targets(targets: Sequence[Instances], num_images: int, num_classes: int) -> None:
    """Validate ground truth at the model boundary, naming the image and the box.

    Raises:
        ValueError: wrong count, box shape, non-finite/degenerate boxes or labels out of range.
    """
    if len(targets) != num_images:
        raise ValueError(f"got {num_images} images but {len(targets)} targets")
    for i, t in enumerate(targets):
        boxes, labels = t.boxes, t.labels
        if boxes.dim() != 2 or boxes.shape[1] != 4 or len(labels) != len(boxes):
            raise ValueError(f"image {i}: boxes must be Tensor[M, 4] with M labels, got "
                             f"{tuple(boxes.shape)} and {tuple(labels.shape)}")
        if not len(boxes):
            continue
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError(f"image {i}: non-finite box coordinates {boxes[~torch.isfinite(boxes).all(1)].tolist()}")
        bad = ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).nonzero().squeeze(1)
        if len(bad):
            j = int(bad[0])
            raise ValueError(f"image {i}, box {j}: degenerate box {boxes[j].tolist()} (need x2 > x1 and y2 > y1, "
                             "xyxy absolute pixels); drop zero-area boxes in the dataset")
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(f"image {i}: labels must be in [0, {num_classes}), got {labels.tolist()}")


class Detector(nn.Module):
    """Base of detseg's detectors. Subclasses define ``loss(images, targets) -> dict[str, Tensor]``
    and ``predict(images, image_sizes=None) -> list[Detections]``; both work in any mode, so
    validation losses and predictions are reachable whatever ``model.training`` says."""

    def forward(self, images: Tensor, targets: Sequence[Instances] | None = None):
        """torchvision-style sugar: losses in training mode, detections in eval mode."""
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets; call model.eval() or model.predict(images)")
            return self.loss(images, targets)
        return self.predict(images)
