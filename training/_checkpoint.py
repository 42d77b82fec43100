"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python containers only (no pickled classes), so loading one never
runs code from the file:

``format``, ``version``, ``model`` (state dict), ``model_config`` (width, normalization, norm, upsample:
``deconv`` when absent, as in checkpoints written before the option existed),
``config`` (the :class:`TrainConfig` as a dict), ``dataset`` (the builder's parameters: size, sigmas, framing),
``epoch`` (epochs completed), ``step_in_epoch`` (batches done in the epoch under way), ``global_step``,
``history`` (one dict per finished epoch), ``best`` (best validation loss so far), ``running`` (the loss sum and
count of the epoch under way), ``rng`` (torch, CUDA, numpy and Python generator states), and in ``last.pt``
also ``optimizer`` (its state dict). Added later (readers treat them as optional): ``epoch_position``
(samples of the epoch under way already trained: a resume with another batch size or number of processes goes
on from there) and ``best_epoch`` (the epoch whose weights ``best.pt`` holds).

:func:`save_checkpoint` turns numpy scalars and arrays, paths and tuples-as-lists into what ``weights_only``
loading accepts, so a checkpoint built from values read out of shard attributes loads everywhere.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from acquisition.atomic import atomic_write, write_error
from acquisition.errors import PrepError
from acquisition.files import open_regular, require_regular

from ._device import resolve_device
from ._model import DeepFlashNet
from .errors import TrainingError

__all__ = [
    "CHECKPOINT_FORMAT",
    "build_model",
    "checkpoint_epoch",
    "load_checkpoint",
    "load_model",
    "plain",
    "resolve_checkpoint",
    "rng_state",
    "save_checkpoint",
    "save_model_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "deepflash-checkpoint"
CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and primitives."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, numpy arrays as tensors and paths as strings.

    ``torch.load(weights_only=True)`` refuses numpy's globals, so a checkpoint holding ``np.float64(16.0)`` (as
    read from an HDF5 attribute) would not load; containers are walked, tensors and Python primitives kept.

    Raises
    ------
    TypeError
        For a value a weights-only checkpoint cannot hold (a class instance, a function ...).
    """
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bytes, int, float, bool, torch.Tensor, torch.dtype, torch.Size)):
        return value
    raise TypeError(f"a checkpoint cannot hold {type(value).__name__} values: {value!r}")


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any], *, then: str = "run the command again") -> None:
    """``torch.save`` through a temporary file and ``os.replace``: a crash never leaves half a checkpoint.

    A full disk (or another write error) leaves the previous file under ``path`` untouched and raises one
    TrainingError in the words of :func:`acquisition.atomic.write_error`; ``then`` says how to go on.
    """
    path = Path(path)
    state = plain(checkpoint)
    try:
        with atomic_write(path, "wb") as handle:
            try:
                torch.save(state, handle)
            except RuntimeError as exc:
                # torch's zip writer reports a failed write ("unexpected pos"); the OSError behind it, e.g. a
                # full disk, is the exception it was handling.
                if isinstance(exc.__context__, OSError):
                    raise exc.__context__ from None
                raise
    except PrepError as exc:
        if isinstance(exc.__cause__, OSError):
            raise write_error(path, exc.__cause__, error=TrainingError,
                              lost=f"{path.name} was not replaced (the previous one is intact)", then=then) from None
        raise


def checkpoint_epoch(path: str | Path) -> int | None:
    """The ``epoch`` a checkpoint file records, read without loading its weights (None: missing or unreadable).

    Raises
    ------
    TrainingError
        Something other than a regular file is at ``path`` (a FIFO would block ``torch.load`` forever).
    """
    if not require_regular(path, error=TrainingError):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["epoch"])
    except Exception:  # any damage means "not the expected checkpoint"
        return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file, or a run folder (its ``best.pt``, else ``last.pt``).

    A ``best.pt`` that is there but is not a regular file (a FIFO, a device, a folder) is an error, never a
    silent fall-back to ``last.pt``: the caller asked for the run's best weights.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if os.path.lexists(path / name):
                _require_checkpoint_file(path / name)
                return path / name
        raise TrainingError("no checkpoint (best.pt or last.pt) in this folder", path=path,
                            hint="give the RUN_DIR of prep train, or a .pt file")
    if not os.path.lexists(path):
        raise TrainingError("no such checkpoint", path=path, hint="give the RUN_DIR of prep train, or a .pt file")
    _require_checkpoint_file(path)
    return path


def _require_checkpoint_file(path: Path) -> None:
    if not require_regular(path, error=TrainingError):  # a dangling symbolic link
        raise TrainingError("is a symbolic link to nothing", path=path,
                            hint="point it at a checkpoint written by prep train, or remove it")


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its format."""
    path = resolve_checkpoint(path)
    try:
        with open_regular(path, "rb", error=TrainingError) as handle:
            checkpoint = torch.load(handle, map_location=map_location, weights_only=True)
    except PrepError:
        raise
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise TrainingError(f"cannot read the checkpoint ({_first_sentence(exc)})", path=path,
                            hint="it may be truncated; use last.pt or best.pt of a finished epoch") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError("not a DeepFlash checkpoint", path=path, hint="give a .pt file written by prep train")
    if checkpoint.get("version", 0) > CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint version {checkpoint['version']} is newer than this program "
                            f"({CHECKPOINT_VERSION})", path=path, hint="update deepflash")
    if isinstance(checkpoint.get("model_config"), dict):  # written before the option: the paper's decoder
        checkpoint["model_config"].setdefault("upsample", "deconv")
    checkpoint["path"] = str(path)
    return checkpoint


