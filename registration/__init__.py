"""Registration stage: align each studio shot onto its flash shot (mutual-information affine, SimpleITK).

>>> from registration import register_tree
>>> summary = register_tree("raw", "aligned", workers=2)        # doctest: +SKIP
>>> summary.ok, summary.flagged, summary.failed                  # doctest: +SKIP

The public names are imported on first use (PEP 562), so that ``prep --help``, which imports
``registration.cli`` and with it this package, does not load SimpleITK and OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquisition.lazy import lazy_exports

from .errors import RegistrationError

if TYPE_CHECKING:
    from ._config import AffineEstimate, PairResult, RegistrationConfig, RegistrationSummary
    from ._estimate import estimate_affine, overlap_fraction
    from ._pair import register_pair
    from ._qc import eye_state, quality_reasons
    from ._sheets import write_contact_sheets
    from ._transform import (
        AffineParts,
        affine_from_matrix,
        decompose,
        face_box_error,
        ground_truth_error,
        matrix_of,
        transform_points,
    )
    from ._tree import CSV_COLUMNS, CSV_NAME, read_registration_csv, register_tree
    from ._warp import warp_studio

_WHERE = {
    "AffineEstimate": "_config", "PairResult": "_config", "RegistrationConfig": "_config",
    "RegistrationSummary": "_config", "estimate_affine": "_estimate", "overlap_fraction": "_estimate",
    "register_pair": "_pair", "eye_state": "_qc", "quality_reasons": "_qc", "write_contact_sheets": "_sheets",
    "AffineParts": "_transform", "affine_from_matrix": "_transform", "decompose": "_transform",
    "face_box_error": "_transform", "ground_truth_error": "_transform", "matrix_of": "_transform",
    "transform_points": "_transform", "CSV_COLUMNS": "_tree", "CSV_NAME": "_tree",
    "read_registration_csv": "_tree", "register_tree": "_tree", "warp_studio": "_warp",
}

__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "AffineEstimate",
    "AffineParts",
    "PairResult",
    "RegistrationConfig",
    "RegistrationError",
    "RegistrationSummary",
    "affine_from_matrix",
    "decompose",
    "estimate_affine",
    "eye_state",
    "face_box_error",
    "ground_truth_error",
    "matrix_of",
    "overlap_fraction",
    "quality_reasons",
    "read_registration_csv",
    "register_pair",
    "register_tree",
    "transform_points",
    "warp_studio",
    "write_contact_sheets",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
