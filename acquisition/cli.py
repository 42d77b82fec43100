"""`prep` commands of the acquisition stage (thin: parse options, call the library, report)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import FiniteFloatRange, reports_errors, seed_option
from .progress import asking

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


def _check_simulated_size(size: tuple[int, int]) -> None:
    """Refuse a --size the virtual studio cannot render or the toolkit cannot read back, before any rendering."""
    from .sim import check_frame_size

    try:
        check_frame_size(size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--size'") from None


class _Settings:
    """The options' values: the command line's where given there, else the rig file's, else the defaults.

    Remembers which values came from the rig file, so that a value a device refuses (relay 9 on a relay
    board) is blamed on the file and its key (exit 1), and one typed on the command line on the option (exit 2).
    """

    def __init__(self, ctx: click.Context, rig: Path | None) -> None:
        from .rig import load_rig

        self.ctx = ctx
        self.rig = rig
        self.file = load_rig(rig) if rig is not None else {}
        self.from_rig: set[str] = set()

    def __call__(self, name: str, value: Any) -> Any:
        from click.core import ParameterSource

        source = self.ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT) or name not in self.file:
            return value
        self.from_rig.add(name)
        return self.file[name]

    def refused(self, exc: ValueError, name: str) -> Exception:
        """The error for a value a library refused (``exc``): naming the rig key when ``name`` came from the
        rig file (exit 1), else the option (a usage error, exit 2)."""
        from .rig import option_name, rig_value_error

        if name in self.from_rig and self.rig is not None:
            return rig_value_error(self.rig, name, self.file[name], f"is not valid: {exc}")
        return click.BadParameter(str(exc), param_hint=option_name(name))


def _ranged(key: str) -> click.ParamType:
    """The click type of a rig key's option, with the range :data:`acquisition.rig.RIG_KEYS` gives it."""
    from .rig import RIG_KEYS

    spec = RIG_KEYS[key]
    if spec.types == (int,):
        return click.IntRange(*(None if bound is None else int(bound) for bound in (spec.low, spec.high)))
    return FiniteFloatRange(spec.low, spec.high)


def _interactive() -> bool:
    """Prompts between poses only for a person at a terminal; piped or scripted runs go back to back."""
    return sys.stdin.isatty()


def _manual_prompt(message: str) -> None:
    from .errors import AcquisitionError
    from .interrupts import raise_if_interrupted

    try:
        with asking():
            click.prompt(click.style(message, bold=True), default="", show_default=False, prompt_suffix=" ",
                         err=True)
    except click.Abort:  # Ctrl-C, kill, a closed terminal (click turns them into Abort), or standard input ended
        raise_if_interrupted()  # a signal stays the interruption it was (exit 128+N, "interrupted" recorded)
        raise AcquisitionError("manual lamps: no answer from the operator (Ctrl-C, or standard input closed)",
                               hint="run prep capture at a terminal, or use a lamp controller (--lamps)") from None


def _answer(text: str) -> str | None:
    """The operator's answer at the terminal, lower-cased; None when standard input is closed (Ctrl-D).

    Keys pressed before the question appeared (an Enter hit while a pose was being shot) are discarded: they
    answered nothing yet, and must not retake or shoot a pose unasked.
    """
    if sys.stdin.isatty():
        import termios

        with contextlib.suppress(OSError, termios.error):
            termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
    try:
        with asking():
            return click.prompt(text, default="", show_default=False, err=True).strip().lower()
    except click.Abort as abort:  # Ctrl-C or kill at the prompt: the same clean stop as during a pose
        from .interrupts import raise_if_interrupted

        raise_if_interrupted()
        if isinstance(abort.__context__, EOFError):  # click turns Ctrl-D into Abort too
            return None
        raise KeyboardInterrupt from None


