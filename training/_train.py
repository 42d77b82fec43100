"""Training: one process on CPU or GPU, or many under ``torchrun`` (DistributedDataParallel).

The same function runs everywhere. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) it joins the
process group (NCCL on GPU, gloo on CPU), wraps the network in DDP and lets rank 0 alone write checkpoints,
logs and pictures. ``batch_size`` is the *global* batch: each epoch's shuffled order (a function of seed and
epoch only) is cut into consecutive global batches, and each global batch is split over the processes as evenly
as it goes (3 over 2 processes: 2 + 1); each process weighs its loss by its share, so N processes take the same
steps as one. A last batch of a single sample joins the batch before it: BatchNorm cannot normalise one sample.

Resuming is exact: ``last.pt`` stores the weights, Adam's moments, the epoch and how many of its samples are
done, the running loss and every RNG state; a resumed run's next step sees the same samples with the same
weights as an uninterrupted one. It also works on another number of processes, and with another batch size or
learning rate (logged); what fixes the network (size, encoding, width, normalisation ...) cannot change. The
outputs of an epoch (``last.pt``, ``best.pt``, the ``metrics.csv`` row, ``loss.png``, the sample picture) are
finished on resume when a run stopped between writing them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from acquisition import tool_version
from acquisition.atomic import TEMP_PREFIX, write_bytes_atomic, write_text_atomic
from acquisition.checks import check_finite_fields
from acquisition.errors import PrepError
from acquisition.files import file_kind, require_regular
from acquisition.folders import check_apart
from acquisition.progress import announce_total
from acquisition.runlock import claim_folder
from datasetgen import ShardFolder

from ._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    build_model,
    checkpoint_epoch,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ._data import (
    ShardDataset,
    batch_to_device,
    check_same_encoding,
    chunks,
    find_shard_dir,
    iterate,
    make_loader,
    open_shards,
)
from ._device import memory_errors, resolve_device
from ._loss import ENCODINGS, accuracy, decode_prediction, deepflash_loss, psnr, ssim
from ._model import UPSAMPLINGS, load_encoder_weights
from ._sheets import labelled_grid
from ._syncbn import convert_global_batchnorm
from .errors import TrainingError

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)

#: The columns of samples/epoch-NNN.png.
SAMPLE_COLUMNS = ("input (flash)", "prediction", "target x-2t+1", "studio")
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
        Global batch, split across ``torchrun`` processes (at least 2 with BatchNorm, which cannot normalise a
        single sample).
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
    upsample : {"deconv", "resize"}
        The decoder's x2 upsampling (see :class:`DeepFlashNet`): ``deconv``, the paper's transposed convolution,
        or ``resize`` (bilinear + 3x3 conv, no checkerboard). It fixes the network: a resume cannot change it.
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
    upsample: Literal["deconv", "resize"] = "deconv"
    steps_per_epoch: int | None = None
    checkpoint_every: int = 0
    samples: int = 4

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.epochs < 1 or self.batch_size < 1 or self.workers < 0 or self.samples < 0:
            raise ValueError("epochs and batch_size must be >= 1, workers and samples >= 0")
        if self.batch_size < 2 and self.norm == "batch":
            raise ValueError("batch size 1 with BatchNorm: it cannot normalise a single sample; use --batch-size 2 "
                             "or more, or --norm none")
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
        if self.upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample must be one of {UPSAMPLINGS}, not {self.upsample!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1 or None")


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    epochs: int  #: epochs completed in total (including those before a resume)
    global_step: int
    history: tuple[dict[str, Any], ...]  #: one row of metrics.csv per epoch
    step_losses: tuple[float, ...]  #: the mean loss of each global batch trained by this call (all processes)
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


# ------------------------------------------------------------------------------------------------ batches
def _epoch_order(length: int, epoch: int, seed: int) -> list[int]:
    """The shuffled order of an epoch: a function of (seed, epoch) only (DistributedSampler's, on one process)."""
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    return torch.randperm(length, generator=generator).tolist()


def _global_batches(start: int, stop: int, batch: int) -> list[tuple[int, int]]:
    """Positions [a, b) of the epoch's order, from ``start``, in global batches of ``batch``.

    A last batch of one sample joins the batch before it, since BatchNorm cannot normalise a single sample (or
    is left out when it is the only one: only a resume with another batch size can leave one sample).
    """
    bounds = [(a, min(a + batch, stop)) for a in range(start, stop, batch)]
    if batch > 1 and bounds and bounds[-1][1] - bounds[-1][0] == 1:
        last = bounds.pop()
        if bounds:
            bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def _share(samples: list[int], dist_info: _Dist) -> list[int]:
    """This process's consecutive part of a global batch; the parts differ in size by at most one."""
    base, extra = divmod(len(samples), dist_info.world)
    start = dist_info.rank * base + min(dist_info.rank, extra)
    return samples[start:start + base + (dist_info.rank < extra)]


def _batches(dataset: ShardDataset, shares: list[list[int]], workers: int, pin: bool) -> Iterator[dict[str, Any]]:
    """One loader batch per global batch; an empty one where this process's share is empty."""
    loaded = iterate(make_loader(dataset, [s for s in shares if s], workers=workers, pin=pin))
    try:
        for share in shares:
            yield next(loaded) if share else dataset.empty_batch()
    finally:
        loaded.close()


def _epoch_limit(length: int, config: TrainConfig) -> int:
    return length if config.steps_per_epoch is None else min(length, config.steps_per_epoch * config.batch_size)


def _autocast(device: torch.device) -> Any:
    # bf16 on GPU: the range of float32 (no loss scaling), tensor-core speed; CPU stays float32.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _prepare(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else tensor


def _model_config(config: TrainConfig) -> dict[str, Any]:
    return {"width": config.width, "normalization": config.encoder_normalization, "norm": config.norm,
            "head_init": config.head_init, "upsample": config.upsample, "architecture": "vgg16-hdrcnn"}


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["betas"] = list(config.betas)
    return data


@torch.no_grad()
def _validate(model: nn.Module, dataset: ShardDataset, config: TrainConfig, size: int, device: torch.device,
              dist_info: _Dist) -> dict[str, float]:
    """Loss, accuracy (eq. 7), SSIM and PSNR of pred vs the preconditioned ground truth (eq. 8).

    Runs the bare module (not the DDP wrapper): ranks hold different numbers of validation batches, and DDP's
    per-forward collectives would then wait for each other forever.
    """
    model.eval()
    indices = list(range(len(dataset)))[dist_info.rank::dist_info.world]
    per_process = max(1, math.ceil(config.batch_size / dist_info.world))
    sums = np.zeros(7)
    loader = make_loader(dataset, chunks(indices, per_process), workers=config.workers, pin=device.type == "cuda")
    with closing(iterate(loader)) as batches:
        for raw in batches:
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
    """One row per sample, labelled: input (flash) | prediction | target (x - 2t + 1, eq. 8) | studio."""
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
    panels = [[(t[i].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
               for t in (batch.x, pred, truth, batch.o)] for i in range(count)]
    write_image(run_dir / "samples" / f"epoch-{epoch:03d}.png", labelled_grid(panels, SAMPLE_COLUMNS))


# -------------------------------------------------------------------------------------------------- resume
#: How to go on after a failed checkpoint write (a full disk): what finished is intact.
_RESUME = "run the same command with --resume"
#: Settings that may differ on resume without a word (they change how, not what, is trained).
_QUIET_CHANGES = ("epochs", "device", "workers", "steps_per_epoch", "checkpoint_every", "samples", "encoder_weights")
#: Settings of the network that TrainConfig names differently in ``model_config``.
_MODEL_KEYS = {"normalization": "encoder_normalization"}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _resume_config(checkpoint: dict[str, Any], config: TrainConfig, given: Collection[str] | None) -> TrainConfig:
    """The checkpoint's settings with those the caller chose (``given``; None = all of ``config``).

    What fixes the network -- the training size, the output encoding and every field of the checkpoint's
    ``model_config`` (width, normalisations, head ...) -- cannot change: a difference is refused in one line.
    Other changes are logged (batch size, learning rate ...) or quiet (epochs, device, workers ...).
    """
    path = Path(checkpoint["path"])
    stored = dict(checkpoint["config"])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    chosen = names if given is None else names & set(given)
    wanted = {name: getattr(config, name) for name in chosen}
    if wanted.get("size") is None:
        wanted.pop("size", None)  # "the shards' side": whatever the run trained at
    merged_dict = {**{k: v for k, v in stored.items() if k in names}, **wanted}
    merged_dict["betas"] = tuple(merged_dict.get("betas", config.betas))
    merged = TrainConfig(**merged_dict)
    refused = [f"{_option(name)} {getattr(merged, name)} (the run has {stored.get(name)})"
               for name in ("size", "encoding") if name in stored and getattr(merged, name) != stored[name]]
    old_model, new_model = checkpoint.get("model_config", {}), _model_config(merged)
    refused += [f"{_option(_MODEL_KEYS.get(key, key))} {new_model[key]} (the run has {old_model[key]})"
                for key in sorted(old_model.keys() & new_model.keys()) if new_model[key] != old_model[key]]
    if refused:
        raise TrainingError("cannot resume with another network: " + "; ".join(refused), path=path,
                            hint="resume without those options, or start a new run in another folder")
    changed = [f"{name.replace('_', ' ')} {getattr(merged, name)} (was {stored[name]})"
               for name in sorted(names - set(_QUIET_CHANGES)) if name in stored
               and _config_dict(merged)[name] != stored[name] and name not in ("size", "encoding")]
    if changed and int(os.environ.get("RANK", "0")) == 0:
        log.warning("resuming %s with %s", path.parent, ", ".join(changed))
    return merged


# --------------------------------------------------------------------------------------------------- train
def train(shards_dir: str | Path, run_dir: str | Path, *, config: TrainConfig = TrainConfig(), resume: bool = False,
          given: Collection[str] | None = None, progress: Callable[[int], None] | None = None) -> TrainResult:
    """Train DeepFlashNet on the shards of ``prep build-h5``.

    Parameters
    ----------
    shards_dir : path
        Folder of ``train-NNNNN.h5`` (and ``val-``/``test-``) shards with their ``dataset.json``. Exactly the
        shards dataset.json lists are read, after a check of each one against it (:func:`open_shards`).
    run_dir : path
        Output: ``last.pt`` (each epoch, with optimizer state), ``best.pt`` (lowest validation loss, or training
        loss without a validation split), ``metrics.csv``, ``loss.png``, ``samples/epoch-NNN.png``.
    config : TrainConfig
        The settings. With ``resume``, those that fix the network (size, encoding, width, normalisation, head)
        must match the checkpoint's; batch size, learning rate and the rest may change (logged), on any number
        of processes.
    resume : bool
        Continue from ``run_dir/last.pt`` exactly where it stopped, first finishing the outputs of its last epoch
        that an interrupted run left unwritten. A run stopped before its first ``last.pt`` left nothing to
        continue: with no run output in ``run_dir`` it starts from the beginning, logged; a ``run_dir`` that does
        not exist is refused (a mistyped path must not start a new run). A
        missing ``last.pt`` beside other outputs, or a damaged or special one, is refused (never a fresh start
        over the run's other outputs); without ``resume`` a folder holding any run output is.
    given : collection of str, optional
        With ``resume``: the names of the ``config`` fields the caller chose (a command line: the options
        typed); the others keep the checkpoint's values. None: every field of ``config`` counts.
    progress : callable, optional
        Called with 1 after every training step (rank 0 only).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Shards that are not the dataset's, are damaged or that ``prep build-h5`` is still writing, an unreadable
        checkpoint or encoder-weights file, a run folder that already holds a run (without ``resume``), is being
        written by another run or overlaps the shards, a resume that would change the network, a device that is
        not there, or running out of memory. Under ``torchrun``, problems found before training starts are the
        same on every process: there they carry ``every_rank = True``, so that a command line reports them once,
        on rank 0.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    with _on_every_rank(world):
        shard_folder = find_shard_dir(shards_dir)
        check_apart(shard_folder, run_dir, error=TrainingError, input_name="shards", output_name="run")
        if resume and not os.path.lexists(run_dir):  # a mistyped RUN_DIR must not start a new run unasked
            raise TrainingError("there is no training run to resume here: the folder does not exist", path=run_dir,
                                hint="check the path; to start a new run there, leave out --resume")
    if not _is_main_process():  # only the main process of a torchrun writes the run folder
        return _train_claimed(shards_dir, run_dir, config, resume, given, progress, started)
    with claim_folder(run_dir, error=TrainingError):
        return _train_claimed(shards_dir, run_dir, config, resume, given, progress, started)


def _is_main_process() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def _on_every_rank(world: int) -> Iterator[None]:
    """Mark the toolkit errors of the block as found by every process of a torchrun (rank 0 reports them)."""
    try:
        yield
    except PrepError as exc:
        exc.every_rank = world > 1  # type: ignore[attr-defined]
        raise


def _train_claimed(shards_dir: str | Path, run_dir: Path, config: TrainConfig, resume: bool,
                   given: Collection[str] | None, progress: Callable[[int], None] | None,
                   started: float) -> TrainResult:
    """:func:`train` with the run folder claimed (one run per folder)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    with _on_every_rank(world):
        _check_output_kinds(run_dir)
        checkpoint = _resume_checkpoint(run_dir) if resume else None
        if checkpoint is not None:
            config = _resume_config(checkpoint, config, given)
        else:
            _refuse_a_used_folder(run_dir)
        device = resolve_device(config.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")), world=world)
        shards = open_shards(shards_dir)
        config, train_set, val_set = _datasets(shards, config, checkpoint, main=int(os.environ.get("RANK", "0")) == 0)
    dist_info = _setup_distributed(device.type)
    try:
        with memory_errors(device, hint="resume with --resume and a smaller --batch-size (or --size)"):
            return _train(run_dir, config, (train_set, val_set), shards.parameters, checkpoint, dist_info, device,
                          progress, started)
    finally:
        for dataset in (train_set, val_set):
            if dataset is not None:
                dataset.close()
        if dist_info.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


#: What a run writes into its folder: a fresh run refuses a folder holding any of them (it would replace them).
RUN_OUTPUTS = ("last.pt", "best.pt", "metrics.csv", "loss.png", "samples")


def _check_output_kinds(run_dir: Path) -> None:
    """Refuse, before any work, a FIFO, device or folder where a run writes a file, or anything but a folder at
    ``samples``: found at the end of an epoch, it would stop the run after its last.pt, at every resume."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # missing (or a symbolic link to nothing: replaced like a missing file)
        if name == "samples":
            if not stat.S_ISDIR(mode):
                raise TrainingError(f"is {file_kind(mode) or 'a file'}, where the folder of sample pictures goes",
                                    path=path, hint="remove or rename it, then run the command again")
        else:
            require_regular(path, error=TrainingError)


#: What --resume reads from last.pt beyond the weights (best.pt lacks the optimizer's state).
_RESUME_KEYS = ("optimizer", "epoch", "step_in_epoch")


def _resume_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir/last.pt``, loaded for ``--resume``; None where no run has written anything yet.

    A run stopped before its first checkpoint (its folder there, without run outputs) is continued from the
    beginning; a folder that does not exist is refused before this (a mistyped RUN_DIR). A fresh run would
    replace ``best.pt``, ``metrics.csv`` and the samples of a run that ``--resume`` was meant to continue, so a
    missing ``last.pt`` beside them, or a damaged or special one, is refused in one line with the fix.
    """
    last = run_dir / "last.pt"
    if not os.path.lexists(last):
        others = [name for name in RUN_OUTPUTS if os.path.lexists(run_dir / name)]
        if others:
            raise TrainingError(f"there is no last.pt to resume from (the folder holds {', '.join(others)})",
                                path=last, hint="restore last.pt from a copy, or start a new run in another RUN_DIR "
                                                "(without --resume); best.pt holds no optimizer state to resume from")
        if int(os.environ.get("RANK", "0")) == 0:  # once, not by every process of a torchrun
            log.warning("%s: the folder holds no checkpoint yet (a run stopped before its first one): training "
                        "from the beginning", run_dir)
        return None
    if not require_regular(last, error=TrainingError):  # a symbolic link to nothing
        raise TrainingError("is a symbolic link to nothing: there is no last.pt to resume from", path=last,
                            hint="point it at the run's last.pt, or start a new run in another RUN_DIR")
    try:
        checkpoint = load_checkpoint(last)
    except TrainingError as exc:
        if exc.path is not None and Path(exc.path) != last:
            raise
        raise TrainingError(f"cannot resume: {exc.message}", path=last,
                            hint="it is damaged or not a checkpoint: restore last.pt from a copy, or start a new "
                                 "run in another RUN_DIR (without --resume); the folder is left as it is") from exc
    missing = [key for key in _RESUME_KEYS if key not in checkpoint]
    if missing:  # e.g. a copy of best.pt, which is written without the optimizer's state
        raise TrainingError(f"cannot resume: it holds no {' and no '.join(missing)} (a copy of best.pt?)", path=last,
                            hint="restore the run's own last.pt, or start a new run from these weights in another "
                                 "RUN_DIR (without --resume); the folder is left as it is")
    return checkpoint


def _refuse_a_used_folder(run_dir: Path) -> None:
    """A fresh run writes only into a folder that holds no run's outputs (nothing of another run is replaced)."""
    found = [name for name in RUN_OUTPUTS if os.path.lexists(run_dir / name)]
    if found:
        resumable = "last.pt" in found
        raise TrainingError(f"this folder already holds a training run ({', '.join(found)})", path=run_dir,
                            hint=("add --resume to continue it, or choose another RUN_DIR" if resumable else
                                  "choose another RUN_DIR (there is no last.pt to resume from)"))


def _epoch_outputs(run_dir: Path, state: dict[str, Any], *, improved: bool, model: nn.Module,
                   sample_set: ShardDataset, config: TrainConfig, size: int, device: torch.device) -> None:
    """What follows an epoch's last.pt: best.pt (when it improved), metrics.csv, loss.png, the sample picture."""
    if improved:
        save_checkpoint(run_dir / "best.pt", {k: v for k, v in state.items() if k not in ("optimizer", "path")},
                        then=_RESUME)
    _write_metrics(run_dir, state["history"])
    _write_loss_plot(run_dir, state["history"])
    _write_samples(run_dir, state["epoch"], model, sample_set, config, size, device)


def _finish_outputs(run_dir: Path, checkpoint: dict[str, Any], *, model: nn.Module, sample_set: ShardDataset,
                    config: TrainConfig, size: int, device: torch.device) -> None:
    """Write what a run stopped between an epoch's last.pt and its other outputs left unwritten.

    metrics.csv and loss.png follow the checkpoint's history (rewritten: cheap, and the same bytes when they
    were complete). At an epoch boundary the model is that epoch's, so its sample picture and, when that epoch
    was the best, best.pt can be written as the uninterrupted run would have.
    """
    history = checkpoint["history"]
    if not history:
        return
    _write_metrics(run_dir, history)
    _write_loss_plot(run_dir, history)
    epoch = int(checkpoint["epoch"])
    if int(checkpoint.get("epoch_position", checkpoint["step_in_epoch"])) != 0:
        return
    finished = []
    if checkpoint.get("best_epoch") == epoch and checkpoint_epoch(run_dir / "best.pt") != epoch:
        save_checkpoint(run_dir / "best.pt", {k: v for k, v in checkpoint.items() if k not in ("optimizer", "path")},
                        then=_RESUME)
        finished.append("best.pt")
    picture = run_dir / "samples" / f"epoch-{epoch:03d}.png"
    if config.samples and not picture.is_file():
        _write_samples(run_dir, epoch, model, sample_set, config, size, device)
        finished.append(str(picture.relative_to(run_dir)))
    if finished:
        log.info("finished what the interrupted run left of epoch %d: %s", epoch, ", ".join(finished))


def _datasets(shards: ShardFolder, config: TrainConfig, checkpoint: dict[str, Any] | None, *,
              main: bool) -> tuple[TrainConfig, ShardDataset, ShardDataset | None]:
    """The training and validation sets, and the config with the training size resolved."""
    train_set = ShardDataset(shards, "train")
    if checkpoint is not None:
        check_same_encoding(checkpoint.get("dataset"), shards.parameters, shards)
    val_set: ShardDataset | None = None
    if shards.files.get(config.val_split):
        val_set = ShardDataset(shards, config.val_split)
    elif main:
        log.warning("no %r split in %s: validation is skipped (best.pt follows the training loss)",
                    config.val_split, train_set.folder)
    side = int(train_set.size or 0)
    size = config.size or side
    if size > side or size % 32:
        raise TrainingError(f"cannot train at size {size} on shards of side {side}",
                            hint="pass --size, a multiple of 32 no larger than the shards' side")
    if config.norm == "batch" and len(train_set) < 2:
        raise TrainingError(f"the training split holds {len(train_set)} sample: BatchNorm needs batches of 2",
                            path=train_set.folder, hint="add training data, or train with --norm none")
    return dataclasses.replace(config, size=size), train_set, val_set


def _train(run_dir: Path, config: TrainConfig, datasets: tuple[ShardDataset, ShardDataset | None],
           params: dict[str, Any], checkpoint: dict[str, Any] | None, dist_info: _Dist, device: torch.device,
           progress: Callable[[int], None] | None, started: float) -> TrainResult:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_set, val_set = datasets
    size = int(config.size or 0)
    sample_set = val_set if val_set is not None else train_set

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

    epoch, position, step_in_epoch, global_step = 0, 0, 0, 0
    history: list[dict[str, Any]] = []
    best, best_epoch = math.inf, None
    running = [0.0, 0.0]  # loss sum and sample count of the epoch under way (all processes)
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(TEMP_PREFIX + "*"):  # a checkpoint half-written when the last run was killed
            stale.unlink(missing_ok=True)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:  # these may change on resume
            group.update(lr=config.lr, betas=config.betas, eps=config.eps)
        epoch, step_in_epoch = int(checkpoint["epoch"]), int(checkpoint["step_in_epoch"])
        stored_batch = int(checkpoint["config"].get("batch_size", config.batch_size))
        position = int(checkpoint.get("epoch_position", step_in_epoch * stored_batch))
        global_step = int(checkpoint["global_step"])
        history = [dict(row) for row in checkpoint["history"]]
        best, best_epoch = float(checkpoint["best"]), checkpoint.get("best_epoch")
        running = [float(v) for v in checkpoint["running"]]
        set_rng_state(checkpoint["rng"])
        if dist_info.main:
            log.info("resuming %s at epoch %d, sample %d of %d", run_dir, epoch + 1, position,
                     _epoch_limit(len(train_set), config))
            _finish_outputs(run_dir, checkpoint, model=model, sample_set=sample_set, config=config, size=size,
                            device=device)
            model.train()
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    core = model.module if dist_info.world > 1 else model

    def make_checkpoint(with_optimizer: bool) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tool_version": tool_version(),
            "model": {k: v.detach().cpu() for k, v in core.state_dict().items()},
            "model_config": _model_config(config), "config": _config_dict(config), "dataset": params,
            "epoch": epoch, "step_in_epoch": step_in_epoch, "epoch_position": position,
            "global_step": global_step, "history": history, "best": best, "best_epoch": best_epoch,
            "running": list(running), "rng": rng_state(), "world_size": dist_info.world,
        }
        if with_optimizer:
            state["optimizer"] = optimizer.state_dict()
        return state

    step_losses: list[float] = []
    model.train()
    limit = _epoch_limit(len(train_set), config)
    announce_total(progress, len(_global_batches(position, limit, config.batch_size))
                   + len(_global_batches(0, limit, config.batch_size)) * max(0, config.epochs - epoch - 1)
                   if epoch < config.epochs else 0)
    batches: Iterator[dict[str, Any]] | None = None
    try:
        while epoch < config.epochs:
            epoch_started = time.perf_counter()
            order = _epoch_order(len(train_set), epoch, config.seed)
            bounds = _global_batches(position, limit, config.batch_size)
            shares = [_share(order[a:b], dist_info) for a, b in bounds]
            batches = _batches(train_set, shares, config.workers, device.type == "cuda")
            for (a, b), raw in zip(bounds, batches, strict=True):
                batch = batch_to_device(raw, device, encoding=config.encoding, size=size)
                with _autocast(device):
                    y = model(_prepare(batch.inputs, device))
                per_image = deepflash_loss(y.float(), batch.targets, batch.valid, reduction="none",
                                           offset_weight=config.offset_weight)
                # DDP averages the processes' gradients: weighing each share by world / global count makes that
                # the gradient of the global batch's mean loss, whatever the shares' sizes.
                loss = per_image.sum() * (dist_info.world / (b - a))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = _all_reduce_sum([float(per_image.detach().sum()), float(len(per_image))], dist_info,
                                               device)
                value = total / count
                if not math.isfinite(value):
                    raise TrainingError(f"the loss became {value} at step {global_step + 1}",
                                        hint="lower --lr, or check the shards with prep verify")
                step_losses.append(value)
                running[0] += total
                running[1] += count
                step_in_epoch += 1
                global_step += 1
                position = b
                if (config.checkpoint_every and global_step % config.checkpoint_every == 0
                        and position < bounds[-1][1] and dist_info.main):
                    save_checkpoint(run_dir / "last.pt", make_checkpoint(True), then=_RESUME)
                if progress is not None and dist_info.main:
                    progress(1)
            total, count = running
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
            best_epoch = epoch if improved else best_epoch
            position, step_in_epoch = 0, 0
            running = [0.0, 0.0]
            if dist_info.main:
                log.info("epoch %d/%d: train loss %.5f%s", epoch, config.epochs, row["train_loss"],
                         f", val loss {row['val_loss']:.5f}, SSIM {row['val_ssim']:.4f}, PSNR {row['val_psnr']:.2f} dB"
                         if "val_loss" in row else "")
                state = make_checkpoint(True)
                # last.pt first: it holds all the others are made of, so a resume finishes whatever is missing.
                save_checkpoint(run_dir / "last.pt", state, then=_RESUME)
                _epoch_outputs(run_dir, state, improved=improved, model=core, sample_set=sample_set, config=config,
                               size=size, device=device)
            _barrier(dist_info)
    finally:
        if batches is not None:
            batches.close()  # stops the loader's workers when training stops early (an error, a signal)

    best_path = run_dir / "best.pt"
    return TrainResult(run_dir=run_dir, epochs=epoch, global_step=global_step, history=tuple(history),
                       step_losses=tuple(step_losses), last_checkpoint=run_dir / "last.pt",
                       best_checkpoint=best_path if best_path.exists() else None,
                       seconds=time.perf_counter() - started, world_size=dist_info.world)
