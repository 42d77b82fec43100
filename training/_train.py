"""Training: one process on CPU or GPU, or many under ``torchrun`` (DistributedDataParallel).

The same function runs everywhere. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) it joins the
process group (NCCL on GPU, gloo on CPU), wraps the network in DDP, splits each epoch's shuffled order with a
``DistributedSampler`` and lets rank 0 alone write checkpoints, logs and pictures. ``batch_size`` is the
*global* batch, split evenly across processes, so a run on N processes takes the same steps as one on 1.

Resuming is exact: the shuffled order of an epoch depends only on (seed, epoch), and ``last.pt`` stores the
weights, Adam's moments, the epoch and the batch within it, the running loss and every RNG state; a resumed
run's next step therefore sees the same batch with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from acquisition import tool_version
from acquisition.atomic import TEMP_PREFIX, write_bytes_atomic, write_text_atomic
from acquisition.folders import check_apart
from acquisition.progress import announce_total
from acquisition.runlock import claim_folder, refuse_if_being_written

from ._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_model,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ._data import ShardDataset, batch_to_device, check_same_encoding, dataset_parameters, find_shard_dir, worker_init
from ._loss import ENCODINGS, accuracy, decode_prediction, deepflash_loss, psnr, ssim
from ._model import load_encoder_weights
from ._syncbn import convert_global_batchnorm
from .errors import TrainingError

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)

METRIC_FIELDS = ("epoch", "steps", "train_loss", "val_loss", "val_accuracy", "val_ssim", "val_psnr",
                 "val_ssim_flash", "val_psnr_flash", "seconds", "samples_per_s")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in every checkpoint).

    Attributes
    ----------
    epochs : int
        Passes over the training split (the paper: 62).
    batch_size : int
        Global batch, split evenly across ``torchrun`` processes.
    lr, betas, eps : float
        Adam's settings (the paper: 1e-5, (0.9, 0.999), 1e-8).
    size : int or None
        Training side in pixels, a multiple of 32 not above the shards' side (smaller = resized on the device);
        None = the shards' side.
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; under torchrun each rank takes
        ``cuda:LOCAL_RANK``.
    workers : int
        DataLoader worker processes (single-threaded each); 0 reads in the training process.
    seed : int
        Initial weights and the shuffled order of every epoch derive from it.
    width : float
        Channel multiplier of the network (1 = the paper's VGG-16; 1/8 for tests and CPU demos).
    encoder_weights : str or None
        A local VGG-16 state-dict file (torchvision keys); None = He initialisation.
    encoder_normalization : {"imagenet", "vggface", "none"}
        The input normalisation the encoder weights expect (ImageNet mean/std for torchvision's, 0-255 minus
        the RGB mean for VGG-Face).
    encoding : {"A", "B", "C"}
        Output encoding (the paper's Figure 3): C bilateral difference (default), B unfiltered difference,
        A the studio image.
    val_split : str
        Split validated after each epoch; skipped with a warning when the shards have none.
    norm : {"batch", "none"}
        Decoder normalisation. Under torchrun the batch statistics span the global batch (SyncBatchNorm on
        GPU, :class:`GlobalBatchNorm2d` on CPU), so N processes train as one would.
    offset_weight : float
        Weight in [0, 1] of the per-channel mean error added to eq. 5 (0 = the paper's loss, which leaves the
        colour offset of the prediction to initialisation; see :func:`deepflash_loss`).
    head_init : {"xavier", "identity"}
        The last layer's initialisation: Xavier (the paper) or zero, so the network starts at the flash image
        and learns a correction of it (better for short runs on little data).
    steps_per_epoch : int or None
        Stop each epoch after this many steps (quick demos, benchmarks); None = the whole split.
    checkpoint_every : int
        Also write ``last.pt`` every this many steps (0 = at the end of each epoch only).
    samples : int
        Validation samples drawn as PNGs after each epoch.
    """

    epochs: int = 62
    batch_size: int = 4
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    size: int | None = None
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    width: float = 1.0
    encoder_weights: str | None = None
    encoder_normalization: Literal["imagenet", "vggface", "none"] = "imagenet"
    encoding: Literal["A", "B", "C"] = "C"
    val_split: str = "val"
    norm: Literal["batch", "none"] = "batch"
    offset_weight: float = 0.0
    head_init: Literal["xavier", "identity"] = "xavier"
    steps_per_epoch: int | None = None
    checkpoint_every: int = 0
    samples: int = 4

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.workers < 0 or self.samples < 0:
            raise ValueError("epochs and batch_size must be >= 1, workers and samples >= 0")
        if self.size is not None and (self.size < 32 or self.size % 32):
            raise ValueError(f"size must be a multiple of 32, got {self.size}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, not {self.encoding!r}")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', not {self.norm!r}")
        if not 0.0 <= self.offset_weight <= 1.0:
            raise ValueError(f"offset_weight must lie in [0, 1], got {self.offset_weight}")
        if not (self.lr > 0 and self.width > 0):
            raise ValueError("lr and width must be positive")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1 or None")


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    epochs: int  #: epochs completed in total (including those before a resume)
    global_step: int
    history: tuple[dict[str, Any], ...]  #: one row of metrics.csv per epoch
    step_losses: tuple[float, ...]  #: this process's loss at each step run by this call
    last_checkpoint: Path
    best_checkpoint: Path | None
    seconds: float
    world_size: int


