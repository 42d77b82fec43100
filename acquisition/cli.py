"""`prep` commands of the acquisition stage (thin: parse options, call the library, report)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import reports_errors, seed_option

_SIZE_HELP = "Size of the simulated camera's pictures, WIDTHxHEIGHT in pixels (portrait, like a phone)."


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT like 480x640, got {value!r}") from None
    if width < 16 or height < 16:
        raise click.BadParameter(f"both sides must be at least 16 pixels, got {value!r}")
    return width, height


def _from_rig(ctx: click.Context, rig: dict[str, Any], name: str, value: Any) -> Any:
    """The option's value: the command line's if given there, else the rig file's, else the default."""
    from click.core import ParameterSource

    if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        return value
    return rig.get(name, value)


def _interactive() -> bool:
    """Prompts between poses only for a person at a terminal; piped or scripted runs go back to back."""
    return sys.stdin.isatty()


def _manual_prompt(message: str) -> None:
    from .errors import AcquisitionError
    from .interrupts import raise_if_interrupted

    try:
        click.prompt(click.style(message, bold=True), default="", show_default=False, prompt_suffix=" ",
                     err=True)
    except click.Abort:  # Ctrl-C, kill, a closed terminal (click turns them into Abort), or standard input ended
        raise_if_interrupted()  # a signal stays the interruption it was (exit 128+N, "interrupted" recorded)
        raise AcquisitionError("manual lamps: no answer from the operator (Ctrl-C, or standard input closed)",
                               hint="run prep capture at a terminal, or use a lamp controller (--lamps)") from None


def _ask(prompt: Any) -> str:
    if prompt.error is not None:
        click.secho(f"{prompt.subject}/{prompt.next_pose} failed: {prompt.error}", fg="red", err=True)
        text = f"[Enter] retry {prompt.next_pose}"
    else:
        text = f"Next: {prompt.subject}/{prompt.next_pose}. [Enter] shoot"
    if prompt.last_pose is not None:
        text += f", r retake {prompt.last_pose}"
    text += f", s skip {prompt.next_pose}, q quit"
    while True:
        try:
            answer = click.prompt(text, default="", show_default=False, err=True).strip().lower()
        except click.Abort:  # Ctrl-C or kill at the prompt: the same clean stop as during a pose
            from .interrupts import raise_if_interrupted

            raise_if_interrupted()
            raise KeyboardInterrupt from None
        action = {"": "next", "r": "retake", "s": "skip", "q": "quit"}.get(answer[:1])
        if action == "retake" and prompt.last_pose is None:
            action = None
        if action is not None:
            return action
        click.echo("Answer with Enter, r, s or q.", err=True)


def _show_event(event: Any) -> None:
    import logging

    log = logging.getLogger("prep.capture")
    if event.kind == "captured":
        d = event.data.get("delays_ms", {})
        log.info("%s/%s captured (settle %.0f ms, between shots %.0f ms, pair %.0f ms)", event.subject,
                 event.pose, d.get("settle", 0), d.get("between_shots", 0), d.get("pair_span", 0))
    elif event.kind == "failed":
        log.warning("%s", event.message)
    elif event.kind in ("start", "skipped"):
        log.info("%s", event.message)
    elif event.kind == "step":
        log.debug("%s/%s: %s", event.subject, event.pose, event.message)


_lamps_help = "Lamp controller: enttec:PORT | opendmx:PORT | relay:PORT | manual | sim."
_camera_help = "Camera: gphoto2[:PORT] | adb[:SERIAL] | sim."


