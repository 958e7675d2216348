"""Errors about what the user gave: a config, a dataset, a weights file, a checkpoint.

Each names the file (and the key, line or annotation) in one line; ``tools/*.py`` print that
line and exit with status 2 instead of a traceback, before any training starts where possible.
"""

from __future__ import annotations


class InputError(ValueError):
    """A config, dataset, weights or checkpoint file that cannot be used as given."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (YAML and torch errors, for two, span several)."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(message).split()) or type(exc).__name__
