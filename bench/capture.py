"""How much time the capture software adds to a pose, beyond the lamps' settle time and the camera's latency,
and what the capture-time pair check costs and catches.

The lamps are the Enttec DMX USB Pro and LCUS relay-board emulators on real pseudo-terminals (the same bytes as
the hardware); the camera is a stand-in with a known, fixed latency that writes a JPEG whose EXIF Flash tag
says whether the lamps were off (so the session's checks run as with a phone on AUTO flash). The anchor of each
row is what the hardware itself needs, measured in the same run: the configured settle and dark wait, the
camera's latency timed on its own, and for relays the spacing the board requires between commands.

The pair check (:mod:`acquisition.posecheck`) is timed on a 12 MP virtual-studio pose on one core, beside the
full registration of the same pair (``registration.estimate_affine``, the anchor); its false alarms are counted
over good virtual-studio poses and its catches over poses with one fault each (large motion, over-exposed
studio shot, flash misfire, blurred shot, blink; the virtual studio's ``faults``), both portraits and all
backdrops, the fault recorded by the studio as the truth.

    .venv/bin/python bench/capture.py [--poses 5] [--latency-ms 150] [--check-poses 50] [--check-size 960x1280]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from fakes.serial_devices import EnttecEmulator, RelayEmulator  # noqa: E402

from acquisition.atomic import write_bytes_atomic  # noqa: E402
from acquisition.devices import Camera, CameraInfo, LampController, Shot  # noqa: E402
from acquisition.exif import make_exif  # noqa: E402
from acquisition.imageio import encode_image, read_image  # noqa: E402
from acquisition.lamps import EnttecDmxPro, RelayBoard  # noqa: E402
from acquisition.session import SessionConfig, capture_session  # noqa: E402


class FixedLatencyCamera(Camera):
    """Fires ``latency_s`` after the trigger and saves a 640x480 JPEG; its flash fires when the lamps are off."""

    def __init__(self, lamps: LampController, latency_s: float) -> None:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        self._jpeg = {fired: encode_image(image, ".jpg", exif=make_exif(make="Bench", model="Fixed latency",
                                                                        flash_fired=fired, flash_mode="auto"))
                      for fired in (False, True)}
        self.lamps = lamps
        self.latency_s = latency_s

    def info(self) -> CameraInfo:
        return CameraInfo("bench", "Bench", "Fixed latency", {"latency_s": self.latency_s})

    def capture(self, path, *, flash):
        triggered = time.time()
        end = time.perf_counter() + self.latency_s
        fired = not self.lamps.state.on
        while time.perf_counter() < end:
            time.sleep(min(0.005, max(0.0, end - time.perf_counter())))
        write_bytes_atomic(path, self._jpeg[fired])
        return Shot(Path(path), flash, fired, triggered, time.time())


def _camera_latency_ms(camera: FixedLatencyCamera, folder: Path, n: int = 5) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        camera.capture(folder / f"probe{i}.jpg", flash="off")
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def _session(lamps: LampController, camera: FixedLatencyCamera, root: Path, poses: int, config: SessionConfig):
    spans: dict[str, list[float]] = {"pose": [], "between": [], "after": []}
    started: dict[str, float] = {}

    def on_event(event):
        if event.kind == "pose":
            started[event.pose] = time.perf_counter()
        elif event.kind == "captured":
            d = event.data["delays_ms"]
            spans["pose"].append(d["pose_total"])
            spans["between"].append(d["between_shots"])
            whole = (time.perf_counter() - started[event.pose]) * 1000.0
            spans["after"].append(whole - d["pose_total"])

    capture_session(root, "B001", lamps, camera, poses=poses, config=config, on_event=on_event)
    return {k: statistics.median(v) for k, v in spans.items()}


FAULT_WORDS = {"blink": "eyes closed", "motion": "moved", "overexposed": "over-exposed",
               "no_flash": "flash", "blur": "blurred"}


def _check_rates(count: int, size: tuple[int, int]) -> dict[str, float]:
    """False alarms over ``count`` good poses, catches over ``count`` poses with a fault (each kind in turn)."""
    from acquisition.posecheck import check_pair
    from acquisition.sim import StudioConfig, default_portraits, render_pair

    portraits = default_portraits()
    backdrops = ("scene", "plain", "room")
    faults = tuple(FAULT_WORDS)
    good = {"retake": 0, "unchecked": 0, "seconds": []}
    bad = {"retake": 0, "named": 0, "unchecked": 0, "missed": []}
    for i in range(count):
        portrait, backdrop = portraits[i % len(portraits)], backdrops[(i // len(portraits)) % len(backdrops)]
        pair = render_pair(portrait, size=size, seed=1000 + i,
                           config=StudioConfig(backdrop=backdrop, blink_probability=0.0))
        result = check_pair(pair.flash, pair.studio)
        good["seconds"].append(result.seconds)
        if result.status != "ok":
            good[result.status] += 1
            print(f"  false alarm: {portrait.name} {backdrop} seed {1000 + i}: {result.summary}")
        kind = faults[i % len(faults)]
        pair = render_pair(portrait, size=size, seed=2000 + i,
                           config=StudioConfig(backdrop=backdrop, blink_probability=0.0, faults=(kind,),
                                               fault_probability=1.0))
        result = check_pair(pair.flash, pair.studio)
        if result.status == "retake":
            bad["retake"] += 1
            bad["named"] += any(FAULT_WORDS[kind] in p for p in result.problems)
        else:
            bad[result.status] += result.status == "unchecked"
            bad["missed"].append(f"{portrait.name} {backdrop} seed {2000 + i} {kind} ({pair.pose.fault_shot})")
            print(f"  missed: {bad['missed'][-1]}: {result.summary}")
    return {"false_alarm": good["retake"] / count, "good_unchecked": good["unchecked"] / count,
            "catch": bad["retake"] / count, "named": bad["named"] / count,
            "median_seconds": statistics.median(good["seconds"])}


def _check_timing(folder: Path) -> tuple[float, float, float]:
    """Seconds for one 12 MP pose: decode both shots + check, the check alone, the full registration (anchor)."""
    import cv2

    from acquisition.imageio import write_image
    from acquisition.posecheck import check_pair
    from acquisition.sim import StudioConfig, default_portraits, render_pair
    from registration import estimate_affine

    cv2.setNumThreads(1)
    pair = render_pair(default_portraits()[0], size=(3120, 4160), seed=7, config=StudioConfig(blink_probability=0))
    write_image(folder / "flash.jpg", pair.flash, quality=92)
    write_image(folder / "studio.jpg", pair.studio, quality=92)
    check_pair(pair.flash, pair.studio)  # warm-up: dlib's models load once per process
    with_decode, alone, anchor = [], [], []
    for _ in range(3):
        t = time.perf_counter()
        flash, studio = read_image(folder / "flash.jpg"), read_image(folder / "studio.jpg")
        t_decoded = time.perf_counter()
        check_pair(flash, studio)
        t_checked = time.perf_counter()
        estimate_affine(flash, studio)
        anchor.append(time.perf_counter() - t_checked)
        with_decode.append(t_checked - t)
        alone.append(t_checked - t_decoded)
    return statistics.median(with_decode), statistics.median(alone), statistics.median(anchor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--settle-ms", type=float, default=400.0)
    parser.add_argument("--dark-wait-ms", type=float, default=100.0)
    parser.add_argument("--check-poses", type=int, default=50, help="good poses, and as many faulty ones")
    parser.add_argument("--check-size", default="960x1280", help="size of the rate poses, WIDTHxHEIGHT")
    parser.add_argument("--skip-lamps", action="store_true", help="only the pair check's rows")
    args = parser.parse_args()
    check_rows = _check_rows(args)
    if args.skip_lamps:
        _print_rows(check_rows)
        return
    config = SessionConfig(lamp_settle_ms=args.settle_ms, dark_wait_ms=args.dark_wait_ms)
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        with EnttecEmulator() as widget, EnttecDmxPro(widget.port, channels=(1, 2, 3, 4)) as lamps:
            camera = FixedLatencyCamera(lamps, args.latency_ms / 1000.0)
            latency = _camera_latency_ms(camera, temp)
            got = _session(lamps, camera, temp / "enttec", args.poses, config)
            decode = []
            for pose in ("p01", "p02"):
                t = time.perf_counter()
                for role in ("flash.jpg", "studio.jpg"):
                    read_image(temp / "enttec/B001" / pose / role)
                decode.append((time.perf_counter() - t) * 1000.0)
        anchor = args.settle_ms + args.dark_wait_ms + 2 * latency
        rows.append(("pose (lamps on → flash saved), Enttec emulator, ms", got["pose"], anchor,
                     "ours − anchor < 20 ms"))
        rows.append(("between the shots (studio saved → flash trigger), Enttec, ms", got["between"],
                     args.dark_wait_ms, "ours − anchor < 20 ms"))
        rows.append(("checks + meta.json + manifest after the flash shot, ms", got["after"],
                     statistics.median(decode), "not between the shots"))
        with RelayEmulator(busy_s=0.08) as board, RelayBoard(board.port, channels=(1, 2, 3, 4),
                                                             gap_ms=100) as lamps:
            camera = FixedLatencyCamera(lamps, args.latency_ms / 1000.0)
            got = _session(lamps, camera, temp / "relay", args.poses, config)
            assert not board.dropped and not board.errors, (board.dropped, board.errors)
        spacing = 3 * 100.0  # four relays per switch: three gaps the board needs
        rows.append(("pose, LCUS relay emulator (4 relays), ms", got["pose"],
                     args.settle_ms + args.dark_wait_ms + 2 * latency + 2 * spacing, "ours − anchor < 20 ms"))
        rows.append(("between the shots, relay board, ms", got["between"], args.dark_wait_ms + spacing,
                     "ours − anchor < 20 ms"))
    print(f"settle {args.settle_ms:g} ms, dark wait {args.dark_wait_ms:g} ms, camera latency {latency:.1f} ms "
          f"(configured {args.latency_ms:g}), median of {args.poses} poses\n")
    print("| figure | ours | anchor | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for figure, ours, anchor, target in rows:
        print(f"| {figure} | {ours:.1f} | {anchor:.1f} | {ours / anchor:.3f} | {target} (added {ours - anchor:.1f}) |")
    _print_rows(check_rows)


def _check_rows(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """The pair check's rows: time per 12 MP pose beside the full registration, false alarms, catches."""
    width, height = (int(v) for v in args.check_size.lower().split("x"))
    with tempfile.TemporaryDirectory() as temp:
        with_decode, alone, anchor = _check_timing(Path(temp))
    rates = _check_rates(args.check_poses, (width, height))
    n = args.check_poses
    return [
        ("pair check per 12 MP pose, decode + check, one core, s", f"{with_decode:.2f}",
         f"{anchor:.2f} (full registration of the pair)", f"≤ 1.5 s (ratio {with_decode / anchor:.2f})"),
        ("pair check alone (the session decodes once, for its own checks), s", f"{alone:.2f}", f"{anchor:.2f}",
         f"ratio {alone / anchor:.2f}"),
        (f"false alarms over {n} good poses ({width}x{height}, both portraits, 3 backdrops)",
         f"{rates['false_alarm']:.0%}", f"not checked {rates['good_unchecked']:.0%}", "≤ 2 %"),
        (f"catch rate over {n} poses with one fault each (5 kinds)", f"{rates['catch']:.0%}",
         f"with the right reason {rates['named']:.0%}", "≥ 95 %"),
    ]


def _print_rows(rows: list[tuple[str, str, str, str]]) -> None:
    print("\n| pair check | ours | anchor | target |")
    print("| --- | --- | --- | --- |")
    for figure, ours, anchor, target in rows:
        print(f"| {figure} | {ours} | {anchor} | {target} |")


if __name__ == "__main__":
    main()
