"""`prep` commands of the training stage (thin: parse options, call the library, report)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from acquisition.cli_common import (
    FiniteFloatRange,
    environment,
    input_dir,
    min_face_option,
    output_dir,
    reports_errors,
    seed_option,
)

log = logging.getLogger("prep")


@click.command("train")
@input_dir("shards")
@output_dir("run_dir")
@click.option("--epochs", type=click.IntRange(min=1), default=62, show_default=True,
              help="Passes over the training split (the paper: 62).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Global batch, split across torchrun processes (may change on --resume).")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=1e-5, show_default=True,
              help="Adam learning rate (the paper's; may change on --resume).")
@click.option("--size", type=click.IntRange(min=32), default=None,
              help="Training side in pixels, a multiple of 32 (default: the shards' side; smaller is resized).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N (torchrun: one GPU per process).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="DataLoader worker processes (single-threaded); 0 reads in the training process.")
@seed_option
@click.option("--width", type=FiniteFloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Channel multiplier: 1 = the paper's VGG-16 network, 0.125 = a thin one for CPU tries.")
@click.option("--encoder-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Local VGG-16 state-dict file (torchvision keys features.N.*) to start the encoder from.")
@click.option("--encoder-normalization", type=click.Choice(["imagenet", "vggface", "none"]), default="imagenet",
              show_default=True, help="Input normalisation the encoder weights expect (vggface: 0-255 minus mean).")
@click.option("--encoding", type=click.Choice(["A", "B", "C"]), default="C", show_default=True,
              help="A studio image, B unfiltered difference, C bilateral difference (the paper's Figure 3).")
@click.option("--val-split", default="val", show_default=True,
              help="Split validated after each epoch (skipped with a warning when missing).")
@click.option("--norm", type=click.Choice(["batch", "none"]), default="batch", show_default=True,
              help="Decoder normalisation (batch: the paper's BatchNorm, over the global batch under torchrun).")
@click.option("--offset-weight", type=FiniteFloatRange(0, 1), default=0.0, show_default=True,
              help="Weight of the per-channel mean error added to the paper's centred loss (0 = eq. 5 exactly; "
                   "0.1-1 also learns the global colour/brightness change).")
@click.option("--head-init", type=click.Choice(["xavier", "identity"]), default="xavier", show_default=True,
              help="Last layer: Xavier (the paper) or zero, so training starts from the flash image itself.")
@click.option("--upsample", type=click.Choice(["deconv", "resize"]), default="deconv", show_default=True,
              help="Decoder upsampling: deconv (the paper's 4x4 stride-2 transposed conv) or resize (bilinear x2 + "
                   "3x3 conv: no checkerboard pattern). It fixes the network: --resume keeps the run's.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Cut each epoch after this many steps (quick tries).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write last.pt every N steps (0: at the end of each epoch only).")
@click.option("--resume", is_flag=True,
              help="Continue RUN_DIR/last.pt exactly where it stopped, on any number of processes; options not "
                   "given keep the run's values.")
@reports_errors(resume_needed=lambda params: os.path.lexists(Path(params["run_dir"]) / "last.pt"))
def train_command(shards: Path, run_dir: Path, epochs: int, batch_size: int, lr: float, size: int | None,
                  device: str, workers: int, seed: int, width: float, encoder_weights: Path | None,
                  encoder_normalization: str, encoding: str, val_split: str, norm: str, offset_weight: float,
                  head_init: str, upsample: str, steps_per_epoch: int | None,
                  checkpoint_every: int, resume: bool) -> None:
    """Train the DeepFlash network on the shards of prep build-h5.

    Writes RUN_DIR/last.pt (each epoch, with optimizer state: --resume continues exactly), best.pt (lowest
    validation loss), metrics.csv, loss.png and samples/epoch-NNN.png (flash | prediction | ground truth |
    studio). On a GPU it trains in bf16 autocast with channels-last tensors. Reads exactly the shards that
    SHARDS/dataset.json lists, after checking each against it (prep verify also checks the pixels).

    \b
    Examples:
      prep train shards/ run/ --epochs 62
      prep train shards/ run/ --width 0.125 --size 128 --epochs 2 --device cpu
      prep train shards/ run/ --resume
      torchrun --nproc_per_node 4 -m training train shards/ run/ --batch-size 32
    """
    import dataclasses
    import os

    from click.core import ParameterSource

    from acquisition.errors import PrepError
    from acquisition.progress import progress_bar

    from ._train import TrainConfig, train

    try:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, size=size, device=device, workers=workers,
                             seed=seed, width=width, encoder_weights=str(encoder_weights) if encoder_weights else None,
                             encoder_normalization=encoder_normalization, encoding=encoding, val_split=val_split,
                             norm=norm, offset_weight=offset_weight, head_init=head_init, upsample=upsample,
                             steps_per_epoch=steps_per_epoch,
                             checkpoint_every=checkpoint_every)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    context = click.get_current_context()
    given = {f.name for f in dataclasses.fields(TrainConfig) if f.name in context.params
             and context.get_parameter_source(f.name) not in (ParameterSource.DEFAULT, None)}
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        if main_rank:
            with progress_bar(None, "training", unit="step") as update:
                result = train(shards, run_dir, config=config, resume=resume, given=given, progress=update)
        else:
            result = train(shards, run_dir, config=config, resume=resume, given=given)
    except PrepError as exc:
        if not main_rank and getattr(exc, "every_rank", False):
            _leave_it_to_rank_0()
        raise
    if main_rank and result.history:
        last = result.history[-1]
        extra = (f", validation loss {last['val_loss']:.5f}, SSIM {last['val_ssim']:.4f}, "
                 f"PSNR {last['val_psnr']:.2f} dB" if "val_loss" in last else "")
        epochs, steps = result.epochs, result.global_step
        click.echo(f"{epochs} epoch{'s' * (epochs != 1)}, {steps} step{'s' * (steps != 1)} in {result.seconds:.1f} s: "
                   f"train loss {last['train_loss']:.5f}{extra}; checkpoints in {run_dir}")


def _leave_it_to_rank_0(status: int = 1) -> None:
    """Under torchrun, a problem every process found is reported by rank 0 alone: this process waits, silent,
    for torchrun to stop it once rank 0 has printed the message and exited, and then exits with ``status``."""
    import signal
    import time

    def leave(_signum: int, _frame: object) -> None:
        os._exit(status)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, leave)
    time.sleep(60)
    raise SystemExit(status)


def rank_main() -> None:
    """``python -m training ...``: prep, as one process of ``torchrun`` (or run by hand).

    Under torchrun each process stops when the launcher is gone, however it ended (``kill -9`` too): a watcher
    thread sends it SIGTERM, so it stops like after Ctrl-C, keeping its checkpoints. A usage error (the same on
    every process) is printed by rank 0 only; the others exit with its status.
    """
    from acquisition.parallel import stop_when_parent_dies
    from acquisition.prep import main

    if "TORCHELASTIC_RUN_ID" in os.environ:
        stop_when_parent_dies()
    if int(os.environ.get("RANK", "0")) == 0:
        main(prog_name="prep")
        return
    try:
        status = main(prog_name="prep", standalone_mode=False)
    except click.UsageError as exc:
        _leave_it_to_rank_0(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        raise SystemExit(1) from None
    raise SystemExit(status if isinstance(status, int) else 0)


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, path_type=Path))
@input_dir("shards")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where eval-SPLIT.csv/.md/.json go (default: beside the checkpoint).")
@click.option("--device", default="cpu", show_default=True,
              help="Where the network runs: cpu, cuda, cuda:N or auto (a GPU when there is one).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Samples per batch.")
@reports_errors
def evaluate_command(run_dir: Path, shards: Path, split: str, out_dir: Path | None, device: str,
                     batch_size: int) -> None:
    """Measure a trained network on a split, beside the identity baseline (the flash image).

    RUN_DIR is a run folder of prep train (best.pt, else last.pt) or a .pt file. Prints a table like the
    paper's Table 3: loss (eq. 5), accuracy (eq. 7), SSIM and PSNR of x - 2y + 1 against the preconditioned
    ground truth x - 2t + 1 (eq. 8) and against the studio image; a CSV holds one row per sample.

    \b
    Example:
      prep evaluate run/ shards/ --split test
    """
    from acquisition.progress import progress_bar

    from ._evaluate import evaluate

    with progress_bar(None, "evaluating", unit="sample") as update:
        result = evaluate(run_dir, shards, split=split, out_dir=out_dir, device=device, batch_size=batch_size,
                          progress=update)
    click.echo(f"{result.count} samples of split {split!r} ({result.checkpoint}):\n\n{result.table}\n\n"
               f"per sample: {result.csv_path}")


@click.command("enhance")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--device", default="cpu", show_default=True,
              help="Where the network runs: cpu, cuda, cuda:N or auto (a GPU when there is one).")
@click.option("--force", is_flag=True,
              help="Redo finished work: in a folder, outputs already made from the same photo, checkpoint and "
                   "options; for one photo, replace an existing DEST.")
@min_face_option
@click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True,
              help="Relight every face found (each through its own matte) or only the largest.")
@click.option("--paste", type=click.Choice(["subject", "crop"]), default="subject", show_default=True,
              help="Apply the change through the person's silhouette (the background keeps its pixels) or over "
                   "the feathered square the network saw.")
@reports_errors
def enhance_command(checkpoint: Path, source: Path, dest: Path, device: str, force: bool,
                    min_face_px: float | None, faces: str, paste: str) -> None:
    """Turn flash selfies into studio portraits at their full resolution.

    CHECKPOINT is a .pt file or a run folder of prep train. SOURCE is a photo (DEST: the output file, its
    extension picks the format, or an existing folder to write it into under its own name; an existing file is
    replaced only with --force) or a folder (DEST: a folder; same relative paths; photos that fail, e.g.
    without a face, are reported one line each and the others go on; a re-run skips outputs made from the same
    photo, checkpoint and options, recorded in DEST/.prep-enhance/, and redoes the others). Each face is found,
    framed as in training and relit by the network at the training size; the predicted smooth lighting
    difference is applied at full resolution through the person's silhouette (face, hair, shoulders), so the
    background keeps its pixels and no edge of the square shows. The output keeps the photo's colour profile,
    EXIF (orientation 1, Software noting deepflash), alpha, grey, bit depth and, JPEG to JPEG, its quality.

    \b
    Examples:
      prep enhance run/ selfie.jpg studio.jpg
      prep enhance run/best.pt selfies/ portraits/
      prep enhance run/ group.jpg studio.jpg --faces largest --paste crop
    """
    from acquisition.faces import MIN_FACE_ENV
    from acquisition.imageio import IMAGE_EXTENSIONS
    from acquisition.progress import progress_bar
    from acquisition.runlock import refuse_if_being_written

    from ._enhance import enhance
    from ._enhance_tree import enhance_tree, list_photos
    from .errors import TrainingError

    click.get_current_context().with_resource(environment(MIN_FACE_ENV, min_face_px))  # read by detect_faces
    if source.is_dir():
        with progress_bar(len(list_photos(source, dest)), "enhancing", unit="photo") as update:
            result = enhance_tree(checkpoint, source, dest, device=device, force=force, faces=faces, paste=paste,
                                  progress=update)
        for _path, why in result.failed:
            click.echo(f"failed: {why}", err=True)
        relit = sum(len(one.faces) for one in result.done)
        click.echo(f"{len(result.done)} enhanced ({relit} face{'' if relit == 1 else 's'} relit), "
                   f"{len(result.skipped)} already done, {len(result.failed)} failed -> {dest}")
        if result.failed:  # the others are done; the status tells scripts that some photos need attention
            raise SystemExit(1)
    else:
        target = dest / source.name if dest.is_dir() else dest
        # a folder another run is writing (a folder enhance, a build) is not written into behind its back
        refuse_if_being_written(target.parent, error=TrainingError, then=f"enhance {source.name} again")
        if target.suffix.lower() not in IMAGE_EXTENSIONS:
            raise click.UsageError(f"DEST {dest} names no image format: end it in one of {', '.join(IMAGE_EXTENSIONS)} "
                                   f"(the extension picks the format), or give an existing folder to write "
                                   f"{source.name} into")
        if target.exists() and not force and target.resolve() != source.resolve():
            raise TrainingError("exists already", path=target,
                                hint="pass --force to replace it, or give another output name")
        one = enhance(checkpoint, source, target, device=device, faces=faces, paste=paste)
        where = ", ".join(f"({round(f.center[0])}, {round(f.center[1])})" for f in one.faces)
        click.echo(f"{target} ({one.shape[1]}x{one.shape[0]}, {len(one.faces)} "
                   f"face{'' if len(one.faces) == 1 else 's'} relit at {where}, {one.seconds:.2f} s)")


commands: list[click.Command] = [train_command, evaluate_command, enhance_command]


@click.command("demo")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"))
@click.option("--poses", type=click.IntRange(min=1), default=3, show_default=True, help="Poses per subject.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True, help="Training epochs.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes for registration and dataset building.")
@reports_errors
def demo_command(out: Path, poses: int, epochs: int, workers: int) -> None:
    """Run the whole pipeline on the two embedded portraits and say where the results are.

    A virtual-studio session (skimage's astronaut and matplotlib's Grace Hopper, POSES poses each) →
    registration, checked against the studio's recorded ground truth → contact sheets → shards (one subject
    for training, one for test) → a short CPU training run (resize upsampling: no checkerboard) → evaluation
    beside the identity baseline → enhancement of the held-out subject's flash shots. OUT/before-after.png
    shows flash | enhanced | studio for each held-out pose. Sizes are small so it takes well under two minutes
    on 2 cores; a re-run into the same folder resumes.

    \b
    Example:
      prep demo demo-out/
    """
    from ._demo import DemoConfig, run_demo

    result = run_demo(out, config=DemoConfig(poses=poses, epochs=epochs, workers=workers))
    click.echo(result.summary())


commands.append(demo_command)
