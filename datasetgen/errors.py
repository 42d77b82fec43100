"""Errors of the dataset builder."""

from acquisition.errors import PrepError

__all__ = ["REBUILD_HINT", "DatasetGenError"]


class DatasetGenError(PrepError):
    """A problem with registered pairs or shards that the user can fix."""

#: The fix for a damaged or inconsistent shard folder: the shards are derived data, so build them again.
REBUILD_HINT = "rebuild the shards with prep build-h5 ALIGNED SHARDS --force"
