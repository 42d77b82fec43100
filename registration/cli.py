"""`prep` commands of the registration stage (thin: parse options, call the library, report)."""

from __future__ import annotations

from dataclasses import fields
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

from ._config import MIN_FACE_FRACTION, RegistrationConfig

__all__ = ["commands", "register"]

#: RegistrationConfig's defaults, shown by --help (the config module loads SimpleITK only when it registers).
_DEFAULTS = {f.name: f.default for f in fields(RegistrationConfig)}


@click.command(name="register")
@input_dir("raw")
@output_dir("aligned")
@workers_option
@force_option
@seed_option
@click.option("--max-rotation", "max_rotation_deg", type=FiniteFloatRange(min=0), show_default=True,
              default=_DEFAULTS["max_rotation_deg"], metavar="DEG",
              help="Flag a pair whose rotation exceeds this many degrees.")
@click.option("--max-scale-change", type=FiniteFloatRange(min=0), default=_DEFAULTS["max_scale_change"],
              show_default=True, metavar="FRACTION", help="Flag a pair whose scale differs from 1 by more.")
@click.option("--max-shear", type=FiniteFloatRange(min=0), default=_DEFAULTS["max_shear"], show_default=True,
              help="Flag a pair whose shear exceeds this.")
@click.option("--max-shift", "max_shift_fraction", type=FiniteFloatRange(min=0), metavar="FRACTION",
              default=_DEFAULTS["max_shift_fraction"], show_default=True,
              help="Flag a pair whose shift exceeds this fraction of the width.")
@click.option("--ear-threshold", type=FiniteFloatRange(min=0), default=_DEFAULTS["ear_threshold"],
              show_default=True, help="Eye aspect ratio under which an eye counts as closed (blink check).")
@click.option("--min-overlap", type=FiniteFloatRange(0, 1), default=_DEFAULTS["min_overlap"], show_default=True,
              metavar="FRACTION", help="Fail a pair whose studio shot covers less of the flash frame.")
@click.option("--min-mi", "min_mutual_information", type=FiniteFloatRange(min=0), show_default=True,
              default=_DEFAULTS["min_mutual_information"], metavar="NATS",
              help="Flag a pair whose mutual information after registration stays under this (weak match).")
@click.option("--max-face-error", "max_face_error_px", type=FiniteFloatRange(min=0), show_default=True,
              default=_DEFAULTS["max_face_error_px"], metavar="PX",
              help="Flag a pair whose face the independent check finds off by more (pixels of the face's working "
                   "image, about 320 across).")
@click.option("--region", type=click.Choice(["face", "frame"]), default=_DEFAULTS["region"], show_default=True,
              help="'face': the face decides the match when both shots show one (the subject moves, the "
                   "background stays); 'frame': always the whole frame (e.g. a hand-held camera, no subject).")
@click.option("--max-side", "max_side_px", type=click.IntRange(min=32), default=_DEFAULTS["max_side_px"],
              show_default=True, metavar="PX",
              help="Whole-frame registration works on a copy downscaled to at most this many pixels.")
@min_face_option(default_fraction=MIN_FACE_FRACTION)
@reports_errors
def register(raw: Path, aligned: Path, workers: int, force: bool, seed: int, **limits: float | str | None) -> None:
    """Align each studio shot onto its flash shot (affine, mutual information).

    RAW holds <subject>/<pose>/flash.<ext> and studio.<ext>. For every pair, ALIGNED/<subject>/<pose>/
    receives flash.png (upright, untouched), studio.png (warped into the flash frame), valid.png (255 where
    the warped studio shot has data), transform.tfm (flash point to studio point, full-resolution pixels,
    readable by SimpleITK.ReadTransform) and registration.json; ALIGNED/registration.csv has one row per pair:
    status ok / flagged (implausible transform, metric not improved, a blink, a face the independent check
    finds misaligned) / failed (with the reason), and the region that led (face, or frame without a face).

    A re-run skips finished pairs (--force redoes them) and redoes interrupted ones. The exit status is 1
    when any pair failed.

    \b
    Example:
      prep register raw/ aligned/ --workers 2
      prep review aligned/ sheets/
    """
    from acquisition.layout import discover_pairs
    from acquisition.progress import progress_bar

    from ._tree import register_tree

    config = RegistrationConfig(seed=seed, **limits)
    total = len(discover_pairs(raw).pairs)
    with progress_bar(total, "register") as update:
        summary = register_tree(raw, aligned, config=config, workers=workers, force=force, progress=update)
    click.echo(f"{len(summary.results)} pairs: {summary.ok} ok, {summary.flagged} flagged, {summary.failed} "
               f"failed ({summary.skipped} already done) -> {summary.csv_path}")
    problems = [r for r in summary.results if r.status != "ok"]
    for result in problems[:20]:
        click.echo(f"  {result.status:7s} {result.key}: {result.reason}")
    if len(problems) > 20:
        click.echo(f"  ... and {len(problems) - 20} more in {summary.csv_path}")
    if summary.any_failed:
        raise SystemExit(1)


commands: list[click.Command] = [register]