def _device_options(command: Any) -> Any:
    options = [
        click.option("--lamps", metavar="SPEC", help=_lamps_help),
        click.option("--camera", metavar="SPEC", help=_camera_help),
        click.option("--dmx-channels", metavar="LIST", default="1,2,3,4", show_default=True,
                     help="DMX addresses of the lamps (or relay numbers 1-8 for relay:)."),
        click.option("--dmx-level", type=click.IntRange(0, 255), default=255, show_default=True,
                     help="Lamp level 0-255 when on (relays: any level > 0 is on)."),
        click.option("--lamp-settle-ms", type=click.FloatRange(min=0), default=None,
                     help="Wait after lamps on before the studio shot. [default: 400; 0 with --simulate]"),
        click.option("--relay-gap-ms", type=click.FloatRange(min=0), default=100.0, show_default=True,
                     help="Minimum time between two relay-board commands."),
        click.option("--camera-busy-timeout-ms", type=click.FloatRange(min=0), default=5000.0, show_default=True,
                     help="gphoto2: how long to wait for a busy camera (still writing to a slow card)."),
        click.option("--delete-from-camera/--keep-on-camera", default=None,
                     help="Delete each shot from the camera or phone once it is downloaded and checked (keeps "
                          "the card from filling). [default: gphoto2 keeps, adb deletes]"),
        click.option("--adb-folder", metavar="PATH",
                     help="adb: the camera app's folder on the phone, e.g. /storage/1234-ABCD/DCIM/Camera "
                          "[default: every DCIM folder, internal and SD card]"),
        click.option("--rig", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="TOML file with the same keys as these options (the command line wins)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(name="capture", invoke_without_command=True)
@click.option("--subject", metavar="NAME", help="Subject folder name, e.g. S012 (real capture).")
@click.option("--poses", type=click.IntRange(min=1), default=5, show_default=True,
              help="Poses per subject, named p01, p02, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("raw"), show_default=True,
              help="The raw layout folder: OUT/<subject>/<pose>/{flash,studio}.jpg + meta.json, OUT/manifest.csv.")
@_device_options
@click.option("--dark-wait-ms", type=click.FloatRange(min=0), default=None,
              help="Wait after lamps off before the flash shot (a phone on AUTO flash needs ~1000). "
                   "[default: 100; 0 with --simulate]")
@click.option("--lamps-after", type=click.Choice(["off", "on"]), default="off", show_default=True,
              help="Lamps' state when the session ends or is interrupted (on: lit for the next subject).")
@click.option("--resume", is_flag=True, help="Continue existing subjects after their last complete pose.")
@click.option("--simulate", is_flag=True, help="Use the virtual studio: simulated lamps and camera.")
@click.option("--subjects", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --simulate: the first N portraits, one subject each.")
@click.option("--size", callback=_parse_size, default="3120x4160", show_default=True, help=_SIZE_HELP)
@click.option("--portraits", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of portraits for the simulated camera (default: the embedded ones).")
@click.option("--motion", type=click.Choice(["subject", "camera", "both"]), default="subject", show_default=True,
              help="Simulated camera: what moves between the two shots. subject: the phone stands on a tripod "
                   "and the subject moves (with a slight head turn) in front of a still background; camera: the "
                   "whole frame moves (hand-held phone, still subject); both: the subject's motion plus a small "
                   "camera shake.")
@click.option("--backdrop", type=click.Choice(["scene", "plain", "room"]), default="scene", show_default=True,
              help="Simulated camera: what stands behind the subject. scene: the portrait's own scenery, filled "
                   "in behind the subject; plain: a studio backdrop; room: a textured room with strong edges.")
@click.option("--blink-probability", type=click.FloatRange(0.0, 1.0), default=0.05, show_default=True,
              help="Simulated camera: chance that a pose catches a blink (eyes closed in one of its two shots).")
@seed_option
@click.pass_context
@reports_errors
def capture(ctx: click.Context, subject: str | None, poses: int, out: Path, lamps: str | None, camera: str | None,
            dmx_channels: str, dmx_level: int, lamp_settle_ms: float | None, relay_gap_ms: float,
            camera_busy_timeout_ms: float, delete_from_camera: bool | None, adb_folder: str | None,
            rig: Path | None, dark_wait_ms: float | None, lamps_after: str, resume: bool, simulate: bool,
            subjects: int, size: tuple[int, int], portraits: Path | None, motion: str, backdrop: str,
            blink_probability: float, seed: int) -> None:
    """Capture flash + studio pairs, pose by pose, with studio lamps and a camera (or --simulate them).

    Per pose: lamps on, settle, studio shot (flash off); lamps off, wait, flash shot. Both files are checked
    (they decode, same size, EXIF Flash fired in the flash shot only), meta.json is written beside them and a
    row is appended to OUT/manifest.csv. A pose is written under a hidden name and renamed only when complete,
    so an interruption leaves no half pair; the lamps end in the --lamps-after state. At a terminal you are
    asked before each pose: Enter shoots, r retakes the last pose, s skips, q quits; otherwise the poses run
    back to back.

    \b
    Examples:
      prep capture --subject S012 --poses 5 --out raw/ --lamps enttec:/dev/ttyUSB0 --camera adb
      prep capture --subject S012 --poses 5 --out raw/ --rig rig.toml --resume
      prep capture --subject T01 --lamps relay:/dev/ttyUSB0 --dmx-channels 1,2 --camera sim   # rehearse
      prep capture --simulate --subjects 2 --poses 3 --out raw/ --size 780x1040 --seed 1
      prep capture --simulate --motion subject --backdrop room --blink-probability 0.2 --out raw/
      prep capture check --lamps enttec:/dev/ttyUSB0 --camera gphoto2
    """
    if ctx.invoked_subcommand is not None:
        return
    from .lamps import parse_channels
    from .progress import progress_bar
    from .rig import load_rig
    from .session import SessionConfig, next_pose_number

    settings = load_rig(rig) if rig is not None else {}
    lamps = _from_rig(ctx, settings, "lamps", lamps)
    camera = _from_rig(ctx, settings, "camera", camera)
    dmx_channels = _from_rig(ctx, settings, "dmx_channels", dmx_channels)
    dmx_level = _from_rig(ctx, settings, "dmx_level", dmx_level)
    relay_gap_ms = _from_rig(ctx, settings, "relay_gap_ms", relay_gap_ms)
    lamps_after = _from_rig(ctx, settings, "lamps_after", lamps_after)
    out = Path(_from_rig(ctx, settings, "out", out))
    poses = _from_rig(ctx, settings, "poses", poses)
    quick = 0.0 if simulate else None
    settle = _from_rig(ctx, settings, "lamp_settle_ms", lamp_settle_ms)
    settle = settle if settle is not None else (quick if quick is not None else 400.0)
    dark = _from_rig(ctx, settings, "dark_wait_ms", dark_wait_ms)
    dark = dark if dark is not None else (quick if quick is not None else 100.0)
    try:
        channels = parse_channels(dmx_channels)
        if lamps_after not in ("off", "on"):
            raise ValueError(f"lamps_after must be 'off' or 'on', got {lamps_after!r}")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    ask = _ask if _interactive() else None
    studio = _studio_config(motion, backdrop, blink_probability)

    if simulate:
        if ctx.get_parameter_source("lamps").name == "COMMANDLINE" or \
                ctx.get_parameter_source("camera").name == "COMMANDLINE":
            raise click.UsageError("--simulate uses the virtual studio's lamps and camera; to rehearse with real "
                                   "lamps, give --subject, --lamps and --camera sim instead")
        if subject is not None:
            raise click.UsageError("--simulate names each subject after its portrait; leave out --subject")
        from .session import simulate_sessions

        config = SessionConfig(lamp_level=dmx_level, lamp_settle_ms=settle, dark_wait_ms=dark,
                               expected_size=size, lamps_after=lamps_after)
        with progress_bar(subjects * poses, "simulated poses", unit="pose") as advance:
            results = simulate_sessions(out, subjects=subjects, poses=poses, size=size, seed=seed,
                                        portraits=portraits, config=config, resume=resume, ask=ask, sim_config=studio,
                                        on_event=_show_event, progress=advance)
        for result in results:
            click.echo(f"{result.subject}: {len(result.complete)} complete poses in {out / result.subject}")
        click.echo(f"manifest: {out / 'manifest.csv'}")
        return

    if subject is None:
        raise click.UsageError("give --subject NAME (or --simulate)")
    if not lamps or not camera:
        raise click.UsageError("give --lamps and --camera (or a --rig file with lamps = ... and camera = ...)")
    from .cameras import open_camera
    from .lamps import open_lamps
    from .session import capture_session

    config = SessionConfig(lamp_level=dmx_level, lamp_settle_ms=settle, dark_wait_ms=dark, lamps_after=lamps_after,
                           expected_size=size if camera.strip().lower() == "sim" and
                           ctx.get_parameter_source("size").name == "COMMANDLINE" else None)
    first = next_pose_number(out, subject) if resume else 1
    try:
        lamp_controller = open_lamps(lamps, channels=channels, prompt=_manual_prompt, relay_gap_ms=relay_gap_ms)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lamps") from None
    with lamp_controller:
        try:
            portrait = _first_portrait(portraits) if camera.strip().lower() == "sim" else None
            device = open_camera(camera, lamps=lamp_controller, portrait=portrait, size=size, seed=seed,
                                 sim_config=studio, **_camera_options(ctx, settings, camera_busy_timeout_ms,
                                                                      delete_from_camera, adb_folder))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--camera") from None
        with device, progress_bar(max(0, poses - first + 1), subject, unit="pose") as advance:
            result = capture_session(out, subject, lamp_controller, device, poses=poses, config=config,
                                     resume=resume, ask=ask, on_event=_show_event, progress=advance)
    note = " (quit)" if result.quit else ""
    click.echo(f"{subject}: {len(result.complete)} complete poses in {out / subject}{note}; "
               f"manifest: {out / 'manifest.csv'}")


def _camera_options(ctx: click.Context, settings: dict[str, Any], busy_timeout_ms: float,
                    delete_from_camera: bool | None, adb_folder: str | None) -> dict[str, Any]:
    """The camera settings of the command line or the rig file, as :func:`open_camera` takes them."""
    return {"busy_timeout_ms": _from_rig(ctx, settings, "camera_busy_timeout_ms", busy_timeout_ms),
            "delete_from_camera": _from_rig(ctx, settings, "delete_from_camera", delete_from_camera),
            "folder": _from_rig(ctx, settings, "adb_folder", adb_folder)}


def _studio_config(motion: str, backdrop: str, blink_probability: float) -> Any:
    from ._studio._config import StudioConfig  # the settings only: no renderer imported for a real capture

    return StudioConfig(motion=motion, backdrop=backdrop, blink_probability=blink_probability)


def _first_portrait(folder: Path | None) -> Any:
    from .sim import default_portraits, load_portraits

    return (load_portraits(folder) if folder is not None else default_portraits())[0]


@capture.command(name="check")
@_device_options
@click.option("--blinks", type=click.IntRange(min=1), default=2, show_default=True, help="How often to blink.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the test shot in this folder (default: a temporary folder, removed).")
@click.pass_context
@reports_errors
def check(ctx: click.Context, lamps: str | None, camera: str | None, dmx_channels: str, dmx_level: int,
          lamp_settle_ms: float | None, relay_gap_ms: float, camera_busy_timeout_ms: float,
          delete_from_camera: bool | None, adb_folder: str | None, rig: Path | None, blinks: int,
          keep: Path | None) -> None:
    """Self-test the rig: blink the lamps, take one lit test shot, report the latencies and the camera's settings.

    The report names the camera's image format, capture target and free card space (gphoto2), or the phone's
    picture folder (adb). It fails, with the fix, when the camera gives no usable JPEG (RAW only, or RAW+JPEG
    whose JPEG never comes), a preview instead of the picture, or no picture at all.

    \b
    Examples:
      prep capture check --lamps enttec:/dev/ttyUSB0 --camera gphoto2
      prep capture check --rig rig.toml --keep check/
    """
    import tempfile

    from .cameras import open_camera
    from .lamps import open_lamps, parse_channels
    from .rig import load_rig
    from .session import check_rig

    settings = load_rig(rig) if rig is not None else {}
    lamps = _from_rig(ctx, settings, "lamps", lamps)
    camera = _from_rig(ctx, settings, "camera", camera)
    dmx_level = _from_rig(ctx, settings, "dmx_level", dmx_level)
    settle = _from_rig(ctx, settings, "lamp_settle_ms", lamp_settle_ms)
    settle = 400.0 if settle is None else settle
    if not lamps or not camera:
        raise click.UsageError("give --lamps and --camera (or a --rig file with lamps = ... and camera = ...)")
    try:
        channels = parse_channels(_from_rig(ctx, settings, "dmx_channels", dmx_channels))
        lamp_controller = open_lamps(lamps, channels=channels, prompt=_manual_prompt,
                                     relay_gap_ms=_from_rig(ctx, settings, "relay_gap_ms", relay_gap_ms))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lamps") from None
    with lamp_controller, tempfile.TemporaryDirectory(prefix="prep-check-") as temp:
        try:
            device = open_camera(camera, lamps=lamp_controller,
                                 **_camera_options(ctx, settings, camera_busy_timeout_ms, delete_from_camera,
                                                   adb_folder))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--camera") from None
        with device:
            report = check_rig(lamp_controller, device, keep or Path(temp), blinks=blinks, level=dmx_level,
                               settle_ms=settle)
    on = ", ".join(f"{v:.1f}" for v in report.lamp_on_ms)
    off = ", ".join(f"{v:.1f}" for v in report.lamp_off_ms)
    cam = report.camera
    click.echo(f"lamps:  {report.lamps.get('backend')} {report.lamps.get('port', '')}".rstrip())
    click.echo(f"camera: {cam.backend} {cam.make} {cam.model}".rstrip())
    for line in _camera_report(cam.settings):
        click.echo(f"  {line}")
    click.echo(f"lamps-on command:  {on} ms")
    click.echo(f"lamps-off command: {off} ms")
    kind = report.shot.suffix.lstrip(".").upper().replace("JPG", "JPEG")
    click.echo(f"test shot: {report.shot_latency_ms:.0f} ms, {report.shot_size[0]}x{report.shot_size[1]} {kind}, "
               f"flash fired: {report.flash_fired}")
    if keep is not None:
        click.echo(f"kept: {report.shot}")
    click.echo("rig OK: did the lamps blink?")


def _camera_report(settings: dict[str, Any]) -> list[str]:
    """The settings staff must see before a session: image format, capture target, card space, phone folder."""
    import re

    lines = []
    image_format = settings.get("image_format")
    if image_format is not None:
        note = {"raw+jpeg": ": each shot also downloads the RAW (slower between the shots; JPEG alone is faster)",
                "unknown": ": not a format prep knows; the test shot shows whether a JPEG comes"}
        kind = image_format.rpartition("(")[2].rstrip(")")
        lines.append(f"image format: {image_format}{note.get(kind, '')}")
    elif settings.get("port"):
        lines.append("image format: not reported by the camera (the test shot shows whether a JPEG comes)")
    if settings.get("imagesize"):
        lines.append(f"image size: {settings['imagesize']}")
    if settings.get("capturetarget"):
        lines.append(f"capture target: {settings['capturetarget']}")
    if settings.get("card_free"):
        room = [int(n) for n in re.findall(r"room for about (\d+) pictures", settings["card_free"])]
        low = " (nearly full: empty it, or use --delete-from-camera)" if room and max(room) < 50 else ""
        lines.append(f"card: {settings['card_free']}{low}")
    for key, label in (("picture_folder", "picture folder"), ("picture_folders", "picture folders")):
        if settings.get(key):
            lines.append(f"{label}: {settings[key]}")
            break
    return lines


commands: list[click.Command] = [capture]
