"""Reading the HDF5 shards of ``prep build-h5`` for training and evaluation.

The dataset returns the stored dtypes (uint8 images, float16 filtered images and targets) so the loader moves
as few bytes as possible; :func:`batch_to_device` converts to float on the device and resizes there. Files are
opened lazily in the process that reads them (h5py handles cannot be pickled, and handles inherited across a
fork are unsafe), and DataLoader workers run single-threaded (two intra-op threads made ``torch.stack`` 75x
slower on 2-core machines).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from acquisition.errors import PrepError
from acquisition.interrupts import STOP_SIGNALS, deferred_stop_signals, raise_if_interrupted, unblock_stop_signals
from acquisition.parallel import signal_on_parent_death
from acquisition.runlock import refuse_if_being_written
from datasetgen import ShardFolder, check_hashes, check_shard_folder
from datasetgen.errors import REBUILD_HINT
from datasetgen.schema import IMAGE_DATASETS, open_shard, read_error_words

from ._loss import Encoding, encode_sample
from .errors import TrainingError

__all__ = ["Batch", "ShardDataset", "batch_to_device", "dataset_parameters", "find_shard_dir", "make_loader",
           "open_shards", "worker_init"]

log = logging.getLogger(__name__)

_IMAGE_FIELDS = tuple(IMAGE_DATASETS)  # the schema's image datasets, defined in datasetgen.schema
#: Shard folders up to this size are hashed at every start (SHA-256 reads ~1.4 GB/s from the page cache: under
#: a second); larger ones get the cheap check only, and prep verify does the hashes.
HASH_AT_START_BYTES: Final = 1 << 30


def find_shard_dir(path: str | Path) -> Path:
    """The folder holding the ``*.h5`` shards: ``path`` itself or ``path/shards``."""
    path = Path(path)
    if not path.is_dir():
        raise TrainingError("no such shard folder", path=path, hint="give the output folder of prep build-h5")
    if any(path.glob("*.h5")) or (path / "dataset.json").exists():
        return path
    if (path / "shards").is_dir() and any((path / "shards").glob("*.h5")):
        return path / "shards"
    raise TrainingError("no HDF5 shards (*.h5) here", path=path, hint="give the output folder of prep build-h5")


def open_shards(shards_dir: str | Path | ShardFolder, *, hashes: bool | None = None) -> ShardFolder:
    """Check a shard folder against its dataset.json and index.csv before reading it; return what was checked.

    A folder that ``prep build-h5`` is still writing is refused. Every listed shard's file size, split, side,
    filter and framing parameters, build, sample count, subjects and index rows are compared with dataset.json
    (:func:`datasetgen.check_shard_folder`: metadata and the small per-sample columns only); a shard that is
    not listed, or listed but missing, is refused too.

    Parameters
    ----------
    shards_dir : path or datasetgen.ShardFolder
        The output folder of ``prep build-h5`` (or its ``shards/`` subfolder); an already checked folder is
        returned as it is.
    hashes : bool, optional
        Also compare every shard's SHA-256 with dataset.json (catches a flipped byte). Default: when the
        shards total at most :data:`HASH_AT_START_BYTES`.

    Returns
    -------
    datasetgen.ShardFolder

    Raises
    ------
    TrainingError
        The first problem found, naming the file and the fix (and how many more there are).
    """
    if isinstance(shards_dir, ShardFolder):
        return shards_dir
    folder = find_shard_dir(shards_dir)
    refuse_if_being_written(folder, error=TrainingError, then="run the command again")
    checked = check_shard_folder(folder)
    problems = list(checked.problems)
    if not problems:
        if hashes is None:
            hashes = checked.total_bytes <= HASH_AT_START_BYTES
            if not hashes:
                log.info("%s: %.1f GB of shards: their hashes are not checked at start (prep verify does)",
                         checked.folder, checked.total_bytes / 1e9)
        if hashes:
            problems = check_hashes(checked)
    if problems:
        first = problems[0]
        more = f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        raise TrainingError(first.message + more, path=first.path, hint=first.hint)
    return checked


#: Dataset parameters a network depends on: a checkpoint is only valid on shards that agree on them.
ENCODING_PARAMETERS = ("size", "sigma_s", "sigma_r", "wide_factor")


def check_same_encoding(stored: dict[str, Any] | None, current: dict[str, Any],
                        shards_dir: str | Path | ShardFolder) -> None:
    """Raise when ``shards_dir`` was built with another sample size, bilateral filter or framing than the run.

    Resuming or evaluating on such shards would go on silently with inputs the network was not trained on.
    """
    if not stored:
        return
    different = [f"{key} {stored.get(key)} vs {current.get(key)}" for key in ENCODING_PARAMETERS
                 if key in stored and key in current and stored[key] != current[key]]
    if different:
        raise TrainingError("these shards were built with other parameters than the run (" + ", ".join(different)
                            + ")", path=getattr(shards_dir, "folder", shards_dir),
                            hint="use the shards the network was trained on, or rebuild them with the same --size, "
                                 "--sigma-s, --sigma-r and --wide-factor")


def dataset_parameters(shards_dir: str | Path) -> dict[str, Any]:
    """The builder's parameters (size, sigmas, framing ...) of a checked shard folder (see :func:`open_shards`)."""
    return open_shards(shards_dir).parameters