def _ask(prompt: Any) -> str:
    if prompt.check is not None:
        return _ask_retake(prompt)
    if prompt.error is not None:
        click.secho(f"{prompt.subject}/{prompt.next_pose} failed: {prompt.error}", fg="red", err=True)
        text = f"[Enter] retry {prompt.next_pose}"
    else:
        text = f"Next: {prompt.subject}/{prompt.next_pose}. [Enter] shoot"
    if prompt.last_pose is not None:
        text += f", r retake {prompt.last_pose}"
    text += f", s skip {prompt.next_pose}, q quit"
    while True:
        answer = _answer(text)
        if answer is None:  # standard input closed: the operator is done
            click.echo("no more answers (standard input closed): quitting", err=True)
            return "quit"
        action = {"": "next", "r": "retake", "s": "skip", "q": "quit"}.get(answer[:1])
        if action == "retake" and prompt.last_pose is None:
            action = None
        if action is not None:
            return action
        click.echo("Answer with Enter, r, s or q.", err=True)


def _ask_retake(prompt: Any) -> str:
    """After a failed check: Enter retakes the pose, k keeps it (then the next pose is asked for), q quits."""
    text = f"[Enter] retake {prompt.last_pose}, k keep it, q quit"
    while True:
        answer = _answer(text)
        if answer is None:
            click.echo("no more answers (standard input closed): quitting", err=True)
            return "quit"
        action = {"": "retake", "k": "next", "q": "quit"}.get(answer[:1])
        if action is not None:
            return action
        click.echo("Answer with Enter (retake), k (keep) or q (quit).", err=True)


