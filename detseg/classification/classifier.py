"""A backbone's own classifier head wrapped in the model interface every detseg model has."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import Backbone
from ..structures import Normalize


@dataclass
class Classifications:
    """Predictions for a batch: ``scores`` Tensor[N, K] softmax probabilities, ``labels`` Tensor[N]."""

    scores: Tensor
    labels: Tensor


class ImageClassifier(nn.Module):
    """Backbone + its classifier head (GAP + linear, or the FC head of AlexNet/VGG/LeNet).

    Args:
        backbone: built with ``num_classes=K``.
        aux_weight: weight of GoogLeNet's auxiliary losses (0.3 in the paper); ignored for
            backbones without auxiliary classifiers.

    ``loss(images, labels)`` works in train and eval mode (validation loss); ``predict(images)``
    works in both too. ``images``: Tensor[N, 3, H, W] float RGB in [0, 1]; ``labels``: Tensor[N]
    int64 in [0, K).

    Example:
        >>> model = ImageClassifier(build_backbone("resnet18", num_classes=3, width=0.25))
        >>> losses = model.loss(images, labels)       # {"loss_cls": ...}
        >>> model.predict(images).labels               # Tensor[N]
    """

    task = "classification"

    def __init__(self, backbone: Backbone, aux_weight: float = 0.3) -> None:
        super().__init__()
        if backbone.num_classes is None:
            raise ValueError("ImageClassifier needs a backbone built with num_classes=K")
        self.normalize = Normalize()
        self.backbone = backbone
        self.num_classes = backbone.num_classes
        self.aux_weight = aux_weight

    def loss(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Cross-entropy of the main head (``loss_cls``) and of auxiliary heads (``loss_aux``)."""
        labels = torch.as_tensor(labels, device=images.device)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must be in [0, {self.num_classes}), got min {int(labels.min())} "
                f"max {int(labels.max())}"
            )
        logits, aux = self.backbone.classify_with_aux(self.normalize(images))
        losses = {"loss_cls": F.cross_entropy(logits, labels)}
        if aux:
            losses["loss_aux"] = self.aux_weight * sum(F.cross_entropy(a, labels) for a in aux)
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor) -> Classifications:
        """Class probabilities and arg-max labels (main head only, whatever the mode)."""
        scores = self.backbone.classify(self.normalize(images)).softmax(dim=1)
        return Classifications(scores=scores, labels=scores.argmax(dim=1))

    def forward(self, images: Tensor, labels: Tensor | None = None):
        """torchvision-style sugar: losses in training mode, predictions in eval mode."""
        return self.loss(images, labels) if self.training else self.predict(images)
