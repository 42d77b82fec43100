"""The whole pipeline on the embedded portraits: what ``make demo`` and ``prep demo OUT`` run.

A virtual-studio session of the two portraits shipped inside dependencies (skimage's astronaut, matplotlib's
Grace Hopper) → registration (checked against the studio's recorded ground truth) → review sheets → shards (one
subject for training, the other for test) → a short CPU training run → evaluation beside the identity baseline
→ enhancement of the held-out subject's flash shots, shown beside them and their studio shots in
``before-after.png``. Every stage is the library function its ``prep`` command calls, so the
demo exercises exactly what lab staff run. Re-running into the same folder resumes: finished stages are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acquisition.atomic import write_text_atomic
from acquisition.layout import discover_pairs

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes that keep the demo within ~10 minutes on 2 CPU cores (the paper's sizes are the commands' defaults).

    Attributes
    ----------
    poses : int
        Poses per subject.
    capture_size : (width, height)
        Size of the simulated photos (a phone's 3120x4160 works too; it only takes longer).
    sample_size : int
        Side of the dataset samples (the paper: 512).
    width : float
        Channel multiplier of the network (1 = the paper's VGG-16).
    epochs, batch_size, lr : training settings; lr is far above the paper's 1e-5 so a short run shows progress.
    offset_weight : float
        Weight of the mean term added to eq. 5 (see ``TrainConfig``): eq. 5 alone leaves each channel's mean
        free, and a few epochs from scratch leave a colour cast.
    head_init : str
        ``identity``: the network starts at the flash image (the baseline) and learns a correction of it.
    upsample : str
        ``resize``: the decoder upsamples by bilinear resize + conv, which prints no checkerboard (the paper's
        transposed convolutions do, and a short run does not train it away).
    workers : int
        Processes for registration and dataset building.
    """

    poses: int = 3
    capture_size: tuple[int, int] = (960, 1280)
    sample_size: int = 128
    width: float = 0.125
    epochs: int = 6
    batch_size: int = 4
    lr: float = 1e-3
    offset_weight: float = 0.5
    head_init: str = "identity"
    upsample: str = "resize"
    workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    """Where everything went, and the figures of the summary table."""

    out_dir: Path
    registration_errors_px: dict[str, float]
    registration_status: dict[str, int]
    samples: dict[str, int]
    evaluation_table: str
    enhanced: tuple[Path, ...]  #: the held-out subject's flash shots, enhanced
    pictures: dict[str, Path]  #: what to look at, before-after.png first
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """The table ``prep demo`` prints at the end."""
        errors = sorted(self.registration_errors_px.values())
        lines = ["## DeepFlash demo", "", "| stage | result |", "| --- | --- |"]
        if errors:
            mean = sum(errors) / len(errors)
            lines.append(f"| registration error vs ground truth (face-box corners, px) | mean {mean:.3f}, "
                         f"max {errors[-1]:.3f} over {len(errors)} pairs |")
        lines.append("| registration status | " + ", ".join(f"{k} {v}" for k, v in self.registration_status.items())
                     + " |")
        lines.append("| samples per split | " + ", ".join(f"{k} {v}" for k, v in self.samples.items()) + " |")
        lines.append("| time per stage (s) | " + ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items()) + " |")
        lines += ["", "Evaluation on the held-out subject, model beside the identity baseline (the flash image).",
                  "With two subjects the held-out one also picks best.pt; a real dataset keeps a val split.",
                  "",
                  self.evaluation_table, "", "Pictures:"]
        lines += [f"- {name}: {path}" for name, path in self.pictures.items()]
        return "\n".join(lines)


#: Height of each panel of before-after.png.
BEFORE_AFTER_HEIGHT = 480


def write_before_after(path: Path, rows: list[tuple[Path, Path, Path, str]]) -> Path:
    """A labelled sheet: flash | enhanced | studio, one row per (flash, enhanced, studio, caption); returns ``path``."""
    import cv2
    import numpy as np

    from acquisition.faces import to_uint8
    from acquisition.imageio import read_image, write_image

    from ._sheets import labelled_grid

    def panel(file: Path) -> np.ndarray:
        image = to_uint8(read_image(file))
        h, w = image.shape[:2]
        return cv2.resize(image, (round(w * BEFORE_AFTER_HEIGHT / h), BEFORE_AFTER_HEIGHT),
                          interpolation=cv2.INTER_AREA)

    panels = [[panel(flash), panel(enhanced), panel(studio)] for flash, enhanced, studio, _ in rows]
    write_image(path, labelled_grid(panels, ("flash (input)", "enhanced", "studio (registered)"),
                                    row_labels=[caption for *_, caption in rows]))
    return path


