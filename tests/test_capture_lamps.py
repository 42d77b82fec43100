"""Lamp controllers against device emulators on real pseudo-terminals: the exact bytes, spacing, failures."""

from __future__ import annotations

import time

import pytest
from fakes.serial_devices import EnttecEmulator, OpenDmxEmulator, RelayEmulator

from acquisition.errors import AcquisitionError
from acquisition.lamps import (
    EnttecDmxPro,
    OpenDmx,
    RelayBoard,
    build_frame,
    open_lamps,
    parse_channels,
    parse_frame,
    relay_command,
)


def _wait_for(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_frame_bytes_match_the_widget_protocol():
    assert build_frame(3, b"\x00\x00") == bytes([0x7E, 0x03, 0x02, 0x00, 0x00, 0x00, 0xE7])
    frame = build_frame(6, bytes(513))
    assert frame[:4] == bytes([0x7E, 6, 513 & 0xFF, 513 >> 8]) and frame[-1] == 0xE7 and len(frame) == 518
    assert parse_frame(b"\x00junk" + frame + b"\x7e") == (6, bytes(513), 5 + len(frame))
    assert parse_frame(frame[:-3]) is None
    assert relay_command(1, True) == bytes.fromhex("A0 01 01 A2")
    assert relay_command(1, False) == bytes.fromhex("A0 01 00 A1")
    assert relay_command(8, True) == bytes.fromhex("A0 08 01 A9")
    with pytest.raises(ValueError, match="1-8"):
        relay_command(9, True)


def test_enttec_asks_for_parameters_then_sends_label6_universes():
    with EnttecEmulator() as widget:
        with open_lamps(f"enttec:{widget.port}", channels=(1, 2, 3, 4)) as lamps:
            assert widget.messages("get_parameters")[0].data == b"\x00\x00"
            assert lamps.parameters.firmware == "1.68" and lamps.parameters.refresh_rate_hz == 40
            lamps.on(200)
            assert _wait_for(lambda: widget.levels([1, 2, 3, 4, 5]) == [200, 200, 200, 200, 0])
            frame = widget.messages("dmx")[-1].data
            assert frame[0] == 0x00 and len(frame) == 25  # start code + the DMX minimum of 24 slots
            lamps.off()
            assert _wait_for(lambda: widget.levels([1, 2, 3, 4]) == [0, 0, 0, 0])
            assert lamps.state.on is False
        assert widget.errors == []


def test_enttec_high_channels_and_a_port_that_does_not_answer():
    with EnttecEmulator() as widget, EnttecDmxPro(widget.port, channels=(7, 100)) as lamps:
        lamps.on(255)
        assert _wait_for(lambda: widget.levels([7, 100, 8]) == [255, 255, 0])
        assert len(widget.messages("dmx")[-1].data) == 101
    with EnttecEmulator(answer_parameters=False) as silent:
        t = time.perf_counter()
        with pytest.raises(AcquisitionError, match="no Enttec DMX USB Pro answered") as info:
            EnttecDmxPro(silent.port, reply_timeout_s=0.2)
        assert time.perf_counter() - t < 1.5
        assert "opendmx" in str(info.value) and silent.port in str(info.value)


def test_enttec_unplugged_mid_session_names_the_port():
    with EnttecEmulator() as widget, EnttecDmxPro(widget.port) as lamps:
        lamps.on()
        widget.unplug()
        with pytest.raises(AcquisitionError, match="lost the Enttec DMX USB Pro") as info:
            lamps.off()
        assert widget.port in str(info.value) and "--resume" in str(info.value)
        assert lamps.state.on is True  # the state is what was last commanded *successfully*


def test_missing_port_and_bad_specs():
    with pytest.raises(AcquisitionError, match="cannot open the Enttec DMX USB Pro port"):
        open_lamps("enttec:/dev/does-not-exist")
    with pytest.raises(ValueError, match="needs a port"):
        open_lamps("relay")
    with pytest.raises(ValueError, match="unknown lamp backend"):
        open_lamps("dali:/dev/ttyUSB0")
    with pytest.raises(ValueError, match="prompt"):
        open_lamps("manual")
    assert parse_channels("1, 2,3") == (1, 2, 3)
    with pytest.raises(ValueError, match="repeats"):
        parse_channels("1,1")
    with pytest.raises(ValueError, match="outside 1-8"):
        RelayBoard("loop://", channels=(9,))


def test_relay_commands_are_checksummed_and_spaced_so_the_board_takes_all():
    with RelayEmulator(busy_s=0.08) as board, RelayBoard(board.port, channels=(1, 2, 3), gap_ms=100) as lamps:
        lamps.on()
        lamps.off()
        assert _wait_for(lambda: len(board.received) == 6)
        assert board.errors == [] and board.dropped == []
        assert [m.data for m in board.received[:3]] == [relay_command(r, True) for r in (1, 2, 3)]
        gaps = [b.at - a.at for a, b in zip(board.received, board.received[1:], strict=False)]
        assert min(gaps) >= 0.09
        assert board.relays[:3] == [False, False, False]


def test_relay_board_drops_commands_sent_too_fast_so_short_gaps_are_refused(tmp_path):
    import serial

    # The emulator is strict like the board: commands 20 ms apart are lost, and the board cannot say so.
    with RelayEmulator(busy_s=0.08) as board, serial.serial_for_url(board.port, baudrate=9600) as port:
        for relay in (1, 2, 3, 4):
            port.write(relay_command(relay, True))
            port.flush()
            time.sleep(0.02)
        assert _wait_for(lambda: len(board.received) + len(board.dropped) == 4)
        assert board.dropped and board.relays[:4] != [True] * 4
    # So prep refuses such a gap wherever it is given, naming where: the library, the option, the rig file.
    with pytest.raises(ValueError, match="at least 100 ms, got 20"):
        RelayBoard("loop://", channels=(1, 2, 3, 4), gap_ms=20)
    from click.testing import CliRunner

    from acquisition.prep import main

    run = CliRunner().invoke(main, ["capture", "--subject", "S1", "--lamps", "relay:loop://", "--camera", "sim",
                                    "--relay-gap-ms", "20", "--out", str(tmp_path)])
    assert run.exit_code == 2 and "--relay-gap-ms" in run.output and "100" in run.output
    rig = tmp_path / "rig.toml"
    rig.write_text('lamps = "relay:loop://"\ncamera = "sim"\nrelay_gap_ms = 20\n')
    run = CliRunner().invoke(main, ["capture", "--subject", "S1", "--rig", str(rig), "--out", str(tmp_path)])
    assert run.exit_code == 1, run.output
    assert f"{rig}: relay_gap_ms = 20 is out of range: a number >= 100" in run.output
    assert "drops a command" in run.output and "Traceback" not in run.output


def test_open_dmx_refreshes_continuously_and_commands_wait_for_a_packet():
    with OpenDmxEmulator() as line, OpenDmx(line.port, channels=(1, 4)) as lamps:
        lamps.on(128)
        # on() returned after a whole packet carrying the new values went out
        assert _wait_for(lambda: line.levels([1, 2, 4]) == [128, 0, 128], timeout=0.5)
        count = line.packets
        assert _wait_for(lambda: line.packets >= count + 3)  # still refreshing without commands
        lamps.off()
        assert _wait_for(lambda: line.levels([1, 4]) == [0, 0], timeout=0.5)
        assert line.errors == []


def test_open_dmx_unplugged_raises_on_the_next_command():
    with OpenDmxEmulator() as line:
        lamps = OpenDmx(line.port, command_timeout_s=0.5)
        try:
            lamps.on()
            line.unplug()
            with pytest.raises(AcquisitionError, match="lost the Open DMX USB adapter"):
                lamps.off()
        finally:
            lamps.close()


def test_manual_lamps_ask_the_operator():
    asked = []
    with open_lamps("manual", prompt=asked.append) as lamps:
        lamps.on(180)
        lamps.off()
    assert "ON (level 180/255)" in asked[0] and "OFF" in asked[1]


def test_open_dmx_line_sequence_is_break_mark_then_a_full_packet(tmp_path):
    # pyserial's spy:// wrapper logs what the driver is asked to do, break conditions included.
    log = tmp_path / "spy.txt"
    with OpenDmxEmulator() as line:
        lamps = OpenDmx(f"spy://{line.port}?file={log}", channels=(2,))
        lamps.on(77)
        lamps.close()
        assert line.levels([1, 2, 3]) == [0, 77, 0]
    events = []
    for text in log.read_text().splitlines():
        parts = text.split()
        if len(parts) >= 3 and parts[1] == "BRK":
            events.append(parts[2])
        elif len(parts) >= 3 and parts[1] == "TX":
            count = len([p for p in parts[3:19] if len(p) == 2])
            if events and isinstance(events[-1], int):
                events[-1] += count
            else:
                events.append(count)
    assert len(events) >= 6
    for i in range(0, len(events) - 2, 3):
        assert events[i:i + 3] == ["active", "inactive", 513]
    # on the wire 513 slots at 250 kbaud take ~23 ms: the thread keeps that pace even on a fast link
    assert len(events) // 3 <= 10


def test_open_dmx_adapter_whose_driver_cannot_send_a_break_is_refused_at_open():
    # The adapter's driver answers EOPNOTSUPP to the break request (pyserial's break_condition -> TIOCSBRK).
    with OpenDmxEmulator(driver_sends_break=False) as line:
        with pytest.raises(AcquisitionError, match="cannot send a DMX break") as info:
            open_lamps(f"opendmx:{line.url}")
        text = str(info.value)
        assert "Operation not supported" in text and line.url in text
        assert "FTDI" in text and "--lamps enttec:PORT" in text and "unplugged" not in text
        assert line.packets == 0
    # a driver that loses the break later (mid-session) is named the same way, not as an unplugged adapter
    with OpenDmxEmulator() as line:
        lamps = OpenDmx(line.port, command_timeout_s=0.5)
        try:
            import errno

            lamps._failure = OSError(errno.EOPNOTSUPP, "Operation not supported")
            with pytest.raises(AcquisitionError, match="cannot send a DMX break"):
                lamps.on()
        finally:
            lamps.close()


def test_open_dmx_says_its_lamps_go_dark_when_prep_exits(tmp_path):
    from acquisition.cameras import open_camera
    from acquisition.session import SessionConfig, capture_session

    events = []
    with OpenDmxEmulator() as line, OpenDmx(line.port) as lamps:
        assert lamps.holds_state_after_exit is False
        camera = open_camera("sim", lamps=lamps, size=(64, 64))
        config = SessionConfig(lamp_settle_ms=0, dark_wait_ms=0, lamps_after="on")
        capture_session(tmp_path, "S001", lamps, camera, poses=1, config=config, on_event=events.append)
        assert _wait_for(lambda: line.levels([1]) == [255])
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("stay lit only while prep runs" in w and "Enttec" in w for w in warnings), warnings
    with EnttecEmulator() as widget, EnttecDmxPro(widget.port) as lamps:  # the widget repeats on its own: no warning
        events.clear()
        capture_session(tmp_path, "S002", lamps, open_camera("sim", lamps=lamps, size=(64, 64)), poses=1,
                        config=config, on_event=events.append)
    assert not [e for e in events if e.kind == "warning" and "stay lit" in e.message]
