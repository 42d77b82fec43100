"""Register one pair: decode, estimate, warp, quality-control, write the aligned pose folder.

The outputs are written one by one through temporary files, and ``registration.json`` (the pair's row of
``registration.csv``, the inputs it came from, the settings) goes last: a pose folder holding it is complete,
so an interrupted run resumes by redoing only the folders without it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition import tool_version
from acquisition.atomic import TEMP_PREFIX, atomic_path, write_bytes_atomic, write_json_atomic
from acquisition.errors import PrepError
from acquisition.faces import DETECTOR_WINDOW_PX, FaceBox
from acquisition.files import content_fingerprint, open_regular, read_text, require_regular
from acquisition.imageio import read_image, write_image
from acquisition.layout import META_NAME, Pair

from ._check import check_face_alignment
from ._config import DEFAULT_CONFIG, AffineEstimate, PairResult, RegistrationConfig
from ._estimate import estimate_affine, find_faces, overlap_fraction
from ._qc import (
    exposure_reasons,
    eye_verdict,
    fallback_reason,
    flash_tag_reasons,
    overlap_reason,
    quality_reasons,
    same_picture_reason,
)
from ._transform import matrix_of
from ._warp import warp_studio
from .errors import RegistrationError

__all__ = ["OUTPUT_NAMES", "RECORD_NAME", "is_complete", "read_record", "register_pair", "result_from_record"]

log = logging.getLogger(__name__)

#: The files of an aligned pose folder, in the order they are written; ``RECORD_NAME`` last marks completion.
OUTPUT_NAMES: Final = ("flash.png", "studio.png", "valid.png", "transform.tfm")
RECORD_NAME: Final = "registration.json"
_RECORD_VERSION: Final = 2


def _fingerprint(path: Path) -> dict:
    return content_fingerprint(path, error=RegistrationError)


def _write_transform(path: Path, transform: sitk.Transform) -> None:
    """``sitk.WriteTransform`` through a temporary name (ITK picks the format by the extension)."""
    with atomic_path(path) as tmp:
        sitk.WriteTransform(transform, str(tmp))


def _write_mask(path: Path, mask: np.ndarray, compression: int) -> None:
    ok, encoded = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 array
        raise RegistrationError("OpenCV could not encode the valid mask", path=path)
    write_bytes_atomic(path, encoded.tobytes())


def read_record(out_dir: Path) -> dict | None:
    """The ``registration.json`` of an aligned pose folder, or None when absent or unreadable."""
    try:
        record = json.loads(read_text(out_dir / RECORD_NAME))
    except (OSError, ValueError, PrepError):
        return None
    return record if isinstance(record, dict) and record.get("version") == _RECORD_VERSION else None


def is_complete(pair: Pair, out_dir: Path, config: RegistrationConfig | None = None) -> bool:
    """Whether ``out_dir`` holds every output of ``pair``, made from the raw files as they are now (and, when
    ``config`` is given, with the same settings: a re-run with new QC limits or sizes redoes the pair)."""
    record = read_record(out_dir)
    if record is None or not all((out_dir / name).is_file() for name in OUTPUT_NAMES):
        return False
    try:
        inputs = [_fingerprint(pair.flash), _fingerprint(pair.studio)]
    except (OSError, PrepError):
        return False
    if config is not None and record.get("config") != json.loads(json.dumps(config.as_dict())):
        return False
    return record.get("inputs") == inputs


def result_from_record(pair: Pair, out_dir: Path, record: dict) -> PairResult:
    """The :class:`PairResult` a finished pose folder recorded (for resumed runs)."""
    row = record["result"]
    return PairResult(subject=pair.subject, pose=pair.pose, status=row["status"], reason=row["reason"],
                      metric_before=_from_json(row["metric_before"]), metric_after=_from_json(row["metric_after"]),
                      iterations=row["iterations"], seconds=row["seconds"], parameters=tuple(row["parameters"]),
                      initialization=row["initialization"], region=row.get("region", ""),
                      face_check_px=_from_json(row.get("face_check_px")),
                      face_check_working_px=_working_reading(record), out_dir=out_dir, skipped=True)


def _working_reading(record: dict) -> float:
    """The face check's reading at its working scale (records of earlier versions hold only its parts)."""
    if "face_check_working_px" in record["result"]:
        return _from_json(record["result"]["face_check_working_px"])
    check = record.get("face_check")
    if not check or not check.get("scale_px"):
        return math.nan
    return _from_json(check.get("error_px")) / float(check["scale_px"])