def _timed(seconds: dict[str, float], name: str, step: Callable[[], object]) -> object:
    start = time.perf_counter()
    log.info("demo: %s", name)
    result = step()
    seconds[name] = time.perf_counter() - start
    return result


def run_demo(out_dir: str | Path, *, config: DemoConfig = DemoConfig()) -> DemoResult:
    """Run every stage on the embedded portraits into ``out_dir``.

    Returns
    -------
    DemoResult
        Registration error against the virtual studio's ground truth, samples per split, the evaluation
        table and the paths of the pictures to look at.
    """
    from acquisition.session import simulate_sessions
    from datasetgen import BuildConfig, build_shards, write_shard_sheets
    from registration import face_box_error, register_tree, write_contact_sheets

    from ._checkpoint import resolve_checkpoint
    from ._enhance import Enhancer, enhance
    from ._evaluate import evaluate
    from ._train import TrainConfig, train

    out = Path(out_dir)
    raw, aligned, shards, run = out / "raw", out / "aligned", out / "shards", out / "run"
    sheets = out / "sheets"
    seconds: dict[str, float] = {}

    def capture() -> None:
        complete = raw.is_dir() and len(discover_pairs(raw).pairs) == 2 * config.poses
        if not complete:
            simulate_sessions(raw, subjects=2, poses=config.poses, size=config.capture_size, seed=config.seed,
                              resume=raw.is_dir())

    _timed(seconds, "capture", capture)
    registered = _timed(seconds, "register", lambda: register_tree(raw, aligned, workers=config.workers))
    errors = {}
    for pair in discover_pairs(raw).pairs:
        pose_out = aligned / pair.subject / pair.pose
        if pair.meta is not None and (pose_out / "transform.tfm").is_file():
            errors[pair.key] = face_box_error(pose_out, pair.meta)
    registration_sheets = _timed(seconds, "review", lambda: write_contact_sheets(aligned, sheets / "registration"))

    subjects = sorted({pair.subject for pair in discover_pairs(aligned).pairs})
    split_file = out / "split.csv"
    write_text_atomic(split_file, "subject,split\n" + "".join(
        f"{subject},{'train' if i == 0 else 'test'}\n" for i, subject in enumerate(subjects)))
    # The paper's sigma_s = 16 px belongs to 512 px samples: keep the same smoothing relative to the face.
    build = BuildConfig(size=config.sample_size, sigma_s=16.0 * config.sample_size / 512, split_file=split_file,
                        seed=config.seed)
    built = _timed(seconds, "build-h5", lambda: build_shards(aligned, shards, config=build, workers=config.workers))
    shard_sheets = write_shard_sheets(shards, sheets / "shards", count=8, seed=config.seed)

    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                               size=config.sample_size, device="cpu", workers=0, seed=config.seed,
                               width=config.width, val_split="test", offset_weight=config.offset_weight,
                               head_init=config.head_init, upsample=config.upsample)
    last = run / "last.pt"
    _timed(seconds, "train", lambda: train(shards, run, config=train_config, resume=last.is_file()))
    evaluation = _timed(seconds, "evaluate", lambda: evaluate(run, shards, split="test", out_dir=out / "evaluation"))

    held_out = [p for p in discover_pairs(raw).pairs if p.subject == subjects[-1]]
    enhanced = tuple(out / "enhanced" / f"{pair.subject}-{pair.pose}-studio.jpg" for pair in held_out)
    # The epoch with the lowest validation loss: on one training subject a short run soon starts to overfit.
    checkpoint = resolve_checkpoint(run)  # best.pt, else last.pt; a FIFO or a folder there is an error

    def enhance_held_out() -> None:
        enhancer = Enhancer(checkpoint)
        for pair, path in zip(held_out, enhanced, strict=True):
            enhance(enhancer, pair.flash, path)

    _timed(seconds, "enhance", enhance_held_out)
    before_after = _timed(seconds, "before-after", lambda: write_before_after(
        out / "before-after.png", [(p.flash, e, aligned / p.subject / p.pose / "studio.png", f"{p.subject} {p.pose}")
                                   for p, e in zip(held_out, enhanced, strict=True)]))

    pictures = {
        "before and after (flash | enhanced | studio, held-out subject)": before_after,
        "registration contact sheets": registration_sheets[0].parent if registration_sheets else sheets,
        "shard contact sheets": shard_sheets[0].parent if shard_sheets else sheets,
        "loss curve": run / "loss.png",
        "predictions per epoch": run / "samples",
        "enhanced portraits": out / "enhanced",
    }
    status = {name: registered.count(name) for name in ("ok", "flagged", "failed")}
    return DemoResult(out, errors, status, dict(built.samples), evaluation.table, enhanced, pictures, seconds)
