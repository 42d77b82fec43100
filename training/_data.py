"""Reading the HDF5 shards of ``prep build-h5`` for training and evaluation.

The dataset returns the stored dtypes (uint8 images, float16 filtered images and targets) so the loader moves
as few bytes as possible; :func:`batch_to_device` converts to float on the device and resizes there. Files are
opened lazily in the process that reads them (h5py handles cannot be pickled, and handles inherited across a
fork are unsafe), and DataLoader workers run single-threaded (two intra-op threads made ``torch.stack`` 75x
slower on 2-core machines).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from acquisition.files import read_text
from datasetgen.schema import IMAGE_DATASETS, check_shard, open_shard

from ._loss import Encoding, encode_sample
from .errors import TrainingError

__all__ = ["Batch", "ShardDataset", "batch_to_device", "dataset_parameters", "find_shard_dir",
           "worker_init"]

log = logging.getLogger(__name__)

_IMAGE_FIELDS = tuple(IMAGE_DATASETS)  # the schema's image datasets, defined in datasetgen.schema
#: Framing defaults of the dataset builder, used when a shard folder has no dataset.json.
DEFAULT_PARAMETERS = {"wide_factor": 2.0}


def find_shard_dir(path: str | Path) -> Path:
    """The folder holding the ``*.h5`` shards: ``path`` itself or ``path/shards``."""
    path = Path(path)
    if not path.is_dir():
        raise TrainingError("no such shard folder", path=path, hint="give the output folder of prep build-h5")
    if any(path.glob("*.h5")):
        return path
    if (path / "shards").is_dir() and any((path / "shards").glob("*.h5")):
        return path / "shards"
    raise TrainingError("no HDF5 shards (*.h5) here", path=path, hint="give the output folder of prep build-h5")


#: Dataset parameters a network depends on: a checkpoint is only valid on shards that agree on them.
ENCODING_PARAMETERS = ("size", "sigma_s", "sigma_r", "wide_factor")


def check_same_encoding(stored: dict[str, Any] | None, current: dict[str, Any], shards_dir: str | Path) -> None:
    """Raise when ``shards_dir`` was built with another sample size, bilateral filter or framing than the run.

    Resuming or evaluating on such shards would go on silently with inputs the network was not trained on.
    """
    if not stored:
        return
    different = [f"{key} {stored.get(key)} vs {current.get(key)}" for key in ENCODING_PARAMETERS
                 if key in stored and key in current and stored[key] != current[key]]
    if different:
        raise TrainingError("these shards were built with other parameters than the run (" + ", ".join(different)
                            + ")", path=shards_dir, hint="use the shards the network was trained on, or rebuild "
                            "them with the same --size, --sigma-s, --sigma-r and --wide-factor")


def dataset_parameters(shards_dir: str | Path) -> dict[str, Any]:
    """The builder's parameters (size, sigmas, framing ...): dataset.json's "parameters", else shard attrs."""

    folder = find_shard_dir(shards_dir)
    params: dict[str, Any] = dict(DEFAULT_PARAMETERS)
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            try:
                params.update(json.loads(read_text(candidate, error=TrainingError)).get("parameters", {}))
            except (OSError, ValueError, AttributeError) as exc:
                raise TrainingError(f"unreadable dataset.json ({exc})", path=candidate,
                                    hint="rebuild the shards with prep build-h5") from exc
            return _primitive(params)
    first = sorted(folder.glob("*.h5"))[0]
    with open_shard(first, error=TrainingError) as h5:
        for key in ("size", "sigma_s", "sigma_r"):
            if key in h5.attrs:
                params[key] = h5.attrs[key].item() if hasattr(h5.attrs[key], "item") else h5.attrs[key]
    log.warning("%s has no dataset.json; assuming the default framing (wide_factor %s)", folder,
                params["wide_factor"])
    return _primitive(params)


def _primitive(value: Any) -> Any:
    """JSON-like data with numpy scalars turned into Python ones (checkpoints load with weights_only)."""
    if isinstance(value, dict):
        return {str(k): _primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_primitive(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class SampleInfo:
    """Where a sample lives and what it shows (for per-sample CSVs)."""

    file: str
    row: int
    subject: str
    pose: str
    aug: int


class ShardDataset(Dataset):
    """All samples of one split, across its shards ``<split>-NNNNN.h5``.

    Parameters
    ----------
    shards_dir : path
        Output folder of ``prep build-h5`` (or its ``shards/`` subfolder).
    split : str
        ``train``, ``val`` or ``test``.

    Items are dicts of tensors in the stored dtypes (``flash``/``studio`` uint8 S x S x 3, ``flash_bl``/
    ``target`` float16 S x S x 3, ``valid`` uint8 S x S) plus ``index``.
    """

    def __init__(self, shards_dir: str | Path, split: str) -> None:

        self.folder = find_shard_dir(shards_dir)
        self.split = split
        self.files = sorted(self.folder.glob(f"{split}-*.h5"))
        if not self.files:
            raise TrainingError(f"no shards of split {split!r} ({split}-NNNNN.h5)", path=self.folder)
        self._rows: list[tuple[int, int]] = []
        self.info: list[SampleInfo] = []
        self.size: int | None = None
        for file_index, path in enumerate(self.files):
            try:
                with open_shard(path, error=TrainingError) as h5:
                    problems = check_shard(h5)
                    if problems:
                        raise TrainingError("not a shard of the DeepFlash schema: " + "; ".join(problems[:3]),
                                            path=path, hint="run prep verify; rebuild it with prep build-h5")
                    count, side = h5["flash"].shape[0], h5["flash"].shape[1]
                    subjects = h5["subject"].asstr()[:]
                    poses = h5["pose"].asstr()[:]
                    augs = h5["aug"][:]
            except OSError as exc:
                raise TrainingError(f"cannot read the shard ({exc})", path=path,
                                    hint="run prep verify, then rebuild broken shards") from exc
            if self.size is None:
                self.size = int(side)
            elif side != self.size:
                raise TrainingError(f"shard side {side} differs from {self.size} of {self.files[0].name}", path=path)
            for row in range(count):
                self._rows.append((file_index, row))
                self.info.append(SampleInfo(path.name, row, str(subjects[row]), str(poses[row]), int(augs[row])))
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._rows)

    def _file(self, index: int) -> Any:

        if self._pid != os.getpid():  # inherited across a fork: never reuse the parent's handles
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(index)
        if handle is None:
            handle = self._handles[index] = open_shard(self.files[index], error=TrainingError)
        return handle

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        file_index, row = self._rows[index]
        h5 = self._file(file_index)
        try:
            item = {name: torch.from_numpy(np.ascontiguousarray(h5[name][row])) for name in _IMAGE_FIELDS}
        except OSError as exc:
            raise TrainingError(f"cannot read sample {row} ({exc})", path=self.files[file_index],
                                hint="run prep verify, then rebuild broken shards") from exc
        item["index"] = torch.tensor(index)
        return item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def close(self) -> None:
        """Close the open files of this process."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}