def _show_event(event: Any) -> None:
    import logging

    from .progress import say

    log = logging.getLogger("prep.capture")
    if event.kind == "captured":
        d = event.data.get("delays_ms", {})
        log.info("%s/%s captured (settle %.0f ms, between shots %.0f ms, pair %.0f ms)", event.subject,
                 event.pose, d.get("settle", 0), d.get("between_shots", 0), d.get("pair_span", 0))
    elif event.kind == "failed":
        log.warning("%s", event.message)
    elif event.kind == "checked":  # the verdict: one line per pose, whatever the log level
        colour = {"ok": "green", "retake": "red"}.get(event.data.get("status", ""), "yellow")
        line = f"{event.subject}/{event.message}"
        say(click.style(line, fg=colour) if sys.stderr.isatty() else line)
    elif event.kind in ("start", "skipped", "retaking", "rechecking"):
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
        click.option("--dmx-level", type=_ranged("dmx_level"), default=255, show_default=True,
                     help="Lamp level 0-255 when on (relays: any level > 0 is on)."),
        click.option("--lamp-settle-ms", type=_ranged("lamp_settle_ms"), default=None,
                     help="Wait after lamps on before the studio shot. [default: 400; 0 with --simulate]"),
        click.option("--dark-wait-ms", type=_ranged("dark_wait_ms"), default=None,
                     help="Wait after lamps off before the flash shot (a phone on AUTO flash needs ~1000). "
                          "[default: 100; 0 with --simulate]"),
        click.option("--relay-gap-ms", type=_ranged("relay_gap_ms"), default=100.0, show_default=True,
                     help="Time between two relay-board commands, at least 100 (an LCUS board drops a command "
                          "that comes sooner, and cannot say so)."),
        click.option("--camera-busy-timeout-ms", type=_ranged("camera_busy_timeout_ms"), default=5000.0,
                     show_default=True,
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
@click.option("--poses", type=_ranged("poses"), default=5, show_default=True,
              help="Poses per subject, named p01, p02, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("raw"), show_default=True,
              help="The raw layout folder: OUT/<subject>/<pose>/{flash,studio}.jpg + meta.json, OUT/manifest.csv.")
@_device_options
@click.option("--lamps-after", type=click.Choice(["off", "on"]), default="off", show_default=True,
              help="Lamps' state when the session ends or is interrupted (on: lit for the next subject).")
@click.option("--resume", is_flag=True, help="Continue existing subjects after their last complete pose (a pose whose "
              "check a stop cut short is checked first).")
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
@click.option("--blink-probability", type=FiniteFloatRange(0.0, 1.0), default=0.05, show_default=True,
              help="Simulated camera: chance that a pose catches a blink (eyes closed in one of its two shots).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check each pose in the background while you prepare the next (blink, motion, exposure, "
                   "flash, focus): a verdict line per pose, check.jpg, a 'check' column in the manifest.")
@click.option("--auto-retake", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Retake a pose whose check fails up to N times without asking (at a terminal you are asked "
                   "after that: Enter retakes, k keeps).")
@click.option("--fault", "faults", multiple=True, metavar="KIND",
              type=click.Choice(["motion", "overexposed", "no_flash", "blur", "blink"]),
              help="Simulated camera: what goes wrong in a faulty pose (repeat for several kinds): a large "
                   "movement, an over-exposed studio shot, a flash misfire, a blurred shot, a blink.")
@click.option("--fault-probability", type=FiniteFloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Simulated camera, with --fault: chance that a pose's first take has one of them.")
@seed_option
@click.pass_context
@reports_errors
def capture(ctx: click.Context, subject: str | None, poses: int, out: Path, lamps: str | None, camera: str | None,
            dmx_channels: str, dmx_level: int, lamp_settle_ms: float | None, relay_gap_ms: float,
            camera_busy_timeout_ms: float, delete_from_camera: bool | None, adb_folder: str | None,
            rig: Path | None, dark_wait_ms: float | None, lamps_after: str, resume: bool, simulate: bool,
            subjects: int, size: tuple[int, int], portraits: Path | None, motion: str, backdrop: str,
            blink_probability: float, check: bool, auto_retake: int, faults: tuple[str, ...],
            fault_probability: float, seed: int) -> None:
    """Capture flash + studio pairs, pose by pose, with studio lamps and a camera (or --simulate them).

    Per pose: lamps on, settle, studio shot (flash off); lamps off, wait, flash shot. Both files are checked
    (they decode, same size, EXIF Flash fired in the flash shot only), meta.json is written beside them and a
    row is appended to OUT/manifest.csv. A pose is written under a hidden name and renamed only when complete,
    so an interruption leaves no half pair; the lamps end in the --lamps-after state. At a terminal you are
    asked before each pose: Enter shoots, r retakes the last pose, s skips, q quits; otherwise the poses run
    back to back.

    Each pose is checked in the background while you prepare the next (never between its two shots): a face
    in both shots, eyes open in both, little movement, the studio face neither clipped nor dark, the flash
    lighting the subject, both faces sharp, the face registering. One line per pose says "p03 ok" or
    "p03 RETAKE: eyes closed in the flash shot"; the pose folder gets check.jpg and the verdict goes into
    meta.json and the manifest's 'check' column. At a terminal a failed check asks: Enter retakes the pose, k
    keeps it; --auto-retake N retakes without asking; --no-check turns the check off. A check that cannot run
    (no face in either shot) says so and the session goes on.

    \b
    Examples:
      prep capture --subject S012 --poses 5 --out raw/ --lamps enttec:/dev/ttyUSB0 --camera adb
      prep capture --subject S012 --poses 5 --out raw/ --rig rig.toml --resume
      prep capture --subject T01 --lamps relay:/dev/ttyUSB0 --dmx-channels 1,2 --camera sim   # rehearse
      prep capture --simulate --subjects 2 --poses 3 --out raw/ --size 780x1040 --seed 1
      prep capture --simulate --motion subject --backdrop room --blink-probability 0.2 --out raw/
      prep capture --simulate --fault blink --fault blur --auto-retake 2 --out raw/
      prep capture check --lamps enttec:/dev/ttyUSB0 --camera gphoto2
    """
    if ctx.invoked_subcommand is not None:
        return
    from .progress import progress_bar
    from .session import SessionConfig, next_pose_number

    given = _Settings(ctx, rig)
    lamps, camera = given("lamps", lamps), given("camera", camera)
    dmx_level, lamps_after = given("dmx_level", dmx_level), given("lamps_after", lamps_after)
    out, poses = Path(given("out", out)), given("poses", poses)
    quick = 0.0 if simulate else None
    settle = given("lamp_settle_ms", lamp_settle_ms)
    settle = settle if settle is not None else (quick if quick is not None else 400.0)
    dark = given("dark_wait_ms", dark_wait_ms)
    dark = dark if dark is not None else (quick if quick is not None else 100.0)
    channels = _channels(given, dmx_channels)
    ask = _ask if _interactive() else None
    studio = _studio_config(motion, backdrop, blink_probability, faults, fault_probability if faults else 0.0)

    if simulate or (camera or "").strip().lower() == "sim":
        _check_simulated_size(size)
    if simulate:
        if ctx.get_parameter_source("lamps").name == "COMMANDLINE" or \
                ctx.get_parameter_source("camera").name == "COMMANDLINE":
            raise click.UsageError("--simulate uses the virtual studio's lamps and camera; to rehearse with real "
                                   "lamps, give --subject, --lamps and --camera sim instead")
        if subject is not None:
            raise click.UsageError("--simulate names each subject after its portrait; leave out --subject")
        from .session import simulate_sessions

        config = SessionConfig(lamp_level=dmx_level, lamp_settle_ms=settle, dark_wait_ms=dark,
                               expected_size=size, lamps_after=lamps_after, check=check, auto_retake=auto_retake)
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
    from .session import capture_session

    config = SessionConfig(lamp_level=dmx_level, lamp_settle_ms=settle, dark_wait_ms=dark, lamps_after=lamps_after,
                           expected_size=size if camera.strip().lower() == "sim" and
                           ctx.get_parameter_source("size").name == "COMMANDLINE" else None,
                           check=check, auto_retake=auto_retake)
    first = next_pose_number(out, subject) if resume else 1
    with _open_lamps(given, lamps, channels, relay_gap_ms) as lamp_controller:
        portrait = _first_portrait(portraits) if camera.strip().lower() == "sim" else None
        device = _open_camera(given, camera, lamp_controller, camera_busy_timeout_ms, delete_from_camera, adb_folder,
                              portrait=portrait, size=size, seed=seed, sim_config=studio)
        with device, progress_bar(max(0, poses - first + 1), subject, unit="pose") as advance:
            result = capture_session(out, subject, lamp_controller, device, poses=poses, config=config,
                                     resume=resume, ask=ask, on_event=_show_event, progress=advance)
    note = " (quit)" if result.quit else ""
    click.echo(f"{subject}: {len(result.complete)} complete poses in {out / subject}{note}; "
               f"manifest: {out / 'manifest.csv'}")


def _channels(given: _Settings, dmx_channels: str) -> tuple[int, ...]:
    from .lamps import parse_channels

    try:
        return parse_channels(given("dmx_channels", dmx_channels))
    except ValueError as exc:
        raise given.refused(exc, "dmx_channels") from None


def _open_lamps(given: _Settings, spec: str, channels: tuple[int, ...], relay_gap_ms: float) -> Any:
    """The lamp controller; a value it refuses is blamed on the rig key or the option it came from."""
    from .lamps import open_lamps

    try:
        return open_lamps(spec, channels=channels, prompt=_manual_prompt,
                          relay_gap_ms=given("relay_gap_ms", relay_gap_ms))
    except ValueError as exc:
        raise given.refused(exc, "dmx_channels" if "channel" in str(exc) else "lamps") from None


def _open_camera(given: _Settings, spec: str, lamps: Any, busy_timeout_ms: float, delete_from_camera: bool | None,
                 adb_folder: str | None, **sim: Any) -> Any:
    """The camera, with the settings of the command line or the rig file."""
    from .cameras import open_camera

    try:
        return open_camera(spec, lamps=lamps, busy_timeout_ms=given("camera_busy_timeout_ms", busy_timeout_ms),
                           delete_from_camera=given("delete_from_camera", delete_from_camera),
                           folder=given("adb_folder", adb_folder), **sim)
    except ValueError as exc:
        raise given.refused(exc, "camera") from None


def _studio_config(motion: str, backdrop: str, blink_probability: float, faults: tuple[str, ...] = (),
                   fault_probability: float = 0.0) -> Any:
    from ._studio._config import StudioConfig  # the settings only: no renderer imported for a real capture

    return StudioConfig(motion=motion, backdrop=backdrop, blink_probability=blink_probability,
                        faults=tuple(faults), fault_probability=fault_probability)


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
          lamp_settle_ms: float | None, dark_wait_ms: float | None, relay_gap_ms: float,
          camera_busy_timeout_ms: float,
          delete_from_camera: bool | None, adb_folder: str | None, rig: Path | None, blinks: int,
          keep: Path | None) -> None:
    """Self-test the rig: blink the lamps, shoot one test pose as a session does, report latencies and settings.

    The test pose is a lit shot (lamps on, flash off) and a dark shot (lamps off after --dark-wait-ms, flash
    on), checked as a session checks a pose. The report names the camera's image format, focus mode, capture
    target and free card space (gphoto2), or the phone's picture folder (adb), and every file each test shot
    produced. It fails, with the fix, where the first pose would: no usable JPEG (RAW only, or RAW+JPEG whose
    JPEG never comes), a preview instead of the picture, autofocus that cannot lock in the dark, a camera
    busy past --camera-busy-timeout-ms, a card without room for a pose, or no picture at all.

    \b
    Examples:
      prep capture check --lamps enttec:/dev/ttyUSB0 --camera gphoto2
      prep capture check --rig rig.toml --keep check/
    """
    import tempfile

    from .session import check_rig

    given = _Settings(ctx, rig)
    lamps, camera, dmx_level = given("lamps", lamps), given("camera", camera), given("dmx_level", dmx_level)
    settle = given("lamp_settle_ms", lamp_settle_ms)
    settle = 400.0 if settle is None else settle
    dark = given("dark_wait_ms", dark_wait_ms)
    dark = 100.0 if dark is None else dark
    if not lamps or not camera:
        raise click.UsageError("give --lamps and --camera (or a --rig file with lamps = ... and camera = ...)")
    channels = _channels(given, dmx_channels)
    with _open_lamps(given, lamps, channels, relay_gap_ms) as lamp_controller, \
            tempfile.TemporaryDirectory(prefix="prep-check-") as temp:
        device = _open_camera(given, camera, lamp_controller, camera_busy_timeout_ms, delete_from_camera, adb_folder)
        with device:
            report = check_rig(lamp_controller, device, keep or Path(temp), blinks=blinks, level=dmx_level,
                               settle_ms=settle, dark_wait_ms=dark)
    on = ", ".join(f"{v:.1f}" for v in report.lamp_on_ms)
    off = ", ".join(f"{v:.1f}" for v in report.lamp_off_ms)
    cam = report.camera
    click.echo(f"lamps:  {report.lamps.get('backend')} {report.lamps.get('port', '')}".rstrip())
    click.echo(f"camera: {cam.backend} {cam.make} {cam.model}".rstrip())
    for line in _camera_report(cam.settings):
        click.echo(f"  {line}")
    click.echo(f"lamps-on command:  {on} ms")
    click.echo(f"lamps-off command: {off} ms")
    for shot in report.shots:
        label = "lit shot (lamps on, flash off)" if shot.role == "studio" else "dark shot (lamps off, flash on)"
        kind = shot.path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
        wait = f" after {shot.camera_wait_ms:.0f} ms waiting for the busy camera" if shot.camera_wait_ms > 100 else ""
        also = f" + {', '.join(shot.files[1:])}" if len(shot.files) > 1 else ""
        click.echo(f"{label}: {shot.latency_ms:.0f} ms{wait}, {shot.size[0]}x{shot.size[1]} {kind}{also}, "
                   f"flash fired: {shot.flash_fired}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if keep is not None:
        click.echo(f"kept: {', '.join(str(shot.path) for shot in report.shots)}")
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
    focus = settings.get("focusmode") or settings.get("autofocus")
    if focus:
        lines.append(f"focus mode: {focus}")
    if settings.get("imagesize"):
        lines.append(f"image size: {settings['imagesize']}")
    if settings.get("capturetarget"):
        lines.append(f"capture target: {settings['capturetarget']}")
    if settings.get("card_free"):
        room = [int(n) for n in re.findall(r"room for about (\d+) pictures?", settings["card_free"])]
        low = " (nearly full: empty it, or use --delete-from-camera)" if room and max(room) < 50 else ""
        lines.append(f"card: {settings['card_free']}{low}")
    for key, label in (("picture_folder", "picture folder"), ("picture_folders", "picture folders")):
        if settings.get(key):
            lines.append(f"{label}: {settings[key]}")
            break
    return lines


commands: list[click.Command] = [capture]