# --------------------------------------------------------------------------------------------- distribution
@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    local_rank: int
    initialized_here: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_kind: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return _Dist(0, 1, 0, False)
    import torch.distributed as dist

    if dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), local, False)
    if device_kind == "cuda":
        # Bind this rank to its GPU before NCCL starts: collectives issued before that (a barrier) would
        # otherwise all land on GPU 0.
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return _Dist(rank, world, local, True)


def _resolve_device(name: str, local_rank: int, world: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("CUDA was asked for but this torch build sees no GPU",
                                hint="use --device cpu, or install the torch build for your GPU")
        if device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def _all_reduce_sum(values: list[float], dist_info: _Dist, device: torch.device) -> list[float]:
    if dist_info.world == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _barrier(dist_info: _Dist) -> None:
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------------------------ helpers
def _epoch_indices(length: int, epoch: int, seed: int, dist_info: _Dist, shuffle: bool = True) -> list[int]:
    """This rank's share of the epoch's order: a DistributedSampler (padded to equal shares) with set_epoch."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(length), num_replicas=dist_info.world, rank=dist_info.rank,
                                 shuffle=shuffle, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return list(sampler)


def _loader(dataset: ShardDataset, indices: list[int], batch: int, workers: int, pin: bool) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch, sampler=indices, num_workers=workers, pin_memory=pin,
                      worker_init_fn=worker_init if workers else None, persistent_workers=False,
                      prefetch_factor=4 if workers else None)


def _autocast(device: torch.device) -> Any:
    # bf16 on GPU: the range of float32 (no loss scaling), tensor-core speed; CPU stays float32.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _prepare(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else tensor


def _model_config(config: TrainConfig) -> dict[str, Any]:
    return {"width": config.width, "normalization": config.encoder_normalization, "norm": config.norm,
            "head_init": config.head_init, "architecture": "vgg16-hdrcnn"}


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["betas"] = list(config.betas)
    return data


def _config_from_dict(data: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in data.items() if k in known}
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return TrainConfig(**values)


@torch.no_grad()
def _validate(model: nn.Module, dataset: ShardDataset, config: TrainConfig, size: int, device: torch.device,
              dist_info: _Dist) -> dict[str, float]:
    """Loss, accuracy (eq. 7), SSIM and PSNR of pred vs the preconditioned ground truth (eq. 8).

    Runs the bare module (not the DDP wrapper): ranks hold different numbers of validation batches, and DDP's
    per-forward collectives would then wait for each other forever.
    """
    model.eval()
    indices = list(range(len(dataset)))[dist_info.rank::dist_info.world]
    sums = np.zeros(7)
    for raw in _loader(dataset, indices, config.batch_size, config.workers, device.type == "cuda"):
        batch = batch_to_device(raw, device, encoding=config.encoding, size=size)
        with _autocast(device):
            y = model(_prepare(batch.inputs, device))
        y = y.float()
        pred = decode_prediction(config.encoding, y, batch.x).clamp(0, 1)
        truth = (batch.x - 2 * batch.t + 1).clamp(0, 1)
        sums += [
            len(y),
            deepflash_loss(y, batch.targets, batch.valid, reduction="none").sum().item(),
            _accuracy(config.encoding, y, batch).sum().item(),
            ssim(pred, truth).sum().item(),
            psnr(pred, truth).clamp(max=100).sum().item(),
            ssim(batch.x, truth).sum().item(),
            psnr(batch.x, truth).clamp(max=100).sum().item(),
        ]
    sums = np.array(_all_reduce_sum(sums.tolist(), dist_info, device))
    model.train()
    n = max(sums[0], 1)
    keys = ("val_loss", "val_accuracy", "val_ssim", "val_psnr", "val_ssim_flash", "val_psnr_flash")
    return {key: float(value / n) for key, value in zip(keys, sums[1:], strict=True)}


def _accuracy(encoding: str, y: torch.Tensor, batch: Any) -> torch.Tensor:
    """Eq. 7 for C; for A and B the same mean absolute error in their own image domain."""
    if encoding == "C":
        return accuracy(y, batch.t, batch.x_bl)
    pred = decode_prediction(encoding, y, batch.x)
    return 100.0 - 100.0 * (pred - batch.o).abs().mean(dim=(1, 2, 3))


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: ("" if row.get(key) is None else row[key]) for key in METRIC_FIELDS})
    write_text_atomic(run_dir / "metrics.csv", out.getvalue())


def _write_loss_plot(run_dir: Path, history: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    val = [(row["epoch"], row["val_loss"]) for row in history if row.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), "s-", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (eq. 5)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(run_dir / "loss.png", buffer.getvalue())


@torch.no_grad()
def _write_samples(run_dir: Path, epoch: int, model: nn.Module, dataset: ShardDataset, config: TrainConfig,
                   size: int, device: torch.device) -> None:
    """One row per sample: flash | prediction | preconditioned ground truth (eq. 8) | studio."""
    from torch.utils.data import default_collate

    from acquisition.imageio import write_image

    count = min(config.samples, len(dataset))
    if count == 0:
        return
    model.eval()
    batch = batch_to_device(default_collate([dataset[i] for i in range(count)]), device,
                            encoding=config.encoding, size=size)
    with _autocast(device):
        y = model(_prepare(batch.inputs, device)).float()
    model.train()
    pred = decode_prediction(config.encoding, y, batch.x)
    truth = batch.x - 2 * batch.t + 1
    rows = [torch.cat([batch.x[i], pred[i], truth[i], batch.o[i]], dim=2) for i in range(count)]
    grid = torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    write_image(run_dir / "samples" / f"epoch-{epoch:03d}.png", (grid * 255 + 0.5).astype(np.uint8))


# --------------------------------------------------------------------------------------------------- train
def train(shards_dir: str | Path, run_dir: str | Path, *, config: TrainConfig = TrainConfig(), resume: bool = False,
          progress: Callable[[int], None] | None = None) -> TrainResult:
    """Train DeepFlashNet on the shards of ``prep build-h5``.

    Parameters
    ----------
    shards_dir : path
        Folder of ``train-NNNNN.h5`` (and ``val-``/``test-``) shards with their ``dataset.json``.
    run_dir : path
        Output: ``last.pt`` (each epoch, with optimizer state), ``best.pt`` (lowest validation loss, or training
        loss without a validation split), ``metrics.csv``, ``loss.png``, ``samples/epoch-NNN.png``.
    config : TrainConfig
        The settings; with ``resume`` the checkpoint's settings win except ``epochs``, ``device``, ``workers``,
        ``steps_per_epoch`` and ``checkpoint_every``.
    resume : bool
        Continue from ``run_dir/last.pt`` exactly where it stopped (a missing file starts afresh).
    progress : callable, optional
        Called with 1 after every training step (rank 0 only).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Missing or broken shards, an unreadable checkpoint or encoder-weights file, a run folder that already
        holds a run (without ``resume``), is being written by another run, or overlaps the shards, shards that
        ``prep build-h5`` is still writing, or a device that is not there.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    shard_folder = find_shard_dir(shards_dir)
    check_apart(shard_folder, run_dir, error=TrainingError, input_name="shards", output_name="run")
    refuse_if_being_written(shard_folder, error=TrainingError, then="train")
    if not _is_main_process():  # only the main process of a torchrun writes the run folder
        return _train_claimed(shards_dir, run_dir, config, resume, progress, started)
    with claim_folder(run_dir, error=TrainingError):
        return _train_claimed(shards_dir, run_dir, config, resume, progress, started)


def _is_main_process() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _train_claimed(shards_dir: str | Path, run_dir: Path, config: TrainConfig, resume: bool,
                   progress: Callable[[int], None] | None, started: float) -> TrainResult:
    """:func:`train` with the run folder claimed (one run per folder)."""
    checkpoint: dict[str, Any] | None = None
    if resume and (run_dir / "last.pt").is_file():
        checkpoint = load_checkpoint(run_dir / "last.pt")
        stored = _config_from_dict(checkpoint["config"])
        config = dataclasses.replace(stored, epochs=config.epochs, device=config.device, workers=config.workers,
                                     steps_per_epoch=config.steps_per_epoch,
                                     checkpoint_every=config.checkpoint_every)
    elif resume:
        log.info("%s holds no last.pt: starting a new run", run_dir)
    elif (run_dir / "last.pt").exists():
        raise TrainingError("this folder already holds a training run", path=run_dir,
                            hint="add --resume to continue it, or choose another RUN_DIR")

    want = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dist_info = _setup_distributed(torch.device(want).type)
    try:
        return _train(shards_dir, run_dir, config, checkpoint, dist_info, progress, started)
    finally:
        if dist_info.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(shards_dir: str | Path, run_dir: Path, config: TrainConfig, checkpoint: dict[str, Any] | None,
           dist_info: _Dist, progress: Callable[[int], None] | None, started: float) -> TrainResult:
    device = _resolve_device(config.device, dist_info.local_rank, dist_info.world)
    if config.batch_size % dist_info.world:
        raise ValueError(f"batch_size {config.batch_size} does not split evenly over {dist_info.world} processes")
    per_rank = config.batch_size // dist_info.world

    train_set = ShardDataset(shards_dir, "train")
    params = dataset_parameters(shards_dir)
    if checkpoint is not None:
        check_same_encoding(checkpoint.get("dataset"), params, shards_dir)
    val_set: ShardDataset | None = None
    if any(train_set.folder.glob(f"{config.val_split}-*.h5")):
        val_set = ShardDataset(shards_dir, config.val_split)  # broken shards raise, naming the file
    elif dist_info.main:
        log.warning("no %r split in %s: validation is skipped (best.pt follows the training loss)",
                    config.val_split, train_set.folder)
    size = config.size or train_set.size
    if size is None or size > train_set.size or size % 32:
        raise TrainingError(f"cannot train at size {size} on shards of side {train_set.size}",
                            hint="pass --size, a multiple of 32 no larger than the shards' side")
    config = dataclasses.replace(config, size=size)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_model(_model_config(config))
    if config.encoder_weights and checkpoint is None:
        load_encoder_weights(model, config.encoder_weights)
    model.to(device)
    if dist_info.world > 1 and config.norm == "batch":
        # Batch statistics over the global batch, as one process would compute them.
        model = (nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda"
                 else convert_global_batchnorm(model))
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps)

    epoch, step_in_epoch, global_step = 0, 0, 0
    history: list[dict[str, Any]] = []
    best = math.inf
    running = [0.0, 0.0]  # loss sum and count of the epoch under way (this rank)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        epoch, step_in_epoch = int(checkpoint["epoch"]), int(checkpoint["step_in_epoch"])
        global_step = int(checkpoint["global_step"])
        history = [dict(row) for row in checkpoint["history"]]
        best = float(checkpoint["best"])
        if int(checkpoint.get("world_size", 1)) == dist_info.world:
            running = list(checkpoint["running"])
        set_rng_state(checkpoint["rng"])
        if dist_info.main:
            log.info("resuming %s at epoch %d, step %d", run_dir, epoch + 1, step_in_epoch)
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    core = model.module if dist_info.world > 1 else model

    def make_checkpoint(with_optimizer: bool) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tool_version": tool_version(),
            "model": {k: v.detach().cpu() for k, v in core.state_dict().items()},
            "model_config": _model_config(config), "config": _config_dict(config), "dataset": params,
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "history": history, "best": best, "running": list(running), "rng": rng_state(),
            "world_size": dist_info.world,
        }
        if with_optimizer:
            state["optimizer"] = optimizer.state_dict()
        return state

    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(TEMP_PREFIX + "*"):  # a checkpoint half-written when the last run was killed
            stale.unlink(missing_ok=True)
    step_losses: list[float] = []
    model.train()
    per_epoch = len(_epoch_indices(len(train_set), epoch, config.seed, dist_info))
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch * per_rank)
    announce_total(progress, math.ceil(per_epoch / per_rank) * (config.epochs - epoch) - step_in_epoch)
    while epoch < config.epochs:
        epoch_started = time.perf_counter()
        indices = _epoch_indices(len(train_set), epoch, config.seed, dist_info)
        if config.steps_per_epoch is not None:
            indices = indices[:config.steps_per_epoch * per_rank]
        steps_in_epoch = math.ceil(len(indices) / per_rank)
        loader = _loader(train_set, indices[step_in_epoch * per_rank:], per_rank, config.workers,
                         device.type == "cuda")
        for raw in loader:
            batch = batch_to_device(raw, device, encoding=config.encoding, size=size)
            with _autocast(device):
                y = model(_prepare(batch.inputs, device))
            loss = deepflash_loss(y.float(), batch.targets, batch.valid, offset_weight=config.offset_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(f"the loss became {value} at step {global_step + 1}",
                                    hint="lower --lr, or check the shards with prep verify")
            step_losses.append(value)
            running[0] += value * len(y)
            running[1] += len(y)
            step_in_epoch += 1
            global_step += 1
            if (config.checkpoint_every and global_step % config.checkpoint_every == 0
                    and step_in_epoch < steps_in_epoch and dist_info.main):
                save_checkpoint(run_dir / "last.pt", make_checkpoint(True))
            if progress is not None and dist_info.main:
                progress(1)
        total, count = _all_reduce_sum(running, dist_info, device)
        row: dict[str, Any] = {"epoch": epoch + 1, "steps": global_step, "train_loss": total / max(count, 1)}
        if val_set is not None:
            row.update(_validate(core, val_set, config, size, device, dist_info))
        seconds = time.perf_counter() - epoch_started
        row["seconds"] = round(seconds, 3)
        row["samples_per_s"] = round(count / seconds, 3) if seconds > 0 else None
        history.append(row)
        score = row.get("val_loss", row["train_loss"])
        improved = score < best
        best = min(best, score)
        epoch += 1
        step_in_epoch = 0
        running = [0.0, 0.0]
        if dist_info.main:
            log.info("epoch %d/%d: train loss %.5f%s", epoch, config.epochs, row["train_loss"],
                     f", val loss {row['val_loss']:.5f}, SSIM {row['val_ssim']:.4f}, PSNR {row['val_psnr']:.2f} dB"
                     if "val_loss" in row else "")
            save_checkpoint(run_dir / "last.pt", make_checkpoint(True))
            if improved:
                save_checkpoint(run_dir / "best.pt", make_checkpoint(False))
            _write_metrics(run_dir, history)
            _write_loss_plot(run_dir, history)
            _write_samples(run_dir, epoch, core, val_set if val_set is not None else train_set, config, size,
                           device)
        _barrier(dist_info)

    best_path = run_dir / "best.pt"
    return TrainResult(run_dir=run_dir, epochs=epoch, global_step=global_step, history=tuple(history),
                       step_losses=tuple(step_losses), last_checkpoint=run_dir / "last.pt",
                       best_checkpoint=best_path if best_path.exists() else None,
                       seconds=time.perf_counter() - started, world_size=dist_info.world)
