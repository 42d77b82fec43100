"""Errors of the dataset builder."""

from acquisition.errors import PrepError

__all__ = ["DatasetGenError"]


class DatasetGenError(PrepError):
    """A problem with registered pairs or shards that the user can fix."""
