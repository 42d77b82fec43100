"""Evaluation on a split: the paper's Table 3 figures beside the identity baseline.

For every sample: the loss (eq. 5), the accuracy (eq. 7), and SSIM / PSNR of ``pred = x - 2y + 1`` against the
preconditioned ground truth ``x - 2t + 1`` (eq. 8) and against the studio image. The identity baseline is the
flash image itself (``pred = x``, i.e. ``y = 1/2`` for the difference encodings, ``y = x`` for A): a model that
does not beat it has learnt nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acquisition.atomic import write_text_atomic
from acquisition.progress import announce_total

from ._checkpoint import load_model, resolve_checkpoint
from ._data import ShardDataset, batch_to_device, check_same_encoding, chunks, iterate, make_loader, open_shards
from ._device import memory_errors, resolve_device
from ._loss import decode_prediction, deepflash_loss, psnr, ssim
from ._train import _accuracy

__all__ = ["EvaluationResult", "evaluate"]

METRICS = ("loss", "accuracy", "ssim_gt", "psnr_gt", "ssim_studio", "psnr_studio")
_HEADERS = ("loss (eq. 5)", "accuracy % (eq. 7)", "SSIM vs x-2t+1", "PSNR vs x-2t+1 (dB)", "SSIM vs studio",
            "PSNR vs studio (dB)")
#: PSNR of identical images is infinite; summaries cap it so means stay finite.
PSNR_CAP_DB = 100.0


@dataclass(frozen=True)
class EvaluationResult:
    """Summary of :func:`evaluate`.

    ``summary["model"]`` and ``summary["identity"]`` map each of ``loss, accuracy, ssim_gt, psnr_gt,
    ssim_studio, psnr_studio`` to its mean over the split; ``table`` is a markdown table of both rows.
    """

    checkpoint: Path
    split: str
    count: int
    encoding: str
    summary: dict[str, dict[str, float]]
    table: str
    csv_path: Path
    summary_path: Path


def _identity_output(encoding: str, x: torch.Tensor) -> torch.Tensor:
    """The network output whose prediction is the flash image itself."""
    return x.clone() if encoding == "A" else torch.full_like(x, 0.5)


def _metrics(encoding: str, y: torch.Tensor, batch: Any) -> dict[str, torch.Tensor]:
    pred = decode_prediction(encoding, y, batch.x).clamp(0, 1)
    truth = (batch.x - 2 * batch.t + 1).clamp(0, 1)
    return {
        "loss": deepflash_loss(y, batch.targets, batch.valid, reduction="none"),
        "accuracy": _accuracy(encoding, y, batch),
        "ssim_gt": ssim(pred, truth),
        "psnr_gt": psnr(pred, truth).clamp(max=PSNR_CAP_DB),
        "ssim_studio": ssim(pred, batch.o),
        "psnr_studio": psnr(pred, batch.o).clamp(max=PSNR_CAP_DB),
    }


def _evaluate_all(model: torch.nn.Module, dataset: ShardDataset, *, encoding: str, size: int,
                  device: torch.device, batch_size: int, workers: int,
                  progress: Callable[[int], None] | None) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """One CSV row per sample, and the per-metric sums of the model and the identity baseline."""
    rows: list[dict[str, Any]] = []
    sums = {kind: dict.fromkeys(METRICS, 0.0) for kind in ("model", "identity")}
    announce_total(progress, len(dataset))
    loader = make_loader(dataset, chunks(range(len(dataset)), batch_size), workers=workers, pin=False)
    with closing(iterate(loader)) as batches:
        for raw in batches:
            batch = batch_to_device(raw, device, encoding=encoding, size=min(size, dataset.size or size))
            y = model(batch.inputs).float()
            results = {"model": _metrics(encoding, y, batch),
                       "identity": _metrics(encoding, _identity_output(encoding, batch.x), batch)}
            for i, index in enumerate(batch.index.tolist()):
                info = dataset.info[index]
                row: dict[str, Any] = {"file": info.file, "row": info.row, "subject": info.subject, "pose": info.pose,
                                       "aug": info.aug}
                for kind, values in results.items():
                    prefix = "" if kind == "model" else "identity_"
                    for metric in METRICS:
                        value = float(values[metric][i])
                        row[prefix + metric] = round(value, 6)
                        sums[kind][metric] += value
                rows.append(row)
            if progress is not None:
                progress(len(y))
    return rows, sums


def format_table(summary: dict[str, dict[str, float]], *, encoding: str) -> str:
    """A markdown table like the paper's Table 3: one row for the model, one for the identity baseline."""
    lines = ["| method | " + " | ".join(_HEADERS) + " |", "|---|" + "---:|" * len(_HEADERS)]
    names = {"model": f"DeepFlash (encoding {encoding})", "identity": "identity (the flash image)"}
    for key in ("model", "identity"):
        cells = []
        for metric in METRICS:
            value = summary[key][metric]
            cells.append(f"{value:.2f}" if metric.startswith(("psnr", "accuracy")) else f"{value:.4f}")
        lines.append(f"| {names[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def evaluate(run_dir_or_checkpoint: str | Path, shards_dir: str | Path, *, split: str = "test",
             out_dir: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 4,
             workers: int = 0,
             progress: Callable[[int], None] | None = None) -> EvaluationResult:
    """Evaluate a trained network on one split of the shards.

    Parameters
    ----------
    run_dir_or_checkpoint : path
        A run folder of ``prep train`` (its ``best.pt``, else ``last.pt``) or a ``.pt`` file.
    shards_dir : path
        The shards (``<split>-NNNNN.h5``).
    split : str
        Which split to evaluate.
    out_dir : path, optional
        Where ``eval-<split>.csv`` (one row per sample), ``eval-<split>.md`` (the table) and
        ``eval-<split>.json`` go; default: the run folder (or the checkpoint's folder).
    device, batch_size, workers
        Where and how to run the network.
    progress : callable, optional
        Called with the number of samples finished.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    TrainingError
        No such checkpoint or split, shards that are not the dataset's, are damaged or that ``prep build-h5`` is
        still writing, a device that is not there, or running out of memory.
    """
    checkpoint_path = resolve_checkpoint(run_dir_or_checkpoint)
    device = resolve_device(device)
    model, checkpoint = load_model(checkpoint_path, device=device)
    config = checkpoint["config"]
    shards = open_shards(shards_dir)
    check_same_encoding(checkpoint.get("dataset"), shards.parameters, shards)
    encoding = config.get("encoding", "C")
    size = int(config["size"])
    dataset = ShardDataset(shards, split)
    try:
        with memory_errors(device, hint="use a smaller --batch-size"):
            rows, sums = _evaluate_all(model, dataset, encoding=encoding, size=size, device=device,
                                       batch_size=batch_size, workers=workers, progress=progress)
    finally:
        dataset.close()
    out_dir = Path(out_dir) if out_dir is not None else checkpoint_path.parent
    count = len(rows)
    summary = {kind: {metric: (total / count if count else math.nan) for metric, total in values.items()}
               for kind, values in sums.items()}
    table = format_table(summary, encoding=encoding)

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["file"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = out_dir / f"eval-{split}.csv"
    write_text_atomic(csv_path, out.getvalue())
    summary_path = out_dir / f"eval-{split}.json"
    header = (f"Evaluation of {checkpoint_path.name} on split {split!r} ({count} samples, training size {size}, "
              f"encoding {encoding}).")
    write_text_atomic(out_dir / f"eval-{split}.md", header + "\n\n" + table + "\n")
    write_text_atomic(summary_path, json.dumps({"checkpoint": str(checkpoint_path), "split": split, "count": count,
                                                "encoding": encoding, "size": size, "summary": summary},
                                               indent=2) + "\n")
    return EvaluationResult(checkpoint=checkpoint_path, split=split, count=count, encoding=encoding,
                            summary=summary, table=table, csv_path=csv_path, summary_path=summary_path)
