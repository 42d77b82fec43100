"""Register every pair of a raw session tree into an aligned tree, resumably and in parallel."""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from acquisition.atomic import write_text_atomic
from acquisition.errors import PrepError
from acquisition.files import require_regular
from acquisition.folders import check_apart
from acquisition.interrupts import raise_if_interrupted
from acquisition.layout import LayoutProblem, Pair, discover_pairs, pose_dir
from acquisition.parallel import map_in_order
from acquisition.progress import ProgressCallback, announce_total
from acquisition.runlock import claim_folder, note_folders_being_written
from acquisition.tables import read_csv_rows

from ._config import DEFAULT_CONFIG, PairResult, RegistrationConfig, RegistrationSummary
from ._pair import OUTPUT_NAMES, RECORD_NAME, is_complete, read_record, register_pair, result_from_record
from .errors import RegistrationError

__all__ = ["CSV_COLUMNS", "CSV_NAME", "read_registration_csv", "register_tree"]

log = logging.getLogger(__name__)

CSV_NAME: Final = "registration.csv"
#: ``a, b, c, d, tx, ty``: ``studio = [[a, b], [c, d]] @ flash + (tx, ty)`` in full-resolution pixels;
#: ``region``: what led the match (``face`` or ``frame``); ``face_check_px``: the independent check's
#: reading of the face's misalignment, full-resolution pixels, and ``face_check_working_px`` the same at the
#: check's working scale, which ``--max-face-error`` limits (both empty without a face).
CSV_COLUMNS: Final = ("subject", "pose", "status", "reason", "metric_before", "metric_after", "iterations",
                      "seconds", "a", "b", "c", "d", "tx", "ty", "initialization", "region", "face_check_px",
                      "face_check_working_px")


@dataclass(frozen=True)
class _Job:
    pair: Pair
    out_dir: Path
    config: RegistrationConfig
    force: bool


def _run_job(job: _Job) -> PairResult:
    """One pair, in a worker: skip it when finished, else register it; never raise for this pair's data."""
    try:  # a folder or a FIFO where an output file goes would hang the resume test or fail the writes
        for name in (RECORD_NAME, *OUTPUT_NAMES):
            require_regular(job.out_dir / name, error=RegistrationError)
    except PrepError as exc:
        return PairResult(job.pair.subject, job.pair.pose, "failed", str(exc), out_dir=job.out_dir)
    if not job.force and is_complete(job.pair, job.out_dir, job.config):
        record = read_record(job.out_dir)
        if record is not None:
            return result_from_record(job.pair, job.out_dir, record)
    # A PrepError from writing (disk full, permissions) propagates: every other pair would fail the same way.
    try:
        return register_pair(job.pair, job.out_dir, config=job.config)
    except (RuntimeError, ValueError, MemoryError) as exc:
        # A stop signal that a C++ library turned into its own error stops the command, not this pair.
        raise_if_interrupted()
        # SimpleITK and OpenCV raise RuntimeError/ValueError on input they cannot handle; one bad pair must not
        # stop a session of hundreds, so the pair fails with one line and the others go on (-v shows where).
        log.debug("%s: unexpected error", job.pair.key, exc_info=True)
        names = f"{job.pair.flash.name} and {job.pair.studio.name}"
        if isinstance(exc, MemoryError):
            reason = (f"not enough memory to register {names} (close other programs, or run with --workers 1)")
        else:
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            reason = (f"{names} could not be registered: unexpected {type(exc).__name__} ({detail}); this is a bug: "
                      "please report it with the two files (prep -v register shows where it happened)")
        log.warning("%s failed: %s", job.pair.key, reason)
        return PairResult(job.pair.subject, job.pair.pose, "failed", reason, out_dir=job.out_dir)


def _problem_row(raw_dir: Path, problem: LayoutProblem) -> PairResult:
    try:
        parts = problem.path.relative_to(raw_dir).parts
    except ValueError:
        parts = (problem.path.name,)
    subject = parts[0] if parts else ""
    pose = parts[1] if len(parts) > 1 else ""
    return PairResult(subject, pose, "failed", str(problem.reason) + f" ({problem.path})")


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.10g}"


