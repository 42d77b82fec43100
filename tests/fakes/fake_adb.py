"""A fake ``adb`` executable: a phone whose state lives in a folder, answering like the real adb.

Run as ``python fake_adb.py ARGS`` through a shell wrapper named ``adb`` on PATH (see :func:`install`). The
phone lives in ``$FAKE_ADB_HOME``:

- ``devices.json``: ``{"SERIAL": "device" | "unauthorized" | "offline"}``;
- ``props.json``: ``getprop`` values;
- ``phone/``: the phone's storage (``/sdcard/DCIM/Camera`` is ``phone/sdcard/DCIM/Camera``);
- ``lens/flash.EXT`` and ``lens/noflash.EXT``: what the camera produces when its AUTO flash fires or not, per
  format (``jpg``, ``heic``, ``dng``);
- ``light``: ``on`` while the studio lamps are on (the AUTO flash fires only when it is not ``on``);
- ``config.json``: ``latency_s`` (trigger to complete file; the first half of that time the file exists
  half-written, as a slow phone pauses between writes; ``visible_after_s`` sets when the half appears),
  ``disconnect_after`` (commands answered before the
  phone vanishes), ``save_to`` (the camera app's folder, default ``/sdcard/DCIM/Camera``; an SD card is
  ``/storage/XXXX-XXXX/DCIM/Camera``; the app creates it with its first picture), ``formats`` (the files one
  shot writes, default ``["jpg"]``; ``["heic"]`` for "high efficiency", ``["dng", "jpg"]`` for RAW + JPEG),
  ``companion_delay_s`` (the files after the first format come this much later, as a phone writes the DNG
  of RAW + JPEG last);
- ``state.json``: screen awake, camera app open, pictures being written; ``log.txt``: every command.

Files carry the phone's times (``stat -c %Y``): a picture's modification time is when the phone wrote it,
however late the fake notices (it writes pending pictures when the next command comes). ``adb shell`` runs
``;``-separated commands as the phone's ``sh`` does; ``date +%s`` prints the phone's clock.

Only the standard library is used (it runs under ``python -S``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

HOME = Path(os.environ.get("FAKE_ADB_HOME", "."))


def _load(name: str, default):
    path = HOME / name
    if path.is_file():
        return json.loads(path.read_text())
    return default


def _save(name: str, value) -> None:
    tmp = HOME / (name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, HOME / name)


def _local(remote: str) -> Path:
    return HOME / "phone" / remote.lstrip("/")


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def _materialise(state: dict) -> None:
    """Pictures being written: half the bytes until ready, then all of them."""
    now = time.time()
    keep = []
    for pending in state.get("pending", []):
        data = Path(pending["source"]).read_bytes()
        target = _local(pending["remote"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if now >= pending["ready_at"]:
            target.write_bytes(data)
            written = pending.get("mtime", pending["ready_at"])  # a file copied in keeps its own time
            os.utime(target, (written, written))
        else:
            if now >= pending["visible_at"] and not (target.is_file() and
                                                    target.stat().st_size == len(data) // 2):
                target.write_bytes(data[: len(data) // 2])
                os.utime(target, (pending["visible_at"], pending["visible_at"]))
            keep.append(pending)
    state["pending"] = keep


def _existing(command: str, remotes: list[str], test) -> tuple[list[tuple[str, Path]], int]:
    """The (remote, local) paths that pass ``test``, and the exit status: 1, with toybox's error on stderr for
    each other one, as ``ls`` and ``stat`` do."""
    found, status = [], 0
    for remote in remotes:
        local = _local(remote)
        if test(local):
            found.append((remote, local))
        else:
            sys.stderr.write(f"{command}: '{remote}': No such file or directory\n")
            status = 1
    return found, status


def _shell(serial: str, words: list[str], state: dict, config: dict) -> int:
    if not words:
        return _fail("interactive shell not supported by the fake")
    command, args = words[0], words[1:]
    if command == "true":
        return 0
    if command == "getprop":
        props = _load("props.json", {})
        print(props.get(args[0], "") if args else "")
        return 0
    if command == "input" and args[:1] == ["keyevent"]:
        code = args[1] if len(args) > 1 else ""
        if code in ("224", "KEYCODE_WAKEUP"):
            state["awake"] = True
        elif code in ("26", "KEYCODE_POWER"):
            state["awake"] = not state.get("awake", False)
        elif code in ("27", "KEYCODE_CAMERA") and state.get("awake") and state.get("camera_open"):
            light = (HOME / "light").read_text().strip() if (HOME / "light").is_file() else "off"
            fired = light != "on"  # the app's AUTO flash
            counter = state.get("counter", 0) + 1
            state["counter"] = counter
            latency = float(config.get("latency_s", 0.2))
            folder = config.get("save_to", "/sdcard/DCIM/Camera").rstrip("/")
            now = time.time()
            for i, ext in enumerate(config.get("formats", ["jpg"])):
                later = float(config.get("companion_delay_s", 0.0)) if i else 0.0
                state.setdefault("pending", []).append({
                    "remote": f"{folder}/IMG_20261125_{counter:06d}.{ext}",
                    "source": str(HOME / "lens" / (f"flash.{ext}" if fired else f"noflash.{ext}")),
                    "visible_at": now + later + float(config.get("visible_after_s", latency / 2)),
                    "ready_at": now + later + latency})
        return 0
    if command == "am" and args[:1] == ["start"]:
        action = args[args.index("-a") + 1] if "-a" in args else ""
        print(f"Starting: Intent {{ act={action} }}")
        if action == "android.media.action.STILL_IMAGE_CAMERA":
            state["camera_open"] = True
        return 0
    if command == "ls":  # toybox ls: -1 one per line, -p marks folders with "/", a header per folder when several
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        paths = [a for a in args if not a.startswith("-")] or ["/"]
        found, status = _existing("ls", paths, Path.is_dir)
        first = True
        for remote, folder in found:
            if len(paths) > 1:
                print(("" if first else "\n") + f"{remote}:")
            first = False
            for entry in sorted(folder.iterdir()):
                print(entry.name + ("/" if "p" in flags and entry.is_dir() else ""))
        return status
    if command == "stat":  # toybox stat: -c FORMAT with %s (size), %Y (modification time), %n (name)
        form = args[args.index("-c") + 1] if "-c" in args else "%n"
        targets = [a for i, a in enumerate(args) if not a.startswith("-") and not (i and args[i - 1] == "-c")]
        found, status = _existing("stat", targets, Path.exists)
        for target, path in found:
            info = path.stat()
            print(form.replace("%s", str(info.st_size)).replace("%Y", str(int(info.st_mtime)))
                  .replace("%n", target))
        return status
    if command == "date":
        print(int(time.time()) if "+%s" in args else time.ctime())
        return 0
    if command == "rm":
        for target in (a for a in args if not a.startswith("-")):
            path = _local(target)
            if path.is_file():
                path.unlink()
            elif "-f" not in args:
                return _fail(f"rm: {target}: No such file or directory")
        return 0
    return _fail(f"/system/bin/sh: {command}: inaccessible or not found", 127)


def main(argv: list[str]) -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / "log.txt", "a") as log:
        log.write(" ".join(argv) + "\n")
    devices = _load("devices.json", {})
    config = _load("config.json", {})
    state = _load("state.json", {})
    state["commands"] = state.get("commands", 0) + 1
    limit = config.get("disconnect_after")
    if limit is not None and state["commands"] > limit:
        devices = {}
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    if not argv:
        return _fail("adb: usage: no command specified")
    if argv[0] == "devices":
        print("List of devices attached")
        for name, status in devices.items():
            print(f"{name}\t{status}")
        print()
        _save("state.json", state)
        return 0
    if argv[0] in ("version", "--version"):
        print("Android Debug Bridge version 1.0.41 (fake)")
        return 0
    if serial is None:
        if not devices:
            return _fail("adb: no devices/emulators found")
        if len(devices) > 1:
            return _fail("adb: more than one device/emulator")
        serial = next(iter(devices))
    if serial not in devices:
        _save("state.json", state)
        return _fail(f"adb: device '{serial}' not found")
    if devices[serial] == "unauthorized":
        return _fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set")
    if devices[serial] != "device":
        return _fail(f"adb: device '{serial}' is {devices[serial]}")
    _materialise(state)
    try:
        if argv[0] == "shell":
            words = shlex.split(" ".join(argv[1:]))  # adb joins the words; the phone's sh splits them again
            status = 0
            while words:  # `a ; b` runs a, then b
                command = words[:words.index(";")] if ";" in words else words
                words = words[len(command) + 1:]
                status = _shell(serial, command, state, config)
            return status
        if argv[0] == "pull":
            remote, local = argv[1], Path(argv[2])
            source = _local(remote)
            if not source.is_file():
                return _fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
            if local.is_dir():
                local = local / source.name
            shutil.copyfile(source, local)
            size = source.stat().st_size
            print(f"{remote}: 1 file pulled, 0 skipped. 9.9 MB/s ({size} bytes in 0.001s)")
            return 0
        return _fail(f"adb: unknown command {argv[0]}")
    finally:
        _save("state.json", state)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
