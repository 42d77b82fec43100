"""Which format a file really holds, from its first bytes (never from its name).

A phone's HEIC renamed ``.jpg``, a RAW file exported without conversion, a PDF saved under a photo's name: the
reader decodes by content and, where it cannot, names what the file is so the message says what to do.
"""

from __future__ import annotations

from typing import Final

from ._tiff import raw_signature

__all__ = ["RAW_SUFFIXES", "UNSUPPORTED_HINTS", "sniff_format"]

_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1",
                                 b"msf1", b"mif2", b"miaf"})
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_VIDEO_BRANDS: Final = frozenset({b"qt  ", b"isom", b"iso2", b"mp41", b"mp42", b"M4V ", b"3gp4", b"3gp5", b"3g2a",
                                  b"avc1", b"dash"})
#: File name extensions of camera RAW formats (several are TIFF inside and would decode to a small preview).
RAW_SUFFIXES: Final = frozenset({".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf",
                                 ".orf", ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw"})

_EXPORT = "export or convert it to JPEG, PNG or TIFF and use that file"
#: Formats that are not photos the toolkit reads, and what to do about each.
UNSUPPORTED_HINTS: Final = {
    "camera RAW file": "export it as JPEG or TIFF from the camera software, or shoot RAW+JPEG and use the JPEG",
    "PDF document": _EXPORT,
    "Photoshop document (PSD)": _EXPORT,
    "JPEG XL": _EXPORT,
    "video (MP4/MOV)": "extract a still frame as JPEG or PNG",
    "SVG drawing": _EXPORT,
    "web page (HTML)": "save the picture itself, not the page",
    "ZIP archive": "unpack it and use the photos inside",
    "text file": "copy the real photo again from the camera",
}


def _ftyp_kind(data: bytes) -> str | None:
    size = int.from_bytes(data[:4], "big")
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, min(max(size, 16), 64, len(data)) - 3, 4)}
    if b"crx " in brands:
        return "camera RAW file"
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    if data[8:12] == b"jxl ":
        return "JPEG XL"
    if brands & _VIDEO_BRANDS:
        return "video (MP4/MOV)"
    return None


def _text_kind(head: bytes) -> str | None:
    text = head.decode("utf-8", errors="replace").lower()
    if "<svg" in text:
        return "SVG drawing"
    if "<html" in text or "<!doctype html" in text:
        return "web page (HTML)"
    printable = sum((ch.isprintable() and ch != "\ufffd") or ch in "\r\n\t" for ch in text)
    return "text file" if text and printable >= 0.95 * len(text) else None


def sniff_format(data: bytes, suffix: str = "") -> str:
    """The format of encoded image ``data``: a Pillow format name or a kind of :data:`UNSUPPORTED_HINTS`.

    Returns ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"HEIF"``, ``"AVIF"``, ``"WEBP"``, ``"GIF"``, ``"BMP"``,
    ``"JPEG2000"``, a key of :data:`UNSUPPORTED_HINTS`, or ``"unknown"`` (which Pillow may still open).
    TIFF-structured RAW files (DNG, NEF, ARW, CR2...) are told from TIFF photos by their structure
    (:func:`acquisition._tiff.raw_signature`), whatever their name; a RAW ``suffix`` (the file's extension)
    marks one too.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if data[8:10] == b"CR" or suffix.lower() in RAW_SUFFIXES or raw_signature(data) is not None:
            return "camera RAW file"
        return "TIFF"
    if data[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00") or data.startswith(b"FUJIFILMCCD-RAW"):
        return "camera RAW file"
    if data[4:8] == b"ftyp":
        kind = _ftyp_kind(data)
        if kind is not None:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if data.startswith(b"%PDF"):
        return "PDF document"
    if data.startswith(b"8BPS"):
        return "Photoshop document (PSD)"
    if data.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    return _text_kind(data[:512]) or "unknown"