def _csv_text(results: list[PairResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        writer.writerow([r.subject, r.pose, r.status, r.reason, _number(r.metric_before), _number(r.metric_after),
                         r.iterations, f"{r.seconds:.3f}", *(_number(v) for v in r.parameters), r.initialization,
                         r.region, _number(r.face_check_px), _number(r.face_check_working_px)])
    return out.getvalue()


def read_registration_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``registration.csv`` as dicts keyed by :data:`CSV_COLUMNS` (empty when missing), each with
    its ``line`` in the file; a damaged row (not UTF-8, a NUL, an unbalanced quote, a pose named twice) is
    logged, file and line, and left out."""
    path = Path(path)
    if not require_regular(path, error=RegistrationError):
        return []
    try:
        rows, problems = read_csv_rows(path, required=("subject", "pose", "status"), key=("subject", "pose"),
                                       error=RegistrationError)
    except OSError as exc:
        raise RegistrationError(f"cannot be read ({exc.strerror or exc})", path=path,
                                hint="run prep register again") from exc
    for problem in problems:
        log.warning("%s (the row is left out; run prep register again)", problem)
    return [{**row.values, "line": str(row.line)} for row in rows]


def register_tree(raw_dir: str | Path, aligned_dir: str | Path, *, config: RegistrationConfig = DEFAULT_CONFIG,
                  workers: int = 1, force: bool = False, progress: ProgressCallback | None = None
                  ) -> RegistrationSummary:
    """Register every pair under ``raw_dir`` into ``aligned_dir`` (same ``<subject>/<pose>`` layout).

    Parameters
    ----------
    raw_dir : str or Path
        ``<subject>/<pose>/flash.<ext>`` + ``studio.<ext>`` (the capture layout).
    aligned_dir : str or Path
        Receives ``<subject>/<pose>/{flash.png, studio.png, valid.png, transform.tfm, registration.json}``
        and ``registration.csv``; created when missing. Must not be inside ``raw_dir`` (nor contain it).
    config : RegistrationConfig
    workers : int
        Processes; the outputs are byte-identical for any number (fixed sampling seed, one thread each).
    force : bool
        Redo pairs whose outputs are complete; without it they are skipped (incomplete ones are redone).
    progress : callable, optional
        Called with 1 after each pair.

    Returns
    -------
    RegistrationSummary
        One :class:`PairResult` per pair in discovery order, then one ``failed`` row per layout problem (a
        missing partner, a bad name). ``any_failed`` tells whether the command should exit non-zero.

    Raises
    ------
    RegistrationError
        When the folders overlap, the output cannot be created or written, or another run is writing it (other
        errors fail their pair only).
    """
    raw_dir, aligned_dir = Path(raw_dir), Path(aligned_dir)
    discovery = discover_pairs(raw_dir)
    check_apart(raw_dir, aligned_dir, error=RegistrationError, input_name="raw", output_name="aligned")
    csv_path = aligned_dir / CSV_NAME
    with claim_folder(aligned_dir, error=RegistrationError):
        require_regular(csv_path, error=RegistrationError)
        note_folders_being_written(sorted({pair.directory.parent for pair in discovery.pairs}),
                                   then="run prep register again once it has finished")
        jobs = [_Job(pair, pose_dir(aligned_dir, pair.subject, pair.pose), config, force)
                for pair in discovery.pairs]
        announce_total(progress, len(jobs))
        results = list(map_in_order(_run_job, jobs, workers=workers, progress=progress))
        results += [_problem_row(raw_dir, problem) for problem in discovery.problems]
        write_text_atomic(csv_path, _csv_text(results))
    summary = RegistrationSummary(aligned_dir, tuple(results), csv_path)
    log.info("registered %d pairs: %d ok, %d flagged, %d failed (%d already done)", len(results), summary.ok,
             summary.flagged, summary.failed, summary.skipped)
    return summary
