"""Evaluators: ``reset()``, ``process(predictions, targets)``, ``evaluate() -> metrics``."""

from .classification import ClassificationEvaluator

__all__ = ["ClassificationEvaluator"]

from .coco import CocoEvaluator, FastCOCOeval, detection_confusion_matrix
from .report import format_metrics
from .semantic import SemanticEvaluator

# Plots (matplotlib) stay in detseg.evaluation.plots, imported on use, to keep this import light.
__all__ += ["CocoEvaluator", "FastCOCOeval", "SemanticEvaluator", "detection_confusion_matrix", "format_metrics"]