@dataclass(frozen=True)
class SampleInfo:
    """Where a sample lives and what it shows (for per-sample CSVs)."""

    file: str
    row: int
    subject: str
    pose: str
    aug: int


class ShardDataset(Dataset):
    """All samples of one split, across the shards ``<split>-NNNNN.h5`` that dataset.json lists.

    Parameters
    ----------
    shards_dir : path or datasetgen.ShardFolder
        Output folder of ``prep build-h5`` (or its ``shards/`` subfolder), checked by :func:`open_shards`
        unless already checked.
    split : str
        ``train``, ``val`` or ``test``.

    Items are dicts of tensors in the stored dtypes (``flash``/``studio`` uint8 S x S x 3, ``flash_bl``/
    ``target`` float16 S x S x 3, ``valid`` uint8 S x S) plus ``index``. Files are opened read-only without
    HDF5's file lock (:func:`datasetgen.schema.open_shard`).

    Raises
    ------
    TrainingError
        The folder fails the check, or the split has no shards.
    """

    def __init__(self, shards_dir: str | Path | ShardFolder, split: str) -> None:
        checked = open_shards(shards_dir)
        self.folder: Path = checked.folder
        self.split = split
        self.files: list[Path] = list(checked.files.get(split, ()))
        if not self.files:
            raise TrainingError(f"no shards of split {split!r} ({split}-NNNNN.h5) in dataset.json", path=self.folder)
        self.size: int | None = int(checked.parameters["size"])
        listed = {entry["file"]: entry for entry in checked.meta["shards"]}
        self._bytes = [listed[path.name].get("bytes") for path in self.files]
        self._rows: list[tuple[int, int]] = []
        self.info: list[SampleInfo] = []
        for file_index, path in enumerate(self.files):
            for row, (subject, pose, aug) in enumerate(checked.contents[path.name]):
                self._rows.append((file_index, row))
                self.info.append(SampleInfo(path.name, row, subject, pose, aug))
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
        try:
            h5 = self._file(file_index)
            item = {name: torch.from_numpy(np.ascontiguousarray(h5[name][row])) for name in _IMAGE_FIELDS}
        except (OSError, KeyError) as exc:
            raise self._read_error(file_index, row, exc) from exc
        except TrainingError as exc:  # no longer a regular file, or locked by a writer
            raise TrainingError(f"sample {row}: {exc.message}", path=exc.path, hint=exc.hint) from exc
        item["index"] = torch.tensor(index)
        return item

    def _read_error(self, file_index: int, row: int, exc: Exception) -> TrainingError:
        path = self.files[file_index]
        expected = self._bytes[file_index]
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        if expected is not None and size is not None and size != expected:
            return TrainingError(f"sample {row}: the shard changed while this run read it ({size} bytes, "
                                 f"dataset.json says {expected})", path=path,
                                 hint=REBUILD_HINT + "; then resume with --resume")
        message, hint = (read_error_words(exc) if isinstance(exc, OSError)
                         else (f"cannot be read ({exc})", REBUILD_HINT))
        return TrainingError(f"sample {row}: {message}", path=path, hint=hint)

    def empty_batch(self) -> dict[str, Tensor]:
        """A batch of no samples (what a process whose share of a global batch is empty trains on)."""
        side = int(self.size or 0)
        batch = {name: torch.empty((0, *shape_of(side)), dtype=torch.from_numpy(np.zeros(0, dtype)).dtype)
                 for name, (dtype, shape_of) in IMAGE_DATASETS.items()}
        batch["index"] = torch.empty(0, dtype=torch.int64)
        return batch

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def close(self) -> None:
        """Close the open files of this process."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}


def chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` cut into consecutive batches of ``size`` (the last may be shorter)."""
    return [list(indices[i:i + size]) for i in range(0, len(indices), max(1, size))]


