"""Image classification on any detseg backbone (the transfer-learning use case)."""

from .classifier import Classifications, ImageClassifier

__all__ = ["Classifications", "ImageClassifier"]
