"""Public names of the registration stage (read by lazy_loader at run time and by type checkers)."""

# Type checkers take these names as the package's interface; lazy_loader reads the imports below.
__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "AffineEstimate",
    "AffineParts",
    "FaceCheck",
    "PairResult",
    "RegistrationConfig",
    "RegistrationError",
    "RegistrationSummary",
    "affine_from_matrix",
    "check_face_alignment",
    "decompose",
    "estimate_affine",
    "eye_state",
    "eye_verdict",
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


from ._check import FaceCheck, check_face_alignment
from ._config import AffineEstimate, PairResult, RegistrationConfig, RegistrationSummary
from ._estimate import estimate_affine, overlap_fraction
from ._pair import register_pair
from ._qc import eye_state, eye_verdict, quality_reasons
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
from .errors import RegistrationError
