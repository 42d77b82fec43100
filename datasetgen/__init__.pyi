"""Public names of the dataset stage (read by lazy_loader at run time and by type checkers)."""

# Type checkers take these names as the package's interface; lazy_loader reads the imports below.
__all__ = [
    "AugSpec",
    "BuildConfig",
    "BuildSummary",
    "DatasetGenError",
    "Problem",
    "ShardFolder",
    "SkippedPair",
    "assign_splits",
    "aug_table",
    "bilateral_filter",
    "bilateral_reference",
    "build_shards",
    "check_hashes",
    "check_shard_folder",
    "choose_face",
    "read_split_file",
    "render_pair",
    "sample_matrix",
    "verify_shards",
    "write_manifest",
    "write_shard_sheets",
]


from ._augment import AugSpec, aug_table, sample_matrix
from ._bilateral import bilateral_filter, bilateral_reference
from ._build import BuildConfig, BuildSummary, SkippedPair, build_shards, choose_face, render_pair
from ._manifest import Problem, ShardFolder, check_hashes, check_shard_folder, write_manifest
from ._sheets import write_shard_sheets
from ._splits import assign_splits, read_split_file
from ._verify import verify_shards
from .errors import DatasetGenError
