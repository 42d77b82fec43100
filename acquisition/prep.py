"""The ``prep`` console command: one group that assembles the commands of every stage.

Each package contributes a ``commands`` list from its own ``cli.py``; those modules import only click at load
time (heavy libraries are imported inside the commands), so ``prep --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module

import click

from . import tool_version
from .progress import setup_logging

__all__ = ["main"]

#: The packages whose ``cli.commands`` make up ``prep``, in pipeline order.
STAGE_CLIS = ("acquisition.cli", "registration.cli", "datasetgen.cli", "training.cli")


def _pixel_count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from .imageio import parse_pixel_count

    try:
        return parse_pixel_count(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.group(name="prep", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(tool_version(), "--version", prog_name="prep (deepflash)")
@click.option("-v", "--verbose", count=True, help="More detail in the log (repeatable).")
@click.option("-q", "--quiet", count=True, help="Warnings and errors only; no progress bars.")
@click.option("--max-image-pixels", callback=_pixel_count, metavar="N",
              help="Largest image read, in pixels (e.g. 1000M; default 500M, or DEEPFLASH_MAX_IMAGE_PIXELS).")
def main(verbose: int, quiet: int, max_image_pixels: int | None) -> None:
    """DeepFlash: turn a smartphone flash selfie into a studio portrait.

    \b
    The pipeline, one command per stage:
      prep capture   raw/                 capture flash + studio pairs (or --simulate them)
      prep register  raw/ aligned/        align each studio shot onto its flash shot
      prep review    aligned/ sheets/     contact sheets to check registrations (or shards)
      prep build-h5  aligned/ shards/     face crops, x20 augmentation, bilateral encoding
      prep verify    shards/              re-check hashes, schema and splits
      prep train     shards/ run/         train the network (CPU, GPU, torchrun)
      prep evaluate  run/ shards/         SSIM / PSNR / accuracy on a split
      prep enhance   ckpt in/ out/        flash selfie in, studio portrait out
      prep demo      out/                 all of it on the embedded portraits
    """
    setup_logging(verbose - quiet)
    if max_image_pixels is not None:
        from .cli_common import environment
        from .imageio import MAX_PIXELS_ENV

        # through the environment, so worker processes and the library's readers all see it
        click.get_current_context().with_resource(environment(MAX_PIXELS_ENV, max_image_pixels))


for _module in STAGE_CLIS:
    for _command in import_module(_module).commands:
        main.add_command(_command)
