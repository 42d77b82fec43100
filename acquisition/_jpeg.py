"""What the JPEG marker structure tells without decoding: is the file whole, and how was it compressed.

libjpeg only *warns* when a scan ends early ("Premature end of JPEG file", "Corrupt JPEG data: premature end
of data segment"): it fills the missing blocks with zeros, so a copy cut mid-scan but still ending in the EOI
marker decodes to a picture whose lower part is flat grey, and Pillow exposes no warning count. Walking the
markers (ITU-T T.81, annex B) finds the end of the image's last scan and which scans the file holds:

- a single-scan (sequential) JPEG is decoded from the bytes *before* its EOI marker: a whole scan then decodes
  as usual (libjpeg needs no EOI once every row is out), whereas a cut scan runs out of data and Pillow raises
  "image file is truncated", with no second decode and no guess;
- a multi-scan (progressive) JPEG needs its EOI to decode, so its scans must cover every coefficient of every
  component down to the last bit (successive approximation ``Al = 0``); a cut removes the scans after it. A cut
  inside the final scan itself only loses the last refinement bit of the lower rows and is not detected.

The quality estimate compares the luminance and chrominance quantization tables with the IJG tables (T.81,
annex K) scaled the way libjpeg's ``jpeg_set_quality`` scales them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

__all__ = ["JpegLayout", "estimate_quality", "jpeg_layout"]

_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_SOS: Final = 0xDA
_EOI: Final = 0xD9
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
_NOT_MARKER_CODES: Final = np.array([0x00, 0xFF, *range(0xD0, 0xD8)], np.uint8)


def _marker_positions(data: bytes) -> np.ndarray:
    """Offsets of every 0xFF that starts a real marker: in entropy-coded data a 0xFF is followed by 0x00
    (stuffing) or a restart marker, and fill bytes (0xFF 0xFF ...) precede a marker (vectorised: a regular
    expression over 64 MB of scan data takes a second, this takes milliseconds)."""
    view = np.frombuffer(data, np.uint8)
    candidates = np.flatnonzero(view[:-1] == 0xFF)
    return candidates[~np.isin(view[candidates + 1], _NOT_MARKER_CODES)]


@dataclass
class JpegLayout:
    """The markers of the first image in a JPEG stream."""

    progressive: bool = False
    components: tuple[int, ...] = ()  #: component ids of the frame (SOF)
    scans: list[tuple[tuple[int, ...], int, int, int, int]] = field(default_factory=list)  #: (ids, Ss, Se, Ah, Al)
    end: int | None = None  #: offset of the EOI marker that closes the image; None when the data ends first

    def complete_coverage(self) -> bool:
        """Whether the scans hold every coefficient of every component at full precision (multi-scan files)."""
        if not self.components or not self.scans:
            return False
        for component in self.components:
            done = np.zeros(64, bool)
            for ids, ss, se, _ah, al in self.scans:
                if component in ids and al == 0:
                    done[ss:se + 1] = True
            if not self.progressive:
                done[:] = any(component in ids for ids, *_ in self.scans)
            if not done.all():
                return False
        return True


def jpeg_layout(data: bytes) -> JpegLayout:
    """Walk the markers of the first image in ``data`` (which starts with SOI); never raises on damage."""
    layout = JpegLayout()
    pos, size = 2, len(data)
    markers: np.ndarray | None = None

    def next_marker(start: int) -> int | None:
        nonlocal markers
        if markers is None:
            markers = _marker_positions(data)
        i = int(np.searchsorted(markers, start))
        return int(markers[i]) if i < len(markers) else None

    try:
        while pos + 1 < size:
            if data[pos] != 0xFF:  # garbage between segments: resynchronise on the next marker
                found = next_marker(pos)
                if found is None:
                    return layout
                pos = found
                continue
            code = data[pos + 1]
            if code == 0xFF:
                pos += 1
                continue
            if code == _EOI:
                layout.end = pos
                return layout
            if code in _STANDALONE:
                pos += 2
                continue
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            body = data[pos + 4:pos + 2 + length]
            if length < 2 or len(body) != length - 2:
                return layout  # the data ends inside a segment header
            if code in _SOF_MARKERS and not layout.components:
                layout.progressive = code in _PROGRESSIVE_SOF
                layout.components = tuple(body[6 + 3 * i] for i in range(body[5]))
            pos += 2 + length
            if code == _SOS:
                count = body[0]
                ids = tuple(body[1 + 2 * i] for i in range(count))
                ss, se, approx = body[1 + 2 * count], body[2 + 2 * count], body[3 + 2 * count]
                layout.scans.append((ids, ss, se, approx >> 4, approx & 0x0F))
                found = next_marker(pos)
                if found is None:
                    return layout
                pos = found
    except IndexError:
        pass
    return layout


def _ijg_tables() -> tuple[np.ndarray, np.ndarray]:
    """The IJG base tables (T.81 annex K.1), natural (row-major) order as Pillow reports them."""
    luma = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
                     56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104,
                     113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int64)
    chroma = np.full(64, 99, np.int64).reshape(8, 8)
    chroma[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
    return luma, chroma.ravel()


def estimate_quality(qtables: dict[int, list[int]] | None) -> int | None:
    """The IJG quality (1-100) whose scaled tables are closest to ``qtables`` (Pillow's ``im.quantization``).

    Exact for files written by libjpeg (Pillow, OpenCV, most software) at any quality; the nearest value for
    cameras, which use their own tables. None when there is no table.
    """
    if not qtables:
        return None
    base = _ijg_tables()
    tables = [np.asarray(qtables[key], np.int64) for key in sorted(qtables)[:2]]
    best, best_error = None, np.inf
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        error = 0.0
        for table, reference in zip(tables, base, strict=False):
            scaled = np.clip((reference * scale + 50) // 100, 1, 255)
            error += float(np.abs(table - scaled).sum())
        if error < best_error:
            best, best_error = quality, error
    return best
