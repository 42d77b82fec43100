"""The HDF5 shard schema, defined once: the dataset builder writes it, ``prep verify`` checks it, training reads it.

A shard ``<split>-<NNNNN>.h5`` holds N samples of side S:

=========  ==========  ============  ==================================================
dataset    dtype       shape         meaning
=========  ==========  ============  ==================================================
flash      uint8       (N, S, S, 3)  the flash crop, RGB
studio     uint8       (N, S, S, 3)  the registered studio crop, RGB
flash_bl   float16     (N, S, S, 3)  BL(flash) in [0, 1]: the network input
target     float16     (N, S, S, 3)  t = (BL(flash) - BL(studio) + 1) / 2, in [0, 1]
valid      uint8       (N, S, S)     1 where the studio crop holds real pixels
subject    str         (N,)          subject name
pose       str         (N,)          pose name
aug        int16       (N,)          augmentation index; its meaning in attribute aug_table
=========  ==========  ============  ==================================================

File attributes: ``format_version``, ``sigma_s``, ``sigma_r``, ``size``, ``split``, ``aug_table`` (JSON list,
one entry per index: rotation in degrees, framing, mirrored). One sample per chunk, so a random read touches one
chunk.
"""

from __future__ import annotations

from typing import Final

import h5py
import numpy as np

__all__ = ["ATTRS", "FORMAT_VERSION", "IMAGE_DATASETS", "SPLITS", "STRING_DATASETS", "create_shard_datasets",
           "shard_filename"]

FORMAT_VERSION: Final = 1
SPLITS: Final = ("train", "val", "test")

#: name -> (dtype, per-sample shape as a function of the side S)
IMAGE_DATASETS: Final = {
    "flash": (np.uint8, lambda s: (s, s, 3)),
    "studio": (np.uint8, lambda s: (s, s, 3)),
    "flash_bl": (np.float16, lambda s: (s, s, 3)),
    "target": (np.float16, lambda s: (s, s, 3)),
    "valid": (np.uint8, lambda s: (s, s)),
}
STRING_DATASETS: Final = ("subject", "pose")
AUG_DATASET: Final = "aug"
ATTRS: Final = ("format_version", "sigma_s", "sigma_r", "size", "split", "aug_table")
COMPRESSIONS: Final = ("none", "lzf", "gzip")


def shard_filename(split: str, index: int) -> str:
    """``train-00000.h5`` and so on."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return f"{split}-{index:05d}.h5"


def create_shard_datasets(h5: h5py.File, count: int, size: int, *, compression: str = "none") -> None:
    """Create the datasets of the schema in an open, empty file, for ``count`` samples of side ``size``."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    filters = {} if compression == "none" else {"compression": compression}
    if compression == "gzip":
        filters["compression_opts"] = 4
    for name, (dtype, shape_of) in IMAGE_DATASETS.items():
        shape = shape_of(size)
        h5.create_dataset(name, shape=(count, *shape), dtype=dtype, chunks=(1, *shape), **filters)
    text = h5py.string_dtype(encoding="utf-8")
    for name in STRING_DATASETS:
        h5.create_dataset(name, shape=(count,), dtype=text)
    h5.create_dataset(AUG_DATASET, shape=(count,), dtype=np.int16)
