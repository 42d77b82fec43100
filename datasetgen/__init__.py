"""datasetgen stage: registered pairs -> face crops, x20 augmentation, bilateral encoding, HDF5 shards."""

from ._bilateral import bilateral_filter

__all__ = ["bilateral_filter"]