def _remove_outputs(out_dir: Path) -> None:
    for name in (RECORD_NAME, *OUTPUT_NAMES, "meta.json"):
        (out_dir / name).unlink(missing_ok=True)


def _face_to_check(estimate: AffineEstimate, studio: np.ndarray, config: RegistrationConfig
                   ) -> tuple[FaceBox | None, bool]:
    """The face box (flash frame) the independent check reads, and whether only the studio shot showed it.

    The estimate searches the studio shot only when the flash shot has a face; when it has none, the studio
    shot is searched here, in one pass of the detector over its ``face_max_side_px`` copy (a pair of scenes
    without a face, 12 MP, must not pay for the larger copies), and its face brought into the flash frame
    through the transform.
    """
    if estimate.flash_face is not None:
        return estimate.flash_face, False
    long_side = max(studio.shape[:2])
    one_pass = DETECTOR_WINDOW_PX / 2**config.face_upsample * long_side / min(long_side, config.face_max_side_px)
    faces = find_faces(studio, config=config, min_face_px=one_pass)
    if not faces:
        return None, False
    matrix, translation = matrix_of(estimate.transform)
    corners = np.linalg.solve(matrix, (faces[0].box.corners() - translation).T).T
    (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
    return FaceBox(float(left), float(top), float(right), float(bottom)), True


def _failed(pair: Pair, out_dir: Path, reason: str, seconds: float) -> PairResult:
    # A failed pair leaves no images behind, so aligned/ never offers the dataset builder a pair the CSV rejects.
    _remove_outputs(out_dir)
    log.warning("%s failed: %s", pair.key, reason)
    return PairResult(pair.subject, pair.pose, "failed", reason, seconds=seconds, out_dir=out_dir)


def register_pair(pair: Pair, out_dir: str | Path, *, config: RegistrationConfig = DEFAULT_CONFIG
                  ) -> PairResult:
    """Register one raw pair and write its aligned pose folder.

    Parameters
    ----------
    pair : acquisition.layout.Pair
        The raw flash and studio files (any format :func:`acquisition.imageio.read_image` reads).
    out_dir : str or Path
        The aligned pose folder, e.g. ``aligned/<subject>/<pose>``; created when missing.
    config : RegistrationConfig

    Returns
    -------
    PairResult
        ``ok``, ``flagged`` (kept, with the reasons) or ``failed`` (with the reason, naming the file and the fix:
        the read error, a blank or tiny shot, different aspect ratios, no overlap); the region that led (face or
        frame), the independent face check's reading, the metric before and after, iterations, seconds and the
        six parameters ``(a, b, c, d, tx, ty)`` of ``studio = [[a, b], [c, d]] @ flash + (tx, ty)``.

    Notes
    -----
    Writes ``flash.png`` (the flash shot, upright, pixels untouched), ``studio.png`` (the studio shot warped
    into the flash frame, 0 outside), ``valid.png`` (255 where the warped studio shot has data),
    ``transform.tfm`` (``sitk.ReadTransform`` gives the flash-to-studio affine in full-resolution pixels), a
    copy of ``meta.json`` when the raw pose has one, and ``registration.json`` last. Errors of this pair are
    returned, not raised, except a full disk or an unwritable output folder.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    names = (pair.flash.name, pair.studio.name)
    try:
        inputs = [_fingerprint(pair.flash), _fingerprint(pair.studio)]
        flash = read_image(pair.flash)
        studio = read_image(pair.studio)
        # The pose's record (optional): a FIFO, a folder or a device there is refused, not silently skipped.
        meta = None
        if require_regular(pair.directory / META_NAME, error=RegistrationError):
            with open_regular(pair.directory / META_NAME, error=RegistrationError) as handle:
                meta = handle.read()
    except OSError as exc:
        return _failed(pair, out_dir, f"cannot read {exc.filename or 'the input'} ({exc.strerror or exc})",
                       time.perf_counter() - start)
    except PrepError as exc:
        return _failed(pair, out_dir, str(exc), time.perf_counter() - start)
    try:
        estimate = estimate_affine(flash, studio, config=config, names=names)
    except RegistrationError as exc:
        return _failed(pair, out_dir, str(exc), time.perf_counter() - start)
    too_little = overlap_reason(overlap_fraction(estimate.transform, flash.shape, studio.shape), names, config)
    if too_little is not None:
        return _failed(pair, out_dir, too_little, time.perf_counter() - start)
    # The independent check runs whenever either shot shows a face, whichever region led: a pair that fell back
    # to the whole frame (no face found in one shot, or faces that do not match) is where it is needed most.
    face, studio_face_only = _face_to_check(estimate, studio, config)
    check = None if face is None else check_face_alignment(flash, studio, estimate.transform, face, config=config)
    eyes = eye_verdict(flash, studio, estimate, config)
    reasons = [*same_picture_reason(flash, studio, names), *flash_tag_reasons(pair.flash, pair.studio),
               *exposure_reasons(flash, studio, names, face, estimate),
               *fallback_reason(estimate, studio_face_only, names, config),
               *quality_reasons(estimate, flash.shape, studio.shape, config, check, eyes)]
    warped, valid = warp_studio(studio, estimate.transform, flash.shape, interpolator=config.interpolator)
    del studio

    # A previous, interrupted attempt may have left some outputs and temporary files (a killed process cannot
    # clean up): the record goes first so the folder reads as incomplete until everything below is rewritten.
    (out_dir / RECORD_NAME).unlink(missing_ok=True)
    if out_dir.is_dir():
        for stale in out_dir.glob(TEMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)
    write_image(out_dir / "flash.png", flash, png_compression=config.png_compression)
    write_image(out_dir / "studio.png", warped, png_compression=config.png_compression)
    _write_mask(out_dir / "valid.png", valid, config.png_compression)
    _write_transform(out_dir / "transform.tfm", estimate.transform)
    if meta is not None:
        write_bytes_atomic(out_dir / META_NAME, meta)

    matrix, translation = matrix_of(estimate.transform)
    parameters = (*(float(v) for v in matrix.ravel()), *(float(v) for v in translation))
    seconds = time.perf_counter() - start
    result = PairResult(pair.subject, pair.pose, "flagged" if reasons else "ok", "; ".join(reasons),
                        metric_before=estimate.metric_before, metric_after=estimate.metric_after,
                        iterations=estimate.iterations, seconds=seconds, parameters=parameters,
                        initialization=estimate.initialization, region=estimate.region,
                        face_check_px=math.nan if check is None else check.error_px,
                        face_check_working_px=math.nan if check is None else check.error_view_px, out_dir=out_dir)
    if reasons:
        log.info("%s flagged: %s", pair.key, result.reason)
    record = {
        "version": _RECORD_VERSION,
        "subject": pair.subject,
        "pose": pair.pose,
        "inputs": inputs,
        "result": {"status": result.status, "reason": result.reason, "metric_before": _json_float(result.metric_before),
                   "metric_after": _json_float(result.metric_after), "iterations": result.iterations,
                   "seconds": round(seconds, 3), "parameters": list(parameters),
                   "initialization": result.initialization, "region": result.region,
                   "face_check_px": _json_float(result.face_check_px),
                   "face_check_working_px": _json_float(result.face_check_working_px)},
        "stop_condition": estimate.stop_condition,
        "scale_px": estimate.scale_px,
        "face_check": None if check is None else {"error_px": _json_float(check.error_px),
                                                  "scale_px": check.scale_px, "response": check.response,
                                                  "studio_blur_px": check.studio_blur_px, "ok": check.ok},
        "eyes": None if eyes is None else {**eyes.figures(), "closed_in": eyes.closed_in},
        "config": config.as_dict(),
        "tool_version": tool_version(),
    }
    write_json_atomic(out_dir / RECORD_NAME, record)
    return result


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json(value: float | None) -> float:
    return float("nan") if value is None else float(value)
