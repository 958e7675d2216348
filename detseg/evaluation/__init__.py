"""Evaluators: ``reset()``, ``process(predictions, targets)``, ``evaluate() -> metrics``."""

from .classification import ClassificationEvaluator

__all__ = ["ClassificationEvaluator"]
