"""Errors of the training stage."""

from acquisition.errors import PrepError

__all__ = ["TrainingError"]


class TrainingError(PrepError):
    """A problem with shards, checkpoints or photos given to training, evaluation or enhancement."""
