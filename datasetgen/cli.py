"""`prep` commands of the datasetgen stage (thin: parse options, call the library, report)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from acquisition.cli_common import (
    FiniteFloatRange,
    force_option,
    input_dir,
    min_face_option,
    output_dir,
    reports_errors,
    seed_option,
    workers_option,
)
from acquisition.interrupts import import_uninterrupted

__all__ = ["commands"]


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated numbers, not {text!r}") from None
    if not values:
        raise click.BadParameter(f"{what} is empty")
    if not all(math.isfinite(v) for v in values):
        raise click.BadParameter(f"{what} must be finite numbers, not {text!r}")
    return values


@click.command("build-h5")
@input_dir("aligned")
@output_dir("shards")
@click.option("--size", type=click.IntRange(16, 8192), default=512, show_default=True,
              help="Side of the square samples in pixels.")
@click.option("--sigma-s", type=FiniteFloatRange(min=0, min_open=True), default=16.0, show_default=True,
              help="Bilateral filter: spatial sigma in pixels of the sample.")
@click.option("--sigma-r", type=FiniteFloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Bilateral filter: range sigma (RGB in [0, 1], Euclidean distance).")
@click.option("--wide-factor", type=FiniteFloatRange(min=1), default=2.0, show_default=True,
              help="The wide framing: the face box's larger side times this.")
@click.option("--rotations", default="-20,-10,0,10,20", show_default=True,
              help="Rotations in degrees about the face-box centre, comma-separated.")
@click.option("--framings", default="wide,face", show_default=True,
              help="Framings: 'wide' (face box x --wide-factor) and/or 'face' (the tight face box).")
@click.option("--mirror/--no-mirror", default=True, show_default=True, help="Add the mirrored twin of each sample.")
@click.option("--face-model", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True,
              help="face_recognition detector (cnn: slower on CPU, finds more profiles).")
@min_face_option
@click.option("--split", "split_text", default="0.8,0.1,0.1", show_default=True,
              help="Train,val,test fractions of the subjects (every sample of a subject in one split).")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of 'subject,split' lines instead of random fractions.")
@seed_option
@click.option("--compression", type=click.Choice(["none", "lzf", "gzip"]), default="none", show_default=True,
              help="HDF5 filter (none reads fastest; a 512 sample takes ~5 MB uncompressed).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="At most this many samples per shard file.")
@click.option("--include-flagged", is_flag=True, help="Also use pairs that registration flagged for review.")
@workers_option
@force_option
@reports_errors
def build_h5(aligned: Path, shards: Path, size: int, sigma_s: float, sigma_r: float, wide_factor: float,
             rotations: str, framings: str, mirror: bool, face_model: str, min_face_px: float | None,
             split_text: str, split_file: Path | None,
             seed: int, compression: str, shard_size: int, include_flagged: bool, workers: int,
             force: bool) -> None:
    """Build HDF5 training shards from registered pairs.

    For each pair of ALIGNED (the output of prep register): find the face, make 20 samples (5 rotations x
    wide/tight framing x mirrored), bilateral-filter them (input BL(flash), target (BL(flash) - BL(studio) + 1)
    / 2) and write SHARDS/<split>-<NNNNN>.h5, index.csv and dataset.json. Splits are by subject. An
    interrupted build resumes where it stopped; the shards are identical for any --workers.

    \b
    Examples:
      prep build-h5 aligned/ shards/
      prep build-h5 aligned/ shards/ --split-file splits.csv --size 256 --workers 2
    """
    from acquisition.progress import progress_bar

    from ._build import BuildConfig, build_shards
    from ._splits import parse_fractions

    try:
        config = BuildConfig(size=size, sigma_s=sigma_s, sigma_r=sigma_r, wide_factor=wide_factor,
                             rotations_deg=_floats(rotations, "--rotations"),
                             framings=tuple(f.strip() for f in framings.split(",") if f.strip()), mirror=mirror,
                             face_model=face_model, min_face_px=min_face_px, split=parse_fractions(split_text),
                             split_file=split_file,
                             seed=seed, compression=compression, shard_size=shard_size,
                             include_flagged=include_flagged)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    with progress_bar(None, "build-h5", unit="pair") as update:
        summary = build_shards(aligned, shards, config=config, workers=workers, force=force, progress=update)
    if summary.up_to_date:
        click.echo(f"{shards}: already up to date ({summary.total} samples); --force rebuilds it")
        return
    for skipped in summary.skipped:
        click.echo(f"skipped {skipped.key}: {skipped.reason}", err=True)
    counts = ", ".join(f"{split} {n}" for split, n in summary.samples.items())
    click.echo(f"{shards}: {len(summary.shards)} shards, {summary.total} samples ({counts}); "
               f"{len(summary.skipped)} skipped" + (f"; resumed {summary.resumed} pairs" if summary.resumed else ""))
    if any(skipped.broken for skipped in summary.skipped):  # the shards are complete; the status flags the inputs
        raise SystemExit(1)


@click.command("verify")
@input_dir("shards")
@reports_errors
def verify(shards: Path) -> None:
    """Re-check a shard folder: hashes, schema, value ranges, index and split disjointness.

    Prints every problem and exits with status 1 if there is any.

    \b
    Example:
      prep verify shards/
    """
    from ._verify import verify_shards

    problems = verify_shards(shards)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {shards}")
    click.echo(f"{shards}: OK")


def _looks_like_shards(folder: Path) -> bool:
    return (folder / "dataset.json").is_file() or any(folder.glob("*.h5"))


def _looks_aligned(folder: Path) -> bool:
    if (folder / "registration.csv").is_file():
        return True
    return any(folder.glob("*/*/valid.png")) or any(folder.glob("*/*/flash.png"))


def _looks_raw(folder: Path) -> bool:
    """A capture folder (prep capture): a manifest, or poses with their meta.json beside flash and studio."""
    if (folder / "manifest.csv").is_file():
        return True
    return any(folder.glob("*/*/meta.json")) and any(folder.glob("*/*/flash.jpg"))


@click.command("review")
@input_dir("folder")
@output_dir("sheets")
@click.option("--count", type=click.IntRange(min=1), default=16, show_default=True,
              help="Shards: how many random samples to show.")
@seed_option
@click.option("--pairs-per-sheet", type=click.IntRange(min=1), default=8, show_default=True,
              help="Aligned pairs and raw poses: rows per contact sheet.")
@reports_errors
def review(folder: Path, sheets: Path, count: int, seed: int, pairs_per_sheet: int) -> None:
    """Write contact sheets to check a stage's output by eye.

    FOLDER is a shard folder (from prep build-h5: random samples, flash | studio | BL(flash) | target), an
    aligned folder (from prep register: each pair's registration), or a raw capture folder (from prep
    capture: each pose's check verdict over flash | studio | face overlay; poses captured without the check
    are checked now, and the raw folder is only read), to look a subject over before they leave.

    \b
    Examples:
      prep review shards/ sheets/
      prep review aligned/ sheets/ --pairs-per-sheet 6
      prep review raw/ sheets/
    """
    if _looks_like_shards(folder):
        from ._sheets import write_shard_sheets

        written = write_shard_sheets(folder, sheets, count=count, seed=seed)
    elif _looks_aligned(folder):
        from acquisition.progress import progress_bar
        from acquisition.runlock import folder_writer

        if (writer := folder_writer(folder)) is not None:  # the sheets still work: finished pairs are complete
            click.echo(f"note: {folder} is being written by another run ({writer}); the sheets show the pairs "
                       "finished so far", err=True)

        try:
            write_contact_sheets = import_uninterrupted("registration").write_contact_sheets
        except ImportError as exc:
            raise click.ClickException(f"registration contact sheets are not available ({exc})") from exc
        with progress_bar(None, "review", unit="pair") as update:
            written = write_contact_sheets(folder, sheets, pairs_per_sheet=pairs_per_sheet, progress=update)
    elif _looks_raw(folder):
        from acquisition.checksheets import write_check_sheets
        from acquisition.progress import progress_bar

        with progress_bar(None, "review", unit="pose") as update:
            written = write_check_sheets(folder, sheets, poses_per_sheet=pairs_per_sheet, progress=update)
    else:
        from acquisition.runlock import refuse_if_being_written

        from .errors import DatasetGenError

        # A first prep build-h5 or prep register has written nothing recognisable yet: say so, not "neither".
        refuse_if_being_written(folder, error=DatasetGenError, then="review it")
        raise DatasetGenError("neither a shard folder (dataset.json, *.h5), an aligned folder (registration.csv, "
                              "<subject>/<pose>/flash.png) nor a raw capture folder (manifest.csv, "
                              "<subject>/<pose>/meta.json)", path=folder,
                              hint="give the output folder of prep build-h5, prep register or prep capture")
    for path in written:
        click.echo(str(path))


commands: list[click.Command] = [build_h5, verify, review]
