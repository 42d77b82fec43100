"""datasetgen stage: registered pairs -> face crops, x20 augmentation, bilateral encoding, HDF5 shards.

Library entry points: :func:`build_shards` (``prep build-h5``), :func:`verify_shards` (``prep verify``),
:func:`write_shard_sheets` (``prep review`` on a shard folder) and :func:`bilateral_filter` (the paper's
encoding, also used by ``prep enhance``). The shard format is defined in :mod:`datasetgen.schema`.

The names are imported lazily (on first use), so that ``prep --help``, which imports ``datasetgen.cli``, does not
pay for torch, OpenCV and h5py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquisition.lazy import lazy_exports

if TYPE_CHECKING:
    from ._augment import AugSpec, aug_table, sample_matrix
    from ._bilateral import bilateral_filter, bilateral_reference
    from ._build import BuildConfig, BuildSummary, SkippedPair, build_shards, choose_face, render_pair
    from ._sheets import write_shard_sheets
    from ._splits import assign_splits, read_split_file
    from ._verify import Problem, verify_shards
    from .errors import DatasetGenError

_WHERE = {
    "AugSpec": "_augment", "aug_table": "_augment", "sample_matrix": "_augment",
    "bilateral_filter": "_bilateral", "bilateral_reference": "_bilateral",
    "BuildConfig": "_build", "BuildSummary": "_build", "SkippedPair": "_build", "build_shards": "_build",
    "choose_face": "_build", "render_pair": "_build",
    "write_shard_sheets": "_sheets",
    "assign_splits": "_splits", "read_split_file": "_splits",
    "Problem": "_verify", "verify_shards": "_verify",
    "DatasetGenError": "errors",
}

__all__ = ["AugSpec", "BuildConfig", "BuildSummary", "DatasetGenError", "Problem", "SkippedPair", "assign_splits",
           "aug_table", "bilateral_filter", "bilateral_reference", "build_shards", "choose_face",
           "read_split_file", "render_pair", "sample_matrix", "verify_shards", "write_shard_sheets"]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
