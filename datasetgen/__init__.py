"""datasetgen stage: registered pairs -> face crops, x20 augmentation, bilateral encoding, HDF5 shards.

Library entry points: :func:`build_shards` (``prep build-h5``), :func:`verify_shards` (``prep verify``),
:func:`write_shard_sheets` (``prep review`` on a shard folder) and :func:`bilateral_filter` (the paper's
encoding, also used by ``prep enhance``). The shard format is defined in :mod:`datasetgen.schema`.

The names, listed once in ``__init__.pyi``, are imported lazily (lazy_loader, on first use), so that
``prep --help``, which imports ``datasetgen.cli``, does not pay for torch, OpenCV and h5py.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)