def worker_init(_worker_id: int) -> None:
    """DataLoader worker setup: one intra-op thread (see the module docstring)."""
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


@dataclass(frozen=True)
class Batch:
    """A batch on the device, float32 N x C x H x W in [0, 1]."""

    x: Tensor  #: flash
    o: Tensor  #: studio
    x_bl: Tensor  #: BL(flash)
    t: Tensor  #: the bilateral target of eq. 1
    valid: Tensor  #: N x H x W, 1 = real studio pixels
    inputs: Tensor  #: what the network sees (per encoding)
    targets: Tensor  #: what it should output (per encoding)
    index: Tensor  #: dataset indices


def _to_float(image: Tensor, device: torch.device, size: int | None) -> Tensor:
    z = image.to(device, non_blocking=True)
    z = z.permute(0, 3, 1, 2) if z.ndim == 4 else z.unsqueeze(1)
    z = z.float() / 255.0 if image.dtype == torch.uint8 else z.float()
    if size is not None and z.shape[-1] != size:
        z = F.interpolate(z, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    # On CUDA the permuted NHWC layout is already channels-last, which the network wants there.
    return z if device.type == "cuda" else z.contiguous()


def batch_to_device(batch: dict[str, Tensor], device: torch.device | str, *, encoding: Encoding = "C",
                    size: int | None = None) -> Batch:
    """Move a loader batch to ``device``, convert to float, resize to ``size`` (when given) and encode."""
    device = torch.device(device)
    side = batch["flash"].shape[1]
    if size is not None and size > side:
        raise TrainingError(f"training size {size} exceeds the shards' side {side}",
                            hint=f"train with --size {side} or smaller, or rebuild the shards larger")
    x = _to_float(batch["flash"], device, size)
    o = _to_float(batch["studio"], device, size)
    x_bl = _to_float(batch["flash_bl"], device, size)
    t = _to_float(batch["target"], device, size)
    valid = (_to_float(batch["valid"].float(), device, size) > 0.999).squeeze(1)
    inputs, targets = encode_sample(encoding, x, o, x_bl, t)
    return Batch(x, o, x_bl, t, valid, inputs, targets, batch["index"])
