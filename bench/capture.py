"""How much time the capture software adds to a pose, beyond the lamps' settle time and the camera's latency.

The lamps are the Enttec DMX USB Pro and LCUS relay-board emulators on real pseudo-terminals (the same bytes as
the hardware); the camera is a stand-in with a known, fixed latency that writes a JPEG whose EXIF Flash tag
says whether the lamps were off (so the session's checks run as with a phone on AUTO flash). The anchor of each
row is what the hardware itself needs, measured in the same run: the configured settle and dark wait, the
camera's latency timed on its own, and for relays the spacing the board requires between commands.

    .venv/bin/python bench/capture.py [--poses 5] [--latency-ms 150]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--settle-ms", type=float, default=400.0)
    parser.add_argument("--dark-wait-ms", type=float, default=100.0)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