def make_loader(dataset: ShardDataset, batches: Iterable[list[int]], *, workers: int, pin: bool) -> Any:
    """A DataLoader over the given batches of dataset indices (in that order), ``workers`` single-threaded."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=[list(b) for b in batches], num_workers=workers, pin_memory=pin,
                      worker_init_fn=worker_init if workers else None, persistent_workers=False,
                      prefetch_factor=4 if workers else None)


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """The one-line error a DataLoader worker raised, from the copy the DataLoader re-raises.

    A worker's exception reaches the main process as ``type(exc)(text)`` where the text holds the worker's
    whole traceback ("Caught TrainingError in DataLoader worker process 0. Original Traceback ..."); its last
    line is the original ``module.Type: message``. Toolkit errors get their one-line message back; others are
    returned as they are (their text still tells what they were, e.g. running out of memory).
    """
    text = str(exc)
    if "in DataLoader worker process" not in text or not isinstance(exc, PrepError):
        return exc
    _type_name, sep, message = text.rstrip().splitlines()[-1].partition(": ")
    return type(exc)(message) if sep else exc


def iterate(loader: Any) -> Iterator[dict[str, Tensor]]:
    """The batches of ``loader``, with errors raised in its workers unwrapped (:func:`unwrap_worker_error`).

    However it ends (a stop included, even one that arrived while the workers started), the workers are shut
    down before it returns: they ignore stop signals (:func:`worker_init`), so one left to the interpreter's
    exit would be waited for forever.
    """
    batches = None
    try:
        with deferred_stop_signals():  # a stop while the workers start would leave them half-started
            batches = iter(loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:
                raise_if_interrupted()  # a worker that saw the stop first: "worker exited unexpectedly"
                unwrapped = unwrap_worker_error(exc)
                if unwrapped is exc:
                    raise
                raise unwrapped from exc
            yield batch
    finally:
        # Stop the workers now: an error's traceback holds the iterator (and so its workers) until it is freed.
        # Stops held back meanwhile: a second one (Ctrl-C pressed twice, a kill after the Ctrl-C) would cut this
        # short, and a worker left alive makes the interpreter's exit wait for it forever (it ignores SIGTERM).
        with deferred_stop_signals():
            _stop_workers(batches)


def _stop_workers(batches: Any) -> None:
    """Shut down a DataLoader iterator's workers, killing any that did not take the shutdown in time."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for worker in getattr(batches, "_workers", ()):
        if worker.is_alive():  # did not take the shutdown in time; its SIGTERM is ignored
            worker.kill()
            worker.join()


def worker_init(_worker_id: int) -> None:
    """DataLoader worker setup: one intra-op thread (see the module docstring); stops are the parent's business.

    Ctrl-C reaches the whole process group and ``torchrun`` signals each rank's group: a worker that died of
    it first made the DataLoader raise "worker exited unexpectedly" instead of the interruption. Workers
    therefore ignore stop signals (the training process shuts them down on its way out) and are killed when
    that process ends (``PR_SET_PDEATHSIG``; torch's own watchdog also notices).

    OpenCV is left alone: workers do not use it, and resizing its thread pool in a forked worker whose parent
    had started that pool waits forever on the pool's condition variables (seen after ``cv2.resize`` ran in the
    training process).
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    unblock_stop_signals()  # blocked while the workers started (iterate): now ignored
    signal_on_parent_death(signal.SIGKILL)
    torch.set_num_threads(1)


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
