"""Tiny synthetic shards in the schema of datasetgen.schema, with the manifest prep build-h5 writes.

The samples are random crops of a portrait relit by a synthetic "flash"; what matters for the training tests is
that they are real shards: the same datasets, attributes, ``dataset.json`` and ``index.csv`` as a build's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from datasetgen import aug_table, bilateral_filter, write_manifest
from datasetgen.schema import create_shard_datasets, shard_filename, write_shard_attrs

SIZE = 64
SIGMA_S = 4.0  # 16 px at 256; keeps the tiny shards' filtering cheap


def _relight(studio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic 'flash' shot: brighter, with a smooth frontal highlight and a colour cast."""
    h, w = studio.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    cx, cy = rng.uniform(0.35, 0.65, 2)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)[..., None]
    cast = np.array([1.1, 1.0, 0.9]) * rng.uniform(1.1, 1.4)
    return np.clip(studio * cast + 0.35 * blob, 0, 1)


AUG_TABLE = [spec.as_dict() for spec in aug_table()]


PARAMETERS = {"size": SIZE, "sigma_s": SIGMA_S, "sigma_r": 0.1, "wide_factor": 2.0}


def make_shards(folder: Path, astronaut: np.ndarray, counts: dict[str, int], *, size: int = SIZE,
                seed: int = 0, subjects: int = 3, build: str = "test-build", **parameters: Any) -> Path:
    """Shards in the schema of datasetgen.schema, from random crops of the astronaut, with their manifest.

    Subjects are named per split (``train-s0`` ...), ``subjects`` per split, so none is in two splits.
    ``parameters`` override the build parameters recorded (``sigma_s`` also filters the samples).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    parameters = {**PARAMETERS, "size": size, **parameters}
    sigma_s = float(parameters["sigma_s"])
    index = 0
    paths, split_of = [], {}
    for split, count in counts.items():
        path = folder / shard_filename(split, 0)
        with h5py.File(path, "w") as h5:
            create_shard_datasets(h5, count, size)
            write_shard_attrs(h5, split=split, size=size, sigma_s=sigma_s, sigma_r=0.1, aug_table=AUG_TABLE,
                              parameters=parameters, build=build)
            for row in range(count):
                side = int(rng.integers(160, 400))
                y0, x0 = (int(v) for v in rng.integers(0, 512 - side, 2))
                crop = astronaut[y0:y0 + side, x0:x0 + side]
                o = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
                x = _relight(o, rng).astype(np.float32)
                x8, o8 = (np.rint(v * 255).astype(np.uint8) for v in (x, o))
                x_bl = bilateral_filter(x8.astype(np.float32) / 255, sigma_s, 0.1)
                o_bl = bilateral_filter(o8.astype(np.float32) / 255, sigma_s, 0.1)
                valid = np.ones((size, size), np.uint8)
                valid[: size // 8, : size // 8] = 0  # a padded corner, as rotation leaves
                h5["flash"][row], h5["studio"][row] = x8, o8
                h5["flash_bl"][row] = x_bl.astype(np.float16)
                h5["target"][row] = ((x_bl - o_bl + 1) / 2).astype(np.float16)
                h5["valid"][row] = valid
                subject = f"{split}-s{index % subjects}"
                split_of[subject] = split
                h5["subject"][row] = subject
                h5["pose"][row] = f"p{index}"
                h5["aug"][row] = index % 20
                index += 1
        paths.append(path)
    write_manifest(folder, paths, parameters=parameters, aug_table=AUG_TABLE, subjects=split_of,
                   fingerprint=build)
    return folder