def _first_sentence(exc: BaseException) -> str:
    """``RuntimeError: PytorchStreamReader failed reading zip archive`` -- without torch's paragraph of advice."""
    text = str(exc).strip().split("\n")[0]
    text = text.split(". ")[0].rstrip(".")
    return f"{exc.__class__.__name__}: {text[:160]}"


def build_model(model_config: dict[str, Any], *, init_weights: bool = True) -> DeepFlashNet:
    """A fresh network from the ``model_config`` of a checkpoint."""
    norm_layer = nn.BatchNorm2d if model_config.get("norm", "batch") == "batch" else nn.Identity
    return DeepFlashNet(width=float(model_config["width"]), normalization=model_config["normalization"],
                        norm_layer=norm_layer, init_weights=init_weights,
                        head_init=model_config.get("head_init", "xavier"),
                        upsample=model_config.get("upsample", "deconv"))


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[DeepFlashNet, dict[str, Any]]:
    """The trained network of a checkpoint (in eval mode, on ``device``) and the checkpoint itself."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_config"], init_weights=False)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        raise TrainingError(f"the weights do not fit the network ({exc})", path=checkpoint["path"]) from exc
    return model.to(resolve_device(device)).eval(), checkpoint


def save_model_checkpoint(path: str | Path, model: DeepFlashNet, *, size: int, encoding: str = "C",
                          dataset: dict[str, Any] | None = None, norm: str = "batch") -> None:
    """Write an inference-only checkpoint (what ``best.pt`` holds) for a network trained elsewhere.

    ``evaluate`` and ``enhance`` read the training ``size``, the ``encoding`` and the builder's ``dataset``
    parameters (``size``, ``sigma_s``, ``sigma_r``, ``wide_factor``) from it. Numpy scalars (e.g. read from
    shard attributes) are stored as plain Python numbers, so ``weights_only`` loading accepts the file.
    """
    config = {"size": int(size), "encoding": encoding, "width": model.width,
              "encoder_normalization": model.normalization, "norm": norm, "upsample": model.upsample}
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": {"width": model.width, "normalization": model.normalization, "norm": norm,
                         "upsample": model.upsample, "architecture": "vgg16-hdrcnn"},
        "config": config, "dataset": dict(dataset or {"size": int(size), "sigma_s": 16.0, "sigma_r": 0.1,
                                                      "wide_factor": 2.0}),
        "epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best": float("inf"),
    })
